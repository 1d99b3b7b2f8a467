"""domain_tutor.adversarial, section 7: multi-task training, sequential fine-tuning and forgetting, and first-order
meta-learning (Reptile, FOMAML), each compared with a reference built from torch.optim / torch.autograd on random
inputs; the three exercises with their references and typical mistakes; bad inputs."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_tutor.adversarial import (MultiTaskModel, adapt, few_shot_eval, fomaml_step, forgetting, meta_train,
                                      multitask_loss, reptile_step, reptile_update, sample_episode, task_accuracy,
                                      train_multitask, train_sequential)
from domain_tutor.exercises import check, get_exercise


def _task(n, d=5, seed=0, shift=0.0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g) + shift
    return X, (X[:, 0] + 0.3 * X[:, 1] > shift).long()


def _flat(model_or_dict):
    values = model_or_dict.values() if isinstance(model_or_dict, dict) else [p.detach() for p in model_or_dict.parameters()]
    return torch.cat([v.reshape(-1) for v in values]).numpy().astype(float)


def _sgd_reference(model, X, y, steps, lr):
    "The inner loop with torch.optim.SGD on a deep copy."
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(ref(X), y).backward()
        opt.step()
    return ref


# ---------------------------------------------------------------- multi-task

@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 4), st.integers(2, 5))
def test_multitask_loss_matches_torch_cross_entropy(seed, n_tasks, n_classes):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, size=n_tasks)
    logits = [rng.normal(scale=20, size=(int(n), n_classes)) for n in sizes]
    labels = [rng.integers(0, n_classes, size=int(n)) for n in sizes]
    weights = rng.uniform(0, 3, size=n_tasks).tolist()
    expected = sum(w * F.cross_entropy(torch.tensor(z), torch.tensor(y)).item() for z, y, w in zip(logits, labels, weights))
    assert multitask_loss(logits, labels, weights) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert multitask_loss(logits, labels) == pytest.approx(
        sum(F.cross_entropy(torch.tensor(z), torch.tensor(y)).item() for z, y in zip(logits, labels)), rel=1e-9)


def test_multitask_loss_is_stable_for_huge_logits():
    assert multitask_loss([np.array([[1000.0, 0.0]])], [np.array([1])]) == pytest.approx(1000.0)


def test_one_multitask_step_is_an_adam_step_on_the_weighted_loss():
    torch.manual_seed(0)
    model = MultiTaskModel(5, num_tasks=2, hidden=7)
    ref = copy.deepcopy(model)
    a, b = _task(12, seed=1), _task(9, seed=2, shift=1.0)
    weights = [0.7, 1.9]
    train_multitask(model, [a, b], epochs=1, weights=weights, batch_size=64, lr=0.01)   # one step, full batches
    opt = torch.optim.Adam(ref.parameters(), lr=0.01)
    (weights[0] * F.cross_entropy(ref(a[0], 0), a[1]) + weights[1] * F.cross_entropy(ref(b[0], 1), b[1])).backward()
    opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p, q)


def test_train_multitask_with_shared_heads_trains_only_head_zero():
    torch.manual_seed(0)
    model = MultiTaskModel(5, num_tasks=3, hidden=6)
    untouched = [copy.deepcopy(h.state_dict()) for h in model.heads[1:]]
    hist = train_multitask(model, [_task(20, seed=1), _task(20, seed=2)], epochs=2, heads=[0, 0])
    assert list(hist.columns) == ["epoch", "loss task 0", "loss task 1"] and len(hist) == 2
    for head, before in zip(model.heads[1:], untouched):
        assert all(torch.equal(before[k], v) for k, v in head.state_dict().items())


def test_train_sequential_equals_stagewise_training_and_its_accuracies():
    torch.manual_seed(3)
    model = MultiTaskModel(5, num_tasks=2, hidden=8)
    ref = copy.deepcopy(model)
    tasks, evals = [_task(30, seed=1), _task(30, seed=2, shift=1.5)], [_task(40, seed=3), _task(40, seed=4, shift=1.5)]
    R = train_sequential(model, tasks, evals, epochs=4, shared_head=False, seed=5)
    expected = np.zeros((2, 2))
    for i, task in enumerate(tasks):
        train_multitask(ref, [task], 4, heads=[i], seed=5 + i)
        expected[i] = [task_accuracy(ref, X, y, j) for j, (X, y) in enumerate(evals)]
    np.testing.assert_allclose(R, expected)
    assert forgetting(R).shape == (1,)


def test_sequential_training_on_swapped_labels_forgets_with_one_head_but_not_with_two():
    torch.manual_seed(0)
    a = _task(60, seed=1)
    b = (a[0], 1 - a[1])
    R1 = train_sequential(MultiTaskModel(5, 1, hidden=16), [a, b], [a, b], epochs=60, lr=1e-2)
    R2 = train_sequential(MultiTaskModel(5, 2, hidden=16), [a, b], [a, b], epochs=60, lr=1e-2, shared_head=False)
    assert forgetting(R1)[0] > 0.5
    assert forgetting(R2)[0] < forgetting(R1)[0]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 6))
def test_forgetting_matches_its_definition(seed, T):
    R = np.random.default_rng(seed).uniform(0, 1, size=(T, T))
    expected = [max(R[l, j] for l in range(T - 1)) - R[T - 1, j] for j in range(T - 1)]
    np.testing.assert_allclose(forgetting(R), expected)


def test_forgetting_of_two_tasks_is_before_minus_after():
    np.testing.assert_allclose(forgetting([[0.86, 0.52], [0.71, 0.88]]), [0.15])


# ---------------------------------------------------------------- meta-learning

def test_adapt_is_plain_sgd_and_leaves_the_model_alone():
    torch.manual_seed(0)
    model = MultiTaskModel(5, 1, hidden=6)
    before = _flat(model)
    X, y = _task(16, seed=1)
    phi = adapt(model, X, y, steps=4, lr=0.2)
    np.testing.assert_allclose(_flat(phi), _flat(_sgd_reference(model, X, y, 4, 0.2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(_flat(model), before)
    np.testing.assert_array_equal(_flat(adapt(model, X, y, steps=0, lr=0.2)), before)
    with torch.no_grad():                                          # works inside no_grad too
        np.testing.assert_allclose(_flat(adapt(model, X, y, steps=4, lr=0.2)), _flat(phi), rtol=1e-6)


@pytest.mark.parametrize("n_tasks, epsilon", [(1, 0.5), (3, 0.25), (4, 1.0)])
def test_reptile_step_is_theta_plus_epsilon_times_mean_phi_minus_theta(n_tasks, epsilon):
    torch.manual_seed(n_tasks)
    model = MultiTaskModel(5, 1, hidden=6)
    tasks = [_task(10 + i, seed=i, shift=0.5 * i) for i in range(n_tasks)]
    theta = _flat(model)
    phis = np.stack([_flat(_sgd_reference(model, X, y, 3, 0.1)) for X, y in tasks])
    reptile_step(model, tasks, inner_steps=3, inner_lr=0.1, epsilon=epsilon)
    np.testing.assert_allclose(_flat(model), theta + epsilon * (phis.mean(0) - theta), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_flat(model), reptile_update(theta, phis, epsilon), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("n_episodes, inner_steps", [(1, 1), (3, 2), (2, 0)])
def test_fomaml_step_is_theta_minus_beta_times_query_gradient_at_phi(n_episodes, inner_steps):
    torch.manual_seed(10 + n_episodes)
    model = MultiTaskModel(5, 1, hidden=6)
    rng = np.random.default_rng(0)
    episodes = [sample_episode(*_task(40, seed=i, shift=0.3 * i), k_shot=3, n_query=4, rng=rng) for i in range(n_episodes)]
    theta, beta = _flat(model), 0.3
    grads = []
    for Xs, ys, Xq, yq in episodes:
        at_phi = _sgd_reference(model, Xs, ys, inner_steps, 0.2)
        loss = F.cross_entropy(at_phi(Xq), yq)
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(at_phi.parameters()))]).numpy())
    fomaml_step(model, episodes, inner_steps=inner_steps, inner_lr=0.2, outer_lr=beta)
    np.testing.assert_allclose(_flat(model), theta - beta * np.mean(grads, axis=0), rtol=1e-5, atol=1e-6)


def test_sample_episode_is_balanced_disjoint_and_reproducible():
    X = torch.arange(60, dtype=torch.float32).reshape(30, 2)
    y = torch.tensor([0] * 12 + [1] * 18)
    Xs, ys, Xq, yq = sample_episode(X, y, k_shot=4, n_query=5, rng=7)
    assert ys.bincount().tolist() == [4, 4] and yq.bincount().tolist() == [5, 5]
    support, query = set(Xs[:, 0].tolist()), set(Xq[:, 0].tolist())
    assert not support & query
    assert all(y[int(v) // 2] == label for v, label in zip(Xs[:, 0].tolist(), ys.tolist()))   # rows keep their labels
    again = sample_episode(X, y, k_shot=4, n_query=5, rng=7)
    assert torch.equal(again[0], Xs) and torch.equal(again[2], Xq)
    _, _, _, rest = sample_episode(X, y, k_shot=4, rng=0)          # n_query=None: all the other examples
    assert rest.bincount().tolist() == [8, 14]


def test_meta_train_is_reproducible_and_reptile_with_epsilon_one_lands_on_phi():
    tasks = [_task(30, seed=i, shift=0.2 * i) for i in range(3)]
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        m = MultiTaskModel(5, 1, hidden=6)
        hist = meta_train(m, tasks, 3, method="fomaml", meta_batch=2, k_shot=3, n_query=4, progress=False)
        models.append(_flat(m))
    assert list(hist.columns) == ["step", "loss"] and len(hist) == 3
    np.testing.assert_array_equal(models[0], models[1])
    # one Reptile meta-step with ε = 1 and one task per batch: θ becomes that episode's φ
    torch.manual_seed(0)
    m = MultiTaskModel(5, 1, hidden=6)
    start = copy.deepcopy(m)
    meta_train(m, tasks[:1], 1, method="reptile", meta_batch=1, k_shot=3, n_query=4, inner_steps=2, inner_lr=0.1,
               outer_lr=1.0, seed=4, progress=False)
    rng = np.random.default_rng(4)
    rng.integers(1, size=1)                                        # meta_train draws the task first, then the episode
    Xs, ys, Xq, yq = sample_episode(*tasks[0], 3, 4, rng)
    phi = adapt(start, torch.cat([Xs, Xq]), torch.cat([ys, yq]), 2, 0.1)
    np.testing.assert_allclose(_flat(m), _flat(phi), rtol=1e-5, atol=1e-6)


def test_few_shot_eval_scores_episodes_without_touching_the_model():
    torch.manual_seed(0)
    model = MultiTaskModel(5, 1, hidden=8)
    before = _flat(model)
    X, y = _task(80, seed=3)
    accs = few_shot_eval(model, X, y, k_shot=8, steps=50, lr=0.5, episodes=4, seed=1)
    assert accs.shape == (4,) and ((0 <= accs) & (accs <= 1)).all() and accs.mean() > 0.7
    np.testing.assert_array_equal(_flat(model), before)
    np.testing.assert_array_equal(accs, few_shot_eval(model, X, y, k_shot=8, steps=50, lr=0.5, episodes=4, seed=1))


@pytest.mark.parametrize("call, message", [
    (lambda: MultiTaskModel(0, 1), "in_features must be a positive int"),
    (lambda: MultiTaskModel(4, 2)(torch.ones(1, 4), task=2), "task must be an int in [0, 2)"),
    (lambda: train_multitask(MultiTaskModel(2, 1), [], 1), "tasks must be a non-empty list"),
    (lambda: train_multitask(MultiTaskModel(2, 1), [(np.ones((3, 2)), [0, 1])], 1), "tasks[0] y must be a 1-D array"),
    (lambda: train_multitask(MultiTaskModel(2, 1), [(np.ones((2, 2)), [0, 1])], 1, weights=[-1.0]), "weights must lie in"),
    (lambda: train_multitask(torch.nn.Linear(2, 2), [(np.ones((2, 2)), [0, 1])], 1), "model must be a MultiTaskModel"),
    (lambda: train_sequential(MultiTaskModel(2, 1), [(np.ones((2, 2)), [0, 1])] * 2, [(np.ones((2, 2)), [0, 1])], 1),
     "eval_sets must have one (X, y) per task"),
    (lambda: forgetting([[1.0, 0.5]]), "acc must be a square"),
    (lambda: forgetting([[0.5]]), "acc must be a square"),
    (lambda: multitask_loss([np.ones((2, 2))], [np.array([0, 2])]), "labels[0] must be 2 class ids"),
    (lambda: multitask_loss([np.ones((2, 2))], []), "one entry per task"),
    (lambda: reptile_update([0.0, 1.0], [[1.0, 2.0, 3.0]], 0.5), "adapted must have one row of 2"),
    (lambda: reptile_update([0.0], [[1.0]], 0.0), "epsilon must lie in"),
    (lambda: sample_episode(np.ones((4, 2)), [0, 0, 1, 1], k_shot=2), "needs more examples of class 0"),
    (lambda: sample_episode(np.ones((4, 2)), [0, 0, 1, 1], k_shot=0), "k_shot must be a positive int"),
    (lambda: sample_episode(np.ones((4, 2)), [0, 0, 1, 1], k_shot=1, rng="x"), "rng must be a numpy Generator"),
    (lambda: adapt(MultiTaskModel(2, 1), np.ones((2, 2)), [0, 1], steps=-1, lr=0.1), "steps must be a non-negative int"),
    (lambda: adapt(MultiTaskModel(2, 1), np.ones((2, 2)), [0, 1], steps=1, lr=0), "lr must lie in"),
    (lambda: fomaml_step(MultiTaskModel(2, 1), [(np.ones((2, 2)), [0, 1])], 1, 0.1, 0.1), "episodes must be a non-empty"),
    (lambda: meta_train(MultiTaskModel(2, 1), [(np.ones((2, 2)), [0, 1])], 1, method="maml"), "method must be"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[").replace(")", r"\)")):
        call()


# ---------------------------------------------------------------- exercises

@pytest.mark.parametrize("exercise_id", ["adversarial.multitask_loss", "adversarial.forgetting",
                                         "adversarial.reptile_update"])
def test_reference_passes_and_has_hints(exercise_id):
    ex = get_exercise(exercise_id)
    assert check(exercise_id, ex.reference, record=False, verbose=False).passed
    assert len(ex.hints) == 3


def _ce(z, y):
    z = np.asarray(z, float)
    z = z - z.max(1, keepdims=True)
    return -(z - np.log(np.exp(z).sum(1, keepdims=True)))[np.arange(len(y)), y].mean()


@pytest.mark.parametrize("exercise_id, wrong, words", [
    ("adversarial.multitask_loss", lambda z, y, weights=None: float(sum(_ce(a, b) for a, b in zip(z, y))), "ignored the weights"),
    ("adversarial.multitask_loss", lambda z, y, weights=None: float(
        sum(w * _ce(a, b) * len(b) for a, b, w in zip(z, y, weights or [1.0] * len(z))) / sum(len(b) for b in y)),
     "pooled the examples"),
    ("adversarial.forgetting", lambda R: np.diag(np.asarray(R))[:-1] - np.asarray(R)[-1, :-1], "diagonal"),
    ("adversarial.forgetting", lambda R: np.asarray(R)[-1, :-1] - np.asarray(R)[:-1, :-1].max(0), "sign is flipped"),
    ("adversarial.reptile_update", lambda t, a, e: np.asarray(t) + e * np.asarray(a).mean(0), "mean(φ) − θ"),
    ("adversarial.reptile_update", lambda t, a, e: np.asarray(t) + e * (np.asarray(a) - np.asarray(t)).sum(0), "summed"),
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_typical_mistakes_fail_with_a_teaching_hint(exercise_id, wrong, words):
    result = check(exercise_id, wrong, record=False, verbose=False)
    assert not result.passed and words in result.feedback, result.feedback[:600]
