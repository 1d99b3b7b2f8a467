"""domain_tutor.optim: the NumPy maths against torch autograd, the from-scratch optimisers against torch.optim after 200
steps, the warm-up schedules against transformers, the training loop and the forgetting helpers, bad inputs, and every
exercise with its reference and a typical mistake."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from domain_tutor.exercises import check, get_exercise, list_exercises
from domain_tutor.optim import (SGD, Adam, AdamW, adam_step, cross_entropy, cross_entropy_grad, evaluate, freeze,
                                frozen_parameter_names, l2sp_penalty, layerwise_lr_groups, log_softmax, lr_range_test,
                                mse, numerical_ce_grad, numerical_grad, sgd_step, softmax, train_loop, warmup_cosine,
                                warmup_linear)

logit_rows = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(2, 6)),
                    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False))


# ---------------------------------------------------------------- softmax, cross-entropy and gradients

@settings(max_examples=60, deadline=None)
@given(logit_rows)
def test_softmax_and_log_softmax_match_torch(z):
    np.testing.assert_allclose(softmax(z), torch.softmax(torch.tensor(z), -1).numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_softmax(z), torch.log_softmax(torch.tensor(z), -1).numpy(), rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(log_softmax(z, axis=0), torch.log_softmax(torch.tensor(z), 0).numpy(), rtol=1e-10, atol=1e-9)
    assert np.isfinite(log_softmax(z)).all()


@settings(max_examples=60, deadline=None)
@given(logit_rows, st.data())
def test_cross_entropy_and_its_gradient_match_torch_autograd(z, data):
    y = np.array(data.draw(st.lists(st.integers(0, z.shape[1] - 1), min_size=z.shape[0], max_size=z.shape[0])))
    zt = torch.tensor(z, requires_grad=True)
    loss = F.cross_entropy(zt, torch.tensor(y))
    loss.backward()
    assert cross_entropy(z, y) == pytest.approx(loss.item(), rel=1e-10, abs=1e-10)
    np.testing.assert_allclose(cross_entropy_grad(z, y), zt.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_entropy_is_stable_and_hand_computed():
    assert cross_entropy([[0.0, 0.0]], [0]) == pytest.approx(math.log(2))
    assert cross_entropy([[1000.0, 0.0]], [1]) == pytest.approx(1000.0)
    np.testing.assert_allclose(cross_entropy_grad([[0.0, 0.0], [0.0, 0.0]], [0, 1]), [[-0.25, 0.25], [0.25, -0.25]])


def test_numerical_gradients_agree_with_analytic_ones():
    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(4, 3)), rng.integers(0, 3, 4)
    num = numerical_grad(lambda w: cross_entropy(w, y), z)
    analytic = cross_entropy_grad(z, y)
    assert np.linalg.norm(num - analytic) / (np.linalg.norm(num) + np.linalg.norm(analytic)) < 1e-8
    np.testing.assert_allclose(numerical_ce_grad(z, y, eps=1e-6), num, rtol=1e-6, atol=1e-9)
    # central differences: error shrinks like eps^2
    e1 = np.abs(numerical_ce_grad(z, y, 1e-1) - analytic).max()
    e2 = np.abs(numerical_ce_grad(z, y, 1e-2) - analytic).max()
    assert e2 < e1 / 50
    z_copy = z.copy()
    numerical_ce_grad(z, y, 1e-3)
    np.testing.assert_array_equal(z, z_copy)


def test_mse_matches_torch():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    assert mse(a, b) == pytest.approx(F.mse_loss(torch.tensor(a), torch.tensor(b)).item(), rel=1e-12)


@pytest.mark.parametrize("call, exc, words", [
    (lambda: cross_entropy([[0.0, 1.0]], [0, 1]), ValueError, "targets must have shape"),
    (lambda: cross_entropy([[0.0, 1.0]], [2]), ValueError, "targets must lie in"),
    (lambda: cross_entropy([0.0, 1.0], [0]), ValueError, "logits must be 2-D"),
    (lambda: cross_entropy([[0.0, 1.0]], [0.0]), TypeError, "targets must be integer"),
    (lambda: cross_entropy_grad([["a", "b"]], [0]), TypeError, "logits"),
    (lambda: mse([1.0, 2.0], [1.0, 2.0, 3.0]), ValueError, "target must have the shape"),
    (lambda: softmax([]), ValueError, "z must not be empty"),
    (lambda: numerical_grad(lambda w: 0.0, [1.0], eps=-1), ValueError, "eps"),
    (lambda: sgd_step([1.0], [1.0], lr=-0.1), ValueError, "lr"),
    (lambda: sgd_step([1.0], [1.0, 2.0], lr=0.1), ValueError, "grad must have the shape"),
    (lambda: sgd_step([1.0], [1.0], lr=0.1, momentum=0.5, velocity=[1.0, 2.0]), ValueError, "velocity"),
    (lambda: adam_step([1.0], [1.0], [0.0], [0.0], t=0), ValueError, "t must be"),
    (lambda: adam_step([1.0], [1.0], [0.0], [0.0], t=1, betas=(1.0, 0.999)), ValueError, "betas"),
    (lambda: adam_step([1.0], [1.0], [0.0], [0.0], t=1, betas=(0.9, -0.1)), ValueError, "betas"),
    (lambda: adam_step([1.0], [1.0], [0.0, 0.0], [0.0], t=1), ValueError, "m must have the shape"),
    (lambda: adam_step([1.0], [1.0], [0.0], [0.0], t=1, lr=-1.0), ValueError, "lr"),
    (lambda: adam_step([1.0], [1.0], [0.0], [0.0], t=1, weight_decay=-1.0), ValueError, "weight_decay"),
    (lambda: SGD([torch.zeros(1)], lr=-1.0), ValueError, "lr"),
    (lambda: Adam([torch.zeros(1)], betas=(0.9, 1.5)), ValueError, "betas"),
    (lambda: AdamW([torch.zeros(1)], betas=(0.9,)), ValueError, "betas"),
    (lambda: AdamW([torch.zeros(1)], eps=-1e-8), ValueError, "eps"),
    (lambda: warmup_linear(5, 20, 10), ValueError, "warmup_steps"),
    (lambda: warmup_cosine(-1, 2, 10), ValueError, "step"),
    (lambda: warmup_linear(1, 0, 0), ValueError, "total_steps"),
    (lambda: frozen_parameter_names("bert.embeddings.x", 1), TypeError, "names"),
    (lambda: frozen_parameter_names(["a"], -1), ValueError, "up_to_layer"),
])
def test_bad_input_names_the_argument(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


# ---------------------------------------------------------------- the update rules

def test_sgd_step_and_adam_step_match_torch_one_parameter_vector():
    rng = np.random.default_rng(2)
    for decoupled, Torch in [(False, torch.optim.Adam), (True, torch.optim.AdamW)]:
        theta, m, v = rng.normal(size=5), np.zeros(5), np.zeros(5)
        p = torch.tensor(theta.copy(), requires_grad=True)
        opt = Torch([p], lr=0.03, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.2)
        for t in range(1, 101):
            g = rng.normal(size=5) * 10 ** rng.uniform(-3, 2)
            theta, m, v = adam_step(theta, g, m, v, t, lr=0.03, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.2,
                                    decoupled=decoupled)
            p.grad = torch.tensor(g)
            opt.step()
        np.testing.assert_allclose(theta, p.detach().numpy(), rtol=1e-10, atol=1e-12)
    theta, vel = rng.normal(size=3), None
    p = torch.tensor(theta.copy(), requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9)
    for _ in range(50):
        g = rng.normal(size=3)
        theta, vel = sgd_step(theta, g, 0.1, 0.9, vel)
        p.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(theta, p.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_adam_step_does_not_modify_its_inputs_and_first_step_is_lr_sized():
    theta, g, m, v = np.array([1.0, -1.0]), np.array([1e-3, 1e3]), np.zeros(2), np.zeros(2)
    copies = [a.copy() for a in (theta, g, m, v)]
    new, _, _ = adam_step(theta, g, m, v, 1, lr=0.01)
    for a, c in zip((theta, g, m, v), copies):
        np.testing.assert_array_equal(a, c)
    np.testing.assert_allclose(new, theta - 0.01, rtol=1e-5)     # ≈ lr · sign(g), whatever the scale of g


def _agreement(ours, theirs, dtype, steps=200, seed=0, **hyper):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(6, 10), torch.nn.Tanh(), torch.nn.Linear(10, 3)).to(dtype)
    twin = copy.deepcopy(net)
    lr = hyper.get("lr", 1e-3)
    groups = lambda m: [{"params": m[0].parameters()}, {"params": m[2].parameters(), "lr": lr * 0.3}]
    opt_a, opt_b = ours(groups(net), **hyper), theirs(groups(twin), **hyper)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(32, 6, generator=g, dtype=dtype)
        y = torch.randint(0, 3, (32,), generator=g)
        for model, opt in ((net, opt_a), (twin, opt_b)):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
    return max((a - b).abs().max().item() for a, b in zip(net.parameters(), twin.parameters()))


OPTIMISER_SETTINGS = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.5, weight_decay=0.05)),
    (Adam, torch.optim.Adam, dict(lr=1e-3)),
    (Adam, torch.optim.Adam, dict(lr=3e-3, betas=(0.85, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-3)),
    (AdamW, torch.optim.AdamW, dict(lr=3e-3, betas=(0.8, 0.98), weight_decay=0.3)),
    (AdamW, torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.0)),
]


@pytest.mark.parametrize("ours, theirs, hyper", OPTIMISER_SETTINGS, ids=lambda x: getattr(x, "__name__", str(x)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_optimisers_match_torch_after_200_steps(ours, theirs, hyper, dtype):
    for seed in (0, 1):
        assert _agreement(ours, theirs, dtype, seed=seed, **hyper) < 1e-6


def test_adamw_defaults_match_torch_and_state_dict_round_trips():
    p = torch.zeros(3, requires_grad=True)
    ours, theirs = AdamW([p]), torch.optim.AdamW([torch.zeros(3, requires_grad=True)])
    for key in ("lr", "betas", "eps", "weight_decay"):
        assert ours.defaults[key] == theirs.defaults[key], key
    p.grad = torch.ones(3)
    ours.step()
    again = AdamW([p])
    again.load_state_dict(ours.state_dict())
    assert again.state[p]["step"] == 1 and torch.equal(again.state[p]["exp_avg"], ours.state[p]["exp_avg"])


def test_optimiser_closure_returns_the_loss():
    w = torch.tensor([1.0, 2.0], requires_grad=True)
    opt = Adam([w], lr=0.1)
    def closure():
        opt.zero_grad()
        loss = (w ** 2).sum()
        loss.backward()
        return loss
    assert opt.step(closure).item() == pytest.approx(5.0)


# ---------------------------------------------------------------- schedules

@pytest.mark.parametrize("warmup, total", [(0, 1), (1, 1), (3, 7), (10, 100), (0, 50), (50, 50), (6, 1000)])
def test_schedules_equal_transformers(warmup, total):
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup
    def trace(make):
        opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=3e-5)
        sched, out = make(opt), []
        for _ in range(total + 10):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.array(out)
    LambdaLR = torch.optim.lr_scheduler.LambdaLR
    np.testing.assert_allclose(trace(lambda o: LambdaLR(o, lambda s: warmup_linear(s, warmup, total))),
                               trace(lambda o: get_linear_schedule_with_warmup(o, warmup, total)), rtol=0, atol=1e-18)
    np.testing.assert_allclose(trace(lambda o: LambdaLR(o, lambda s: warmup_cosine(s, warmup, total))),
                               trace(lambda o: get_cosine_schedule_with_warmup(o, warmup, total)), rtol=0, atol=1e-18)


def test_schedule_hand_values():
    assert [warmup_linear(s, 10, 110) for s in (0, 5, 10, 60, 110, 200)] == [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(10, 10, 110) == 1.0 and warmup_cosine(110, 10, 110) == pytest.approx(0.0)


# ---------------------------------------------------------------- forgetting helpers on a tiny BERT

@pytest.fixture(scope="module")
def tiny_bert():
    from transformers import BertConfig, BertForSequenceClassification
    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=12, num_attention_heads=2, intermediate_size=16,
                        max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


def test_freeze_freezes_embeddings_and_lower_layers_only(tiny_bert):
    model = copy.deepcopy(tiny_bert)
    frozen = set(freeze(model, 2))
    for name, p in model.named_parameters():
        lower = ".embeddings." in name or ".layer.0." in name or ".layer.1." in name
        assert (name in frozen) == lower == (not p.requires_grad), name
    assert not any(".layer.10." in n or ".layer.11." in n for n in frozen)     # not a prefix match
    assert set(freeze(model, 0)) == {n for n, _ in model.named_parameters() if ".embeddings." in n}
    assert len(freeze(model, 12)) == sum(1 for n, _ in model.named_parameters() if "pooler" not in n and "classifier" not in n)
    with pytest.raises(ValueError, match="up_to_layer must be at most the model's 12 layers"):
        freeze(model, 13)
    with pytest.raises(ValueError, match="BERT-style"):
        freeze(torch.nn.Linear(2, 2), 1)


def test_layerwise_lr_groups(tiny_bert):
    model = copy.deepcopy(tiny_bert)
    groups = layerwise_lr_groups(model, 1e-4, decay=0.5)
    assert [g["name"] for g in groups] == ["embeddings"] + [f"layer.{i}" for i in range(12)] + ["head"]
    for depth, g in enumerate(groups):
        assert g["lr"] == pytest.approx(1e-4 * 0.5 ** (13 - depth))
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    freeze(model, 3)
    groups = layerwise_lr_groups(model, 1e-4)
    assert groups[0]["name"] == "layer.3"                                  # frozen parameters are left out
    opt = AdamW(groups)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in groups]
    with pytest.raises(ValueError, match="decay"):
        layerwise_lr_groups(model, 1e-4, decay=1.5)


def test_l2sp_penalty(tiny_bert):
    model = copy.deepcopy(tiny_bert)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    assert l2sp_penalty(model, ref, 1.0).item() == 0.0
    with torch.no_grad():
        model.bert.encoder.layer[0].output.dense.weight.add_(0.5)
    n = model.bert.encoder.layer[0].output.dense.weight.numel()
    penalty = l2sp_penalty(model, ref, 0.1)
    assert penalty.item() == pytest.approx(0.5 * 0.1 * n * 0.25, rel=1e-5)
    penalty.backward()
    assert model.bert.encoder.layer[0].output.dense.weight.grad is not None
    no_head = {k: v for k, v in ref.items() if not k.startswith("classifier")}
    with torch.no_grad():
        model.classifier.weight.add_(1.0)
    assert l2sp_penalty(model, no_head, 0.1).item() == pytest.approx(penalty.item(), rel=1e-5)   # the new head is free
    with pytest.raises(ValueError, match="reference_state"):
        l2sp_penalty(model, {"classifier.weight": torch.zeros(1)}, 1.0)
    with pytest.raises(ValueError, match="alpha"):
        l2sp_penalty(model, ref, -1.0)


# ---------------------------------------------------------------- the training loop

def _toy(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    return x, (x @ torch.tensor([1.0, -2.0, 0.5, 1.5]) > 0).long()


def _batches(x, y, size):
    return [(x[i:i + size], y[i:i + size]) for i in range(0, len(x), size)]


def test_train_loop_learns_and_records_history():
    x, y = _toy()
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    hist = train_loop(model, _batches(x, y, 16), _batches(x, y, 48), epochs=4, lr=0.05, device="cpu",
                      scheduler="cosine", warmup_ratio=0.25, progress=False)
    steps, epochs = hist["steps"], hist["epochs"]
    assert list(steps.columns) == ["step", "epoch", "loss", "lr", "grad_norm"] and len(steps) == 24
    assert list(epochs["epoch"]) == [1, 2, 3, 4] and {"train_loss", "eval_loss", "eval_accuracy"} <= set(epochs.columns)
    np.testing.assert_allclose(steps["lr"], [0.05 * warmup_cosine(s, 6, 24) for s in range(24)], rtol=1e-12)
    assert epochs["eval_accuracy"].iloc[-1] > 0.9 and epochs["eval_loss"].iloc[-1] < epochs["eval_loss"].iloc[0]


def test_accumulation_equals_a_larger_batch():
    x, y = _toy()
    torch.manual_seed(1)
    init = torch.nn.Linear(4, 2)
    small, large = copy.deepcopy(init), copy.deepcopy(init)
    common = dict(epochs=2, lr=0.1, optimizer="sgd", scheduler=None, grad_clip=None, device="cpu", progress=False)
    train_loop(small, _batches(x, y, 8), accumulation=4, **common)
    train_loop(large, _batches(x, y, 32), **common)
    torch.testing.assert_close(small.weight, large.weight, rtol=1e-5, atol=1e-6)
    # a last, shorter group is averaged over its own micro-batches
    hist = train_loop(copy.deepcopy(init), _batches(x, y, 16), accumulation=4, **common)
    assert len(hist["steps"]) == 2 * 2


def test_train_loop_clips_and_accepts_an_optimizer_and_a_penalty():
    x, y = _toy()
    torch.manual_seed(2)
    model = torch.nn.Linear(4, 2)
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    opt = SGD(model.parameters(), lr=0.5)
    hist = train_loop(model, _batches(x * 100, y, 16), epochs=1, optimizer=opt, scheduler=None, grad_clip=0.01,
                      device="cpu", penalty=lambda m: l2sp_penalty(m, ref, 10.0), progress=False)
    assert (hist["steps"]["lr"] == 0.5).all()
    # every step is at most lr * clip long
    assert (model.weight - ref["weight"]).norm().item() <= 0.5 * 0.01 * len(hist["steps"]) + 1e-6


def test_train_loop_evaluates_with_eval_fn_and_handles_dict_batches(tiny_bert):
    model = copy.deepcopy(tiny_bert)
    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": torch.randint(1, 50, (4, 6), generator=g), "attention_mask": torch.ones(4, 6, dtype=torch.long),
             "labels": torch.randint(0, 2, (4,), generator=g)} for _ in range(3)]
    hist = train_loop(model, data, data, epochs=2, lr=1e-3, device="cpu", progress=False,
                      eval_fn=lambda m, loader: {"n_batches": float(len(loader)), **evaluate(m, loader)})
    assert list(hist["epochs"]["n_batches"]) == [3.0, 3.0] and "eval_accuracy" in hist["epochs"]
    with pytest.raises(ValueError, match="labels"):
        train_loop(model, [{"input_ids": data[0]["input_ids"]}], device="cpu", progress=False)


@pytest.mark.parametrize("kwargs, words", [
    (dict(lr=-1.0), "lr"), (dict(epochs=0), "epochs"), (dict(accumulation=0), "accumulation"),
    (dict(optimizer="lion"), "optimizer"), (dict(scheduler="step"), "scheduler"), (dict(warmup_ratio=1.5), "warmup_ratio"),
    (dict(grad_clip=-1.0), "grad_clip"),
])
def test_train_loop_rejects_bad_arguments(kwargs, words):
    x, y = _toy()
    with pytest.raises(ValueError, match=words):
        train_loop(torch.nn.Linear(4, 2), _batches(x, y, 16), device="cpu", progress=False, **kwargs)


def test_train_loop_stops_on_a_non_finite_loss():
    bad = [(torch.full((2, 4), float("nan")), torch.zeros(2, dtype=torch.long))]
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        train_loop(torch.nn.Linear(4, 2), bad, device="cpu", progress=False)


def test_lr_range_test_restores_the_model():
    x, y = _toy()
    torch.manual_seed(3)
    model = torch.nn.Linear(4, 2)
    before = copy.deepcopy(model.state_dict())
    probe = lr_range_test(model, _batches(x, y, 16), min_lr=1e-5, max_lr=100.0, steps=40, device="cpu", progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert probe["lr"].iloc[0] == pytest.approx(1e-5) and probe["lr"].is_monotonic_increasing
    assert 2 <= len(probe) <= 40
    with pytest.raises(ValueError, match="min_lr"):
        lr_range_test(model, _batches(x, y, 16), min_lr=1.0, max_lr=0.1)


# ---------------------------------------------------------------- exercises

EXERCISES = ["optim.log_softmax", "optim.cross_entropy_grad", "optim.numerical_ce_grad", "optim.adam_step",
             "optim.warmup_linear", "optim.frozen_parameter_names"]


def test_the_chapter_registers_its_exercises():
    assert [ex.id for ex in list_exercises("optim")] == EXERCISES


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_every_exercise_passes_with_its_reference_quickly(exercise_id):
    import time
    ex = get_exercise(exercise_id)
    start = time.perf_counter()
    result = check(exercise_id, ex.reference, record=False, verbose=False)
    assert result.passed, result.feedback
    assert time.perf_counter() - start < 1.0
    assert len(ex.all_cases()) >= 20


def _no_sqrt_adam(theta, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    m = betas[0] * np.asarray(m) + (1 - betas[0]) * np.asarray(grad)
    v = betas[1] * np.asarray(v) + (1 - betas[1]) * np.asarray(grad) ** 2
    return np.asarray(theta) - lr * m / ((1 - betas[0] ** t) * (1 - betas[1] ** t)), m, v


def _no_bias_correction(theta, grad, m, v, t, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
    theta, grad = np.asarray(theta, float), np.asarray(grad, float)
    if weight_decay and not decoupled:
        grad = grad + weight_decay * theta
    m = betas[0] * np.asarray(m) + (1 - betas[0]) * grad
    v = betas[1] * np.asarray(v) + (1 - betas[1]) * grad ** 2
    if decoupled:
        theta = theta * (1 - lr * weight_decay)
    return theta - lr * m / (np.sqrt(v) + eps), m, v


def _naive_log_softmax(z, axis=-1):
    z = np.asarray(z, float)
    with np.errstate(all="ignore"):
        return np.log(np.exp(z) / np.exp(z).sum(axis=axis, keepdims=True))


def _prefix_freeze(names, k):
    return {n for n in names if "embeddings" in n or any(f"layer.{i}" in n for i in range(k))}


def _forward_difference(z, t, eps=1e-5):
    z = np.asarray(z, float)
    g = np.zeros_like(z)
    for i in np.ndindex(z.shape):
        up = z.copy()
        up[i] += eps
        g[i] = (cross_entropy(up, t) - cross_entropy(z, t)) / eps
    return g


@pytest.mark.parametrize("exercise_id, wrong, words", [
    ("optim.log_softmax", _naive_log_softmax, "log-sum-exp"),
    ("optim.log_softmax", lambda z, axis=-1: log_softmax(z), "axis"),
    ("optim.cross_entropy_grad", lambda z, t: cross_entropy_grad(z, t) * len(t), "divide by n"),
    ("optim.cross_entropy_grad", lambda z, t: -cross_entropy_grad(z, t), "sign"),
    ("optim.numerical_ce_grad", _forward_difference, "one-sided"),
    ("optim.numerical_ce_grad", lambda z, t, eps=1e-5: cross_entropy_grad(z, t), "analytic gradient"),
    ("optim.adam_step", _no_sqrt_adam, "√v̂"),
    ("optim.adam_step", _no_bias_correction, "bias correction"),
    ("optim.adam_step", lambda *a, **k: adam_step(*a, **{**k, "decoupled": not k.get("decoupled", False)}), "decay"),
    ("optim.warmup_linear", lambda s, w, T: (s + 1) / max(1, w) if s < w else max(0.0, (T - s) / max(1, T - w)), "off by one"),
    ("optim.warmup_linear", lambda s, w, T: s / max(1, w) if s < w else (T - s) / max(1, T - w), "clamp"),
    ("optim.warmup_linear", lambda s, w, T: s / max(1, w) if s < w else max(0.0, (T - s) / T), "total_steps − warmup_steps"),
    ("optim.frozen_parameter_names", _prefix_freeze, "layer.10"),
    ("optim.frozen_parameter_names", lambda names, k: frozen_parameter_names(names, k + 1) if k < 12 else set(names), "off by one"),
])
def test_typical_mistakes_fail_with_a_diagnosis(exercise_id, wrong, words):
    result = check(exercise_id, wrong, record=False, verbose=False)
    assert not result.passed and "expected" in result.feedback
    assert words in result.feedback, result.feedback


def test_exercise_cases_are_plain_data():
    plain = (str, int, float, bool, type(None), np.ndarray)
    def ok(x):
        if isinstance(x, (list, tuple, set)):
            return all(ok(i) for i in x)
        if isinstance(x, dict):
            return all(ok(k) and ok(v) for k, v in x.items())
        return isinstance(x, plain)
    for exercise_id in EXERCISES:
        for c in get_exercise(exercise_id).all_cases():
            assert ok(list(c.args)) and ok(c.kwargs), (exercise_id, c)
