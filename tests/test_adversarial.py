"""domain_tutor.adversarial: the gradient reversal layer against autograd, the λ schedule, DANN's training loop, FGM and
PGD on embedding parameters, the full PGD training step against a literal implementation and against the NumPy exercise,
CORAL/MMD/moment matching against direct formulas, EDA, bad inputs, and every exercise with its reference and a typical
mistake."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from domain_tutor.adversarial import (DANN, FGM, PGD, GradientReversal, coral_loss, dann_lambda, eda, fgm_perturbation,
                                      grad_reverse, logistic_grads, match_moments, mixed_moments_snippet, mmd_rbf,
                                      pgd_sgd_step, pgd_train_step, reversed_gradient, train_dann)
from domain_tutor.exercises import check, get_exercise, list_exercises

matrices = arrays(np.float64, st.tuples(st.integers(2, 8), st.integers(1, 4)),
                  elements=st.floats(-50, 50, allow_nan=False, allow_subnormal=False))


# ---------------------------------------------------------------- gradient reversal and the λ schedule

@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.integers(1, 6), elements=st.floats(-10, 10)), st.floats(0, 5))
def test_grad_reverse_is_identity_forward_and_negated_backward(x, lambd):
    t = torch.tensor(x, requires_grad=True)
    upstream = torch.linspace(-1, 1, len(x), dtype=torch.float64)
    out = grad_reverse(t, lambd)
    assert torch.equal(out.detach(), t.detach())
    (out * upstream).sum().backward()
    torch.testing.assert_close(t.grad, -lambd * upstream)
    np.testing.assert_allclose(reversed_gradient(upstream.numpy(), lambd), t.grad.numpy())


def test_gradient_reversal_module_uses_its_current_lambda():
    grl = GradientReversal(1.0)
    grl.lambd = 0.25
    x = torch.ones(3, requires_grad=True)
    grl(x).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), -0.25))


def test_dann_lambda_values():
    assert dann_lambda(0.0) == 0.0
    assert math.isclose(dann_lambda(1.0), 2 / (1 + math.exp(-10)) - 1)
    values = [dann_lambda(p) for p in np.linspace(0, 1, 11)]
    assert all(a < b for a, b in zip(values, values[1:])) and values[-1] < 1


@pytest.mark.parametrize("call, message", [
    (lambda: grad_reverse(torch.ones(2), -1.0), "lambd must lie in"),
    (lambda: grad_reverse([1.0], 1.0), "x must be a torch.Tensor"),
    (lambda: dann_lambda(-0.1), "progress must lie in"),
    (lambda: dann_lambda(0.5, gamma=-1), "gamma must lie in"),
    (lambda: dann_lambda("0.5"), "progress must be a finite number"),
    (lambda: DANN("not a module", 4, 2), "encoder must be a torch.nn.Module"),
    (lambda: DANN(torch.nn.Identity(), 0, 2), "feature_dim must be a positive int"),
    (lambda: FGM(torch.nn.Linear(2, 2)), "emb_name 'word_embeddings' matches no"),
    (lambda: PGD(torch.nn.Embedding(3, 2), emb_name="weight", alpha=0), "alpha must lie in"),
    (lambda: coral_loss(np.ones((1, 2)), np.ones((3, 2))), "source must be a 2-D"),
    (lambda: mmd_rbf(np.ones((3, 2)), np.ones((3, 3))), "same number of features"),
    (lambda: match_moments(np.ones((3, 2)), [[1.0, np.nan]]), "target must be finite"),
    (lambda: fgm_perturbation([1.0], epsilon=0), "epsilon must lie in"),
    (lambda: eda(""), "text must be a non-empty string"),
    (lambda: eda("a b", n_aug=1.5), "n_aug must be a positive int"),
    (lambda: pgd_sgd_step(np.ones((2, 2)), np.ones(2), np.array([0, 1]), 0.5, 0.3, 0, 0.1), "k must be a positive int"),
    (lambda: pgd_sgd_step(np.ones((2, 2)), np.ones(3), np.array([0, 1]), 0.5, 0.3, 1, 0.1), "w must have one weight"),
    (lambda: pgd_sgd_step(np.ones((2, 2)), np.ones(2), np.array([0, 2]), 0.5, 0.3, 1, 0.1), "y must hold one 0/1"),
    (lambda: pgd_sgd_step(np.ones((2, 2)), np.ones(2), np.array([0, 1]), 0.0, 0.3, 1, 0.1), "epsilon must lie in"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        call()


# ---------------------------------------------------------------- DANN

def _toy_data(seed=0):
    g = torch.Generator().manual_seed(seed)
    xs = torch.randn(96, 6, generator=g)
    ys = (xs[:, 0] > 0).long()
    xt = torch.randn(96, 6, generator=g) + 3.0 * torch.eye(6)[5]
    src = [(xs[i:i + 32], ys[i:i + 32]) for i in range(0, 96, 32)]
    tgt = [(xt[i:i + 16],) for i in range(0, 96, 16)]           # more target batches than source: cycled
    return src, tgt


def test_dann_forward_and_training_history():
    torch.manual_seed(0)
    model = DANN(torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU()), 16, 3, num_domains=2, hidden=8)
    cls, dom = model(torch.randn(5, 6))
    assert cls.shape == (5, 3) and dom.shape == (5, 2)
    src, tgt = _toy_data()
    hist = train_dann(model, src, tgt, epochs=4, lr=1e-2)
    assert list(hist["epoch"]) == [1, 2, 3, 4]
    assert hist["lambda"].is_monotonic_increasing and 0.99 < hist["lambda"].iloc[-1] <= 1.0
    assert hist["class_loss"].iloc[-1] < hist["class_loss"].iloc[0]
    assert ((hist["domain_accuracy"] >= 0) & (hist["domain_accuracy"] <= 1)).all()


def test_source_only_training_leaves_lambda_at_zero_and_domain_weight_zero_ignores_domain_head_for_encoder():
    src, tgt = _toy_data(1)
    torch.manual_seed(1)
    a = DANN(torch.nn.Linear(6, 4), 4, 2, hidden=4)
    torch.manual_seed(1)
    b = DANN(torch.nn.Linear(6, 4), 4, 2, hidden=4)
    train_dann(a, src, tgt, epochs=2, domain_weight=0.0)
    torch.manual_seed(1)
    opt = torch.optim.Adam(list(b.encoder.parameters()) + list(b.classifier.parameters()), lr=1e-3)
    for _ in range(2):
        for xs, ys in src:
            opt.zero_grad()
            F.cross_entropy(b(xs)[0], ys).backward()
            opt.step()
    assert a.grl.lambd == 0.0
    torch.testing.assert_close(a.encoder.weight, b.encoder.weight)


def test_grl_differs_from_subtracting_the_domain_loss_only_in_the_domain_head():
    torch.manual_seed(2)
    model = DANN(torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh()), 5, 2, hidden=4)
    x, y, d = torch.randn(20, 6), torch.randint(0, 2, (20,)), torch.randint(0, 2, (20,))

    def grads(reversal):
        model.zero_grad()
        model.grl.lambd = 0.7 if reversal else 0.0
        feats = model.encoder(x)
        dom = F.cross_entropy(model.domain_classifier(model.grl(feats) if reversal else feats), d)
        cls = F.cross_entropy(model.classifier(feats), y)
        (cls + dom if reversal else cls - 0.7 * dom).backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    g_grl, g_sub = grads(True), grads(False)
    for n in g_grl:
        if n.startswith("encoder") or n.startswith("classifier"):
            torch.testing.assert_close(g_grl[n], g_sub[n])
        else:
            torch.testing.assert_close(g_grl[n], -g_sub[n] / 0.7)


# ---------------------------------------------------------------- FGM and PGD

class _Text(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embeddings = torch.nn.Module()
        self.embeddings.word_embeddings = torch.nn.Embedding(12, 4)
        self.embeddings.position_embeddings = torch.nn.Embedding(6, 4)
        self.unused_word_embeddings = torch.nn.Embedding(3, 4)      # matches emb_name but never gets a gradient
        self.head = torch.nn.Linear(4, 2)

    def forward(self, ids):
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        return self.head((self.embeddings.word_embeddings(ids) + self.embeddings.position_embeddings(pos)).mean(1))


def _model_with_grad(seed=0):
    torch.manual_seed(seed)
    model = _Text()
    ids, y = torch.randint(0, 12, (6, 5)), torch.randint(0, 2, (6,))
    F.cross_entropy(model(ids), y).backward()
    return model, ids, y


@pytest.mark.parametrize("epsilon", [0.1, 1.0, 3.0])
def test_fgm_attack_moves_only_embedding_params_by_eps_unit_gradient_and_restores_exactly(epsilon):
    model, _, _ = _model_with_grad()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    fgm = FGM(model, epsilon=epsilon)
    fgm.attack()
    for n, p in model.named_parameters():
        if n == "embeddings.word_embeddings.weight":
            torch.testing.assert_close(p.detach() - before[n], epsilon * p.grad / p.grad.norm())
            np.testing.assert_allclose(fgm_perturbation(p.grad.numpy(), epsilon), (p.detach() - before[n]).numpy(),
                                       rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(p.detach(), before[n]), n              # position embeddings, head, gradient-less param
    fgm.restore()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n


def test_pgd_stays_in_the_eps_ball_restores_and_keeps_the_clean_gradient():
    model, ids, y = _model_with_grad(3)
    w = model.embeddings.word_embeddings.weight
    clean, clean_grad = w.detach().clone(), w.grad.clone()
    head_grad = model.head.weight.grad.clone()
    pgd = PGD(model, epsilon=0.4, alpha=0.25)
    pgd.backup_grad()
    for t in range(5):
        pgd.attack(is_first_attack=(t == 0))
        assert (w.detach() - clean).norm() <= 0.4 + 1e-6
        if t == 0:
            torch.testing.assert_close(w.detach() - clean, 0.25 * clean_grad / clean_grad.norm())
        model.zero_grad()
        F.cross_entropy(model(ids), y).backward()
    pgd.restore_grad()
    torch.testing.assert_close(w.grad, clean_grad)
    torch.testing.assert_close(model.head.weight.grad, head_grad)
    pgd.restore()
    assert torch.equal(w.detach(), clean)
    assert torch.equal(model.unused_word_embeddings.weight.detach(), model.unused_word_embeddings.weight.detach())


def test_attack_without_gradients_changes_nothing():
    model = _Text()
    before = model.embeddings.word_embeddings.weight.detach().clone()
    FGM(model).attack()
    PGD(model).attack(is_first_attack=True)
    assert torch.equal(model.embeddings.word_embeddings.weight.detach(), before)


def _literal_pgd_step(model, ids, y, epsilon, alpha, k, lr):
    "The PGD training step written out by hand, without the PGD class, with plain SGD."
    E = model.embeddings.word_embeddings.weight
    model.zero_grad()
    F.cross_entropy(model(ids), y).backward()
    clean = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    E_clean, delta = E.detach().clone(), torch.zeros_like(E)
    for _ in range(k):
        with torch.no_grad():
            if E.grad.norm() > 0:
                delta += alpha * E.grad / E.grad.norm()
                delta *= min(1.0, epsilon / delta.norm().item())
            E.copy_(E_clean + delta)
        model.zero_grad()
        F.cross_entropy(model(ids), y).backward()
    with torch.no_grad():
        E.copy_(E_clean)
        for n, p in model.named_parameters():
            if p.grad is not None:
                p -= lr * (p.grad + clean[n])


@pytest.mark.parametrize("k", [1, 2, 4])
def test_pgd_train_step_matches_a_literal_implementation(k):
    model, ids, y = _model_with_grad(5)
    ref = _Text()
    ref.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    clean, adv = pgd_train_step(model, lambda: F.cross_entropy(model(ids), y), opt, PGD(model, 0.3, 0.2), k=k)
    assert adv >= clean - 1e-6                                   # the attack does not lower the loss
    _literal_pgd_step(ref, ids, y, 0.3, 0.2, k, 0.2)
    for (n, p), q in zip(model.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p.detach(), q.detach(), msg=n)


class _Logistic(torch.nn.Module):
    def __init__(self, E, w):
        super().__init__()
        self.word_embeddings = torch.nn.Parameter(torch.tensor(E))
        self.w = torch.nn.Parameter(torch.tensor(w))

    def forward(self):
        return self.word_embeddings @ self.w


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6), st.integers(1, 4), st.integers(1, 4),
       st.floats(0.05, 2.0), st.floats(0.05, 1.0), st.floats(0.01, 1.0))
def test_pgd_sgd_step_is_pgd_train_step_on_logistic_regression(seed, n, d, k, epsilon, alpha, lr):
    rng = np.random.default_rng(seed)
    E, w, y = rng.normal(size=(n, d)), rng.normal(size=d), rng.integers(0, 2, size=n)
    E_in, w_in = E.copy(), w.copy()
    out = pgd_sgd_step(E, w, y, epsilon, alpha, k, lr)
    assert np.array_equal(E, E_in) and np.array_equal(w, w_in)   # inputs untouched
    model = _Logistic(E, w)
    pgd_train_step(model, lambda: F.binary_cross_entropy_with_logits(model(), torch.tensor(y, dtype=torch.float64)),
                   torch.optim.SGD(model.parameters(), lr=lr), PGD(model, epsilon, alpha), k=k)
    np.testing.assert_allclose(out["E"], model.word_embeddings.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["w"], model.w.detach().numpy(), rtol=1e-9, atol=1e-12)


def test_logistic_grads_match_autograd():
    rng = np.random.default_rng(0)
    E, w, y = rng.normal(size=(5, 3)), rng.normal(size=3), np.array([0, 1, 1, 0, 1])
    Et, wt = torch.tensor(E, requires_grad=True), torch.tensor(w, requires_grad=True)
    F.binary_cross_entropy_with_logits(Et @ wt, torch.tensor(y, dtype=torch.float64)).backward()
    gE, gw = logistic_grads(E, w, y)
    np.testing.assert_allclose(gE, Et.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10)


def _pgd_wrong(E, w, y, epsilon, alpha, k, lr, mistake):
    "pgd_sgd_step with one of the usual mistakes, written out."
    E, w, y = (np.asarray(a, float) for a in (E, w, y))
    gE0, gw0 = logistic_grads(E, w, y)
    delta, g, gw = np.zeros_like(E), gE0, gw0
    for _ in range(k):
        if np.linalg.norm(g) > 0:
            delta = delta + alpha * g / np.linalg.norm(g)
        if mistake == "rows":
            rows = np.linalg.norm(delta, axis=1, keepdims=True)
            delta = delta * np.minimum(1.0, epsilon / np.where(rows > 0, rows, 1.0))
        elif np.linalg.norm(delta) > epsilon:
            delta = delta * epsilon / np.linalg.norm(delta)
        g, gw = logistic_grads(E + delta, w, y)
    if mistake == "no restore":
        return {"E": E + delta - lr * (gE0 + g), "w": w - lr * (gw0 + gw)}
    if mistake == "adversarial only":
        return {"E": E - lr * g, "w": w - lr * gw}
    return {"E": E - lr * (gE0 + g), "w": w - lr * (gw0 + gw)}


# ---------------------------------------------------------------- CORAL, MMD, moment matching

@settings(max_examples=40, deadline=None)
@given(matrices, matrices)
def test_coral_matches_the_formula_with_np_cov(s, t):
    if s.shape[1] != t.shape[1]:
        t = np.resize(t, (t.shape[0], s.shape[1]))
    d = s.shape[1]
    expected = ((np.cov(s.T).reshape(d, d) - np.cov(t.T).reshape(d, d)) ** 2).sum() / (4 * d * d)
    np.testing.assert_allclose(coral_loss(s, t), expected, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(float(coral_loss(torch.tensor(s), torch.tensor(t))), expected, rtol=1e-9, atol=1e-9)


def test_coral_is_differentiable_and_mmd_behaves():
    s = torch.randn(30, 3, dtype=torch.float64, requires_grad=True)
    t = 2 * torch.randn(30, 3, dtype=torch.float64)
    coral_loss(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 2)), rng.normal(size=(40, 2))
    assert mmd_rbf(a, a) == pytest.approx(0.0, abs=1e-12)
    assert mmd_rbf(a, b + 3) > mmd_rbf(a, b) >= -1e-12
    # a fixed sigma: direct double loop
    k = lambda x, y: math.exp(-np.sum((x - y) ** 2) / 2.0)
    direct = (np.mean([[k(x, y) for y in a[:5]] for x in a[:5]]) + np.mean([[k(x, y) for y in b[:4]] for x in b[:4]])
              - 2 * np.mean([[k(x, y) for y in b[:4]] for x in a[:5]]))
    assert mmd_rbf(a[:5], b[:4], sigma=1.0) == pytest.approx(direct, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(matrices, matrices)
def test_match_moments_gives_each_feature_the_target_moments(s, t):
    if s.shape[1] != t.shape[1]:
        t = np.resize(t, (t.shape[0], s.shape[1]))
    out = match_moments(s, t)
    assert out.shape == s.shape
    varies = s.std(0) > 1e-6 * (1 + np.abs(s).max())
    np.testing.assert_allclose(out.mean(0), t.mean(0), atol=1e-6 * (1 + np.abs(t).max()))
    np.testing.assert_allclose(out.std(0)[varies], t.std(0)[varies], rtol=1e-5, atol=1e-6 * (1 + np.abs(t).max()))


def test_the_mixing_snippet_does_not_align():
    rng = np.random.default_rng(0)
    s, t = rng.normal([0, 100], [1, 30], size=(200, 2)), rng.normal([5, 0], [2, 1], size=(200, 2))
    wrong = mixed_moments_snippet(s, t)
    assert np.abs(wrong.mean(0) - t.mean(0)).max() > 1
    np.testing.assert_allclose(match_moments(s, t).mean(0), t.mean(0), atol=1e-9)


# ---------------------------------------------------------------- EDA

def test_eda_is_deterministic_and_edits():
    text = "I bought this great book and the story was good but the battery broke"
    a, b = eda(text, alpha=0.2, n_aug=8, seed=7), eda(text, alpha=0.2, n_aug=8, seed=7)
    assert a == b and len(a) == 8 and all(isinstance(x, str) and x for x in a)
    assert any(x != text for x in a)
    assert eda(text, seed=1) != eda(text, seed=2)
    assert len(eda("one", n_aug=4, seed=0)) == 4                 # a one-word text never becomes empty
    swap = eda(text, n_aug=3, seed=0)[2]                          # the third edit is a swap: same words, reordered
    assert sorted(swap.split()) == sorted(text.split())


# ---------------------------------------------------------------- exercises

def test_there_are_at_least_five_exercises_and_references_pass():
    exercises = list_exercises("adversarial")
    assert len(exercises) >= 5
    ids = {ex.id for ex in exercises}
    assert "adversarial.pgd_sgd_step" in ids and "adversarial.reversed_gradient" not in ids
    for ex in exercises:
        assert check(ex.id, ex.reference, record=False, verbose=False).passed, ex.id


@pytest.mark.parametrize("exercise_id, wrong, words", [
    ("adversarial.pgd_sgd_step", lambda *a: _pgd_wrong(*a, "no restore"), "restore the clean embeddings"),
    ("adversarial.pgd_sgd_step", lambda *a: _pgd_wrong(*a, "adversarial only"), "clean gradient is missing"),
    ("adversarial.pgd_sgd_step", lambda *a: _pgd_wrong(*a, "rows"), "each row separately"),
    ("adversarial.dann_lambda", lambda progress, gamma=10.0: 2 / (1 + math.exp(-gamma * progress)), "− 1"),
    ("adversarial.fgm_perturbation", lambda grad, epsilon=1.0: epsilon * np.sign(grad), "FGSM"),
    ("adversarial.fgm_perturbation", lambda grad, epsilon=1.0: epsilon * np.asarray(grad, float), "normalise"),
    ("adversarial.coral_loss", lambda s, t: ((np.cov(np.asarray(s).T, bias=True).reshape(np.shape(s)[1], -1)
                                              - np.cov(np.asarray(t).T, bias=True).reshape(np.shape(s)[1], -1)) ** 2
                                             ).sum() / (4 * np.shape(s)[1] ** 2), "n − 1"),
    ("adversarial.match_moments", lambda s, t: (np.asarray(s) - np.mean(s)) / np.std(s) * np.std(t) + np.mean(t),
     "per feature"),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_typical_mistakes_fail_with_a_teaching_hint(exercise_id, wrong, words):
    result = check(exercise_id, wrong, record=False, verbose=False)
    assert not result.passed and words in result.feedback, result.feedback[:500]
    assert get_exercise(exercise_id).hints
