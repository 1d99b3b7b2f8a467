"""domain_tutor.optim against torch.optim on hundreds of seeded random configurations: real and complex parameters,
several groups, closures, state_dict round trips both ways, and the keywords torch has and the library refuses."""
import copy

import numpy as np
import pytest
import torch

import domain_tutor.optim as O

PAIRS = [(O.SGD, torch.optim.SGD), (O.Adam, torch.optim.Adam), (O.AdamW, torch.optim.AdamW)]


def random_hyper(rng, ours):
    h = {"lr": float(rng.choice([1e-3, 1e-2, 0.1, 0.5])), "weight_decay": float(rng.choice([0.0, 0.0, 1e-2, 0.3]))}
    if ours is O.SGD:
        h["momentum"] = float(rng.choice([0.0, 0.5, 0.9, 0.99]))
    else:
        h["betas"] = (float(rng.choice([0.0, 0.5, 0.9])), float(rng.choice([0.9, 0.99, 0.999])))
        h["eps"] = float(rng.choice([1e-8, 1e-6, 1e-3]))
    return h


def random_params(rng, dtype):
    shapes = [tuple(int(s) for s in rng.integers(1, 5, size=int(rng.integers(1, 3)))) for _ in range(int(rng.integers(1, 4)))]
    g = torch.Generator().manual_seed(int(rng.integers(2**31)))
    return [torch.randn(s, generator=g, dtype=dtype) for s in shapes]


def run(opt_cls, params, hyper, grads, split):
    ps = [p.clone().requires_grad_(True) for p in params]
    groups = [{"params": ps[:split]}, {"params": ps[split:], "lr": hyper["lr"] * 0.5}] if 0 < split < len(ps) else ps
    opt = opt_cls(groups, **hyper)
    for step_grads in grads:
        for p, g in zip(ps, step_grads):
            p.grad = None if g is None else g.clone()
        opt.step()
    return ps, opt


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=["SGD", "Adam", "AdamW"])
def test_random_configurations_match_torch(ours, theirs):
    rng = np.random.default_rng({"SGD": 0, "Adam": 1, "AdamW": 2}[ours.__name__])
    for case in range(120):
        dtype = [torch.float64, torch.complex128, torch.float32][case % 3]
        params, hyper = random_params(rng, dtype), random_hyper(rng, ours)
        g = torch.Generator().manual_seed(case)
        grads = [[None if rng.random() < 0.1 else torch.randn(p.shape, generator=g, dtype=dtype) for p in params]
                 for _ in range(int(rng.integers(1, 12)))]
        split = int(rng.integers(0, len(params) + 1))
        a, _ = run(ours, params, hyper, grads, split)
        b, _ = run(theirs, params, hyper, grads, split)
        tol = 1e-5 if dtype == torch.float32 else 1e-12
        for x, y in zip(a, b):
            assert torch.allclose(x, y, rtol=tol, atol=tol), (case, ours.__name__, dtype, hyper)


def test_complex_adam_is_the_real_pair_update():
    # regression: p = 1+1j, g = 1j, lr 0.1 gave 0.9+1j (g·g = −1 in v) where torch gives 1+0.9j
    for cls, ref in PAIRS[1:]:
        p, q = torch.tensor([1 + 1j], requires_grad=True), torch.tensor([1 + 1j], requires_grad=True)
        p.grad, q.grad = torch.tensor([1j]), torch.tensor([1j])
        cls([p], lr=0.1, weight_decay=0.0).step()
        ref([q], lr=0.1, weight_decay=0.0).step()
        assert torch.allclose(p, q) and torch.allclose(p, torch.tensor([1 + 0.9j]))


@pytest.mark.parametrize("ours,theirs", PAIRS, ids=["SGD", "Adam", "AdamW"])
def test_state_dict_round_trip_both_ways(ours, theirs):
    # regression: the SGD state_dict lacked torch's keys (KeyError: 'dampening' in torch.optim.SGD.load_state_dict)
    rng = np.random.default_rng(7)
    for case in range(30):
        dtype = [torch.float64, torch.complex128][case % 2]
        params, hyper = random_params(rng, dtype), random_hyper(rng, ours)
        g = torch.Generator().manual_seed(100 + case)
        grads = [[torch.randn(p.shape, generator=g, dtype=dtype) for p in params] for _ in range(6)]
        for first, second in ((ours, theirs), (theirs, ours)):
            ps_a, opt_a = run(first, params, hyper, grads[:3], 0)     # 3 steps with one, then hand over
            ps_b = [p.detach().clone().requires_grad_(True) for p in ps_a]
            opt_b = second(ps_b, **hyper)
            opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))
            ref, _ = run(theirs, params, hyper, grads, 0)             # 6 steps with torch alone
            for step_grads in grads[3:]:
                for p, gr in zip(ps_b, step_grads):
                    p.grad = gr.clone()
                opt_b.step()
            for x, y in zip(ps_b, ref):
                assert torch.allclose(x, y, rtol=1e-12, atol=1e-12), (case, first.__name__, second.__name__)


def test_torch_keywords_at_default_are_accepted_others_refused():
    w = torch.nn.Parameter(torch.zeros(2))
    O.SGD([w], lr=0.1, dampening=0, nesterov=False, maximize=False, foreach=None, differentiable=False, fused=None)
    for cls in (O.Adam, O.AdamW):
        cls([w], amsgrad=False, maximize=False, foreach=None, capturable=False, differentiable=False, fused=None)
    O.Adam([w], decoupled_weight_decay=False)
    for make, word in ((lambda: O.SGD([w], lr=0.1, nesterov=True), "nesterov"),
                       (lambda: O.SGD([w], lr=0.1, dampening=0.5), "dampening"),
                       (lambda: O.SGD([w], lr=0.1, maximize=True), "maximize"),
                       (lambda: O.Adam([w], amsgrad=True), "amsgrad"),
                       (lambda: O.AdamW([w], capturable=True), "capturable"),
                       (lambda: O.Adam([w], foreach=True), "foreach"),
                       (lambda: O.Adam([w], lr=torch.tensor([0.1, 0.2])), "lr")):
        with pytest.raises(ValueError, match=word):
            make()
    with pytest.raises(TypeError, match="bogus"):
        O.Adam([w], bogus=1)
    # a torch state_dict asking for an option the library lacks is refused at step time, not silently ignored
    t = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True)
    o = O.SGD([w], lr=0.1)
    o.load_state_dict(t.state_dict())
    w.grad = torch.ones(2)
    with pytest.raises(ValueError, match="nesterov"):
        o.step()


def test_decoupled_weight_decay_flag_is_adamw():
    a, b = torch.ones(3, requires_grad=True), torch.ones(3, requires_grad=True)
    a.grad, b.grad = torch.full((3,), 0.5), torch.full((3,), 0.5)
    O.Adam([a], lr=0.1, weight_decay=0.1, decoupled_weight_decay=True).step()
    torch.optim.AdamW([b], lr=0.1, weight_decay=0.1).step()
    assert torch.allclose(a, b)


def test_sparse_gradients():
    # regression: Adam crashed with NotImplementedError from aten; torch raises a clear RuntimeError
    for cls, ref in PAIRS[1:]:
        for c in (cls, ref):
            w = torch.nn.Parameter(torch.zeros(3))
            w.grad = torch.zeros(3).to_sparse()
            with pytest.raises(RuntimeError, match="does not support sparse gradients"):
                c([w]).step()
    # SGD supports them, as torch's does
    a, b = torch.nn.Parameter(torch.ones(4)), torch.nn.Parameter(torch.ones(4))
    grad = torch.sparse_coo_tensor([[0, 2]], [1.0, -2.0], (4,), check_invariants=True)
    for p, cls in ((a, O.SGD), (b, torch.optim.SGD)):
        opt = cls([p], lr=0.1, momentum=0.9)          # (torch refuses sparse + weight_decay; so does this)
        for _ in range(2):
            p.grad = grad.clone()
            opt.step()
    assert torch.allclose(a, b)
