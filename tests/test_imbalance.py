"""domain_tutor.imbalance: samplers against imbalanced-learn, class weights against scikit-learn, focal loss against
cross-entropy, thresholds, prior correction and EM label-shift estimation; bad input raises ValueError naming the argument."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from imblearn.over_sampling import RandomOverSampler as ImbOver
from imblearn.under_sampling import RandomUnderSampler as ImbUnder
from sklearn.utils.class_weight import compute_class_weight

import domain_tutor.imbalance as I
from domain_tutor.exercises import check, list_exercises


def _random_labels(rng, k=3):
    while True:
        y = rng.choice(k, size=int(rng.integers(8, 80)), p=rng.dirichlet(np.ones(k) * 2))
        if np.unique(y).size == k:
            return y


def _rows_exist(X, y, Xr, yr):
    pairs = {(tuple(np.atleast_1d(x)), int(l)) for x, l in zip(X, y)}
    return all((tuple(np.atleast_1d(x)), int(l)) in pairs for x, l in zip(Xr, yr))


@pytest.mark.parametrize("ours,theirs", [(I.RandomOverSampler, ImbOver), (I.RandomUnderSampler, ImbUnder)])
@pytest.mark.parametrize("strategy", ["auto", "all", "not minority", "not majority"])
def test_samplers_match_imblearn_counts(ours, theirs, strategy):
    rng = np.random.default_rng(0)
    for seed in range(25):
        y = _random_labels(rng)
        X = np.c_[np.arange(y.size), rng.normal(size=y.size)]
        Xr, yr = ours(sampling_strategy=strategy, random_state=seed).fit_resample(X, y)
        _, yi = theirs(sampling_strategy=strategy, random_state=seed).fit_resample(X, y)
        assert np.bincount(yr, minlength=3).tolist() == np.bincount(yi, minlength=3).tolist()
        assert len(Xr) == len(yr) and _rows_exist(X, y, Xr, yr)


@pytest.mark.parametrize("ours,theirs,over", [(I.RandomOverSampler, ImbOver, True), (I.RandomUnderSampler, ImbUnder, False)])
def test_float_and_dict_strategies_match_imblearn(ours, theirs, over):
    rng = np.random.default_rng(1)
    for _ in range(25):
        y = _random_labels(rng, k=2)
        counts = np.bincount(y)
        X = np.arange(y.size).reshape(-1, 1)
        minor = int(np.argmin(counts))
        lo = counts.min() / counts.max()
        ratio = float(rng.uniform(lo, 1.0))
        strategies = [ratio, {minor: int(counts[minor] + 3)} if over else {1 - minor: int(counts[minor])}]
        for s in strategies:
            try:
                _, yi = theirs(sampling_strategy=s, random_state=0).fit_resample(X, y)
            except ValueError:
                with pytest.raises(ValueError, match="sampling_strategy"):
                    ours(sampling_strategy=s, random_state=0).fit_resample(X, y)
                continue
            Xr, yr = ours(sampling_strategy=s, random_state=0).fit_resample(X, y)
            assert np.bincount(yr, minlength=2).tolist() == np.bincount(yi, minlength=2).tolist(), s
            assert _rows_exist(X, y, Xr, yr)


def test_samplers_accept_lists_of_texts():
    texts = [f"review {i}" for i in range(20)]
    y = [1 if i < 4 else 0 for i in range(20)]
    Xo, yo = I.RandomOverSampler(random_state=0).fit_resample(texts, y)
    assert isinstance(Xo, list) and np.bincount(yo).tolist() == [16, 16]
    assert all(y[texts.index(t)] == l for t, l in zip(Xo, yo))
    Xu, yu = I.RandomUnderSampler(random_state=0).fit_resample(texts, y)
    assert np.bincount(yu).tolist() == [4, 4] and len(set(Xu)) == 8        # without replacement
    a = I.RandomOverSampler(random_state=3).fit_resample(texts, y)[0]
    assert a == I.RandomOverSampler(random_state=3).fit_resample(texts, y)[0]


def test_sampler_errors_name_the_argument():
    y = [0, 0, 0, 1, 2]
    for bad in ("most", 0.5, {7: 3}, {1: 0}, [1, 2]):
        with pytest.raises(ValueError, match="sampling_strategy"):
            I.RandomOverSampler(sampling_strategy=bad).fit_resample(list("abcde"), y)
    with pytest.raises(ValueError, match="sampling_strategy"):
        I.RandomUnderSampler(sampling_strategy={0: 5}).fit_resample(list("abcde"), y)
    with pytest.raises(ValueError, match="X must"):
        I.RandomOverSampler().fit_resample(list("abc"), y)
    with pytest.raises(ValueError, match="y must"):
        I.RandomUnderSampler().fit_resample([], [])


def test_class_weights():
    rng = np.random.default_rng(2)
    for _ in range(30):
        y = rng.integers(0, int(rng.integers(1, 6)), int(rng.integers(1, 100)))
        np.testing.assert_allclose(I.class_weights(y), compute_class_weight("balanced", classes=np.unique(y), y=y), rtol=1e-12)
        for beta in (0.0, 0.9, 0.999):
            w = I.class_weights(y, "effective", beta=beta)
            counts = np.unique(y, return_counts=True)[1]
            expected = (1 - beta) / (1 - beta ** counts)
            np.testing.assert_allclose(w, expected / expected.sum() * counts.size, rtol=1e-10)
            assert np.isclose(w.sum(), counts.size)
    np.testing.assert_allclose(I.class_weights(["b", "a", "a"]), [0.75, 1.5])     # ordered by sorted label
    with pytest.raises(ValueError, match="beta"):
        I.class_weights([0, 1], "effective", beta=1.0)
    with pytest.raises(ValueError, match="scheme"):
        I.class_weights([0, 1], "sqrt")
    with pytest.raises(ValueError, match="y must"):
        I.class_weights([[0, 1]])


def test_focal_loss_gamma0_is_cross_entropy_with_gradients():
    g = torch.Generator().manual_seed(0)
    for n, k in ((1, 2), (7, 3), (32, 5)):
        z = torch.randn(n, k, generator=g, dtype=torch.float64, requires_grad=True)
        t = torch.randint(0, k, (n,), generator=g)
        for red in ("mean", "sum", "none"):
            a, b = I.focal_loss(z, t, gamma=0.0, reduction=red), F.cross_entropy(z, t, reduction=red)
            assert torch.allclose(a, b, atol=1e-12)
            ga, = torch.autograd.grad(a.sum(), z)
            gb, = torch.autograd.grad(b.sum(), z)
            assert torch.allclose(ga, gb, atol=1e-12)
        assert torch.allclose(I.FocalLoss(gamma=0)(z, t), F.cross_entropy(z, t))


def test_focal_loss_formula_and_alpha():
    z, t = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    pt = torch.softmax(z, -1)[torch.arange(3), t]
    expected = -(0.25 * (t == 1) + 0.75 * (t == 0)) * (1 - pt) ** 2 * pt.log()
    assert torch.allclose(I.focal_loss(z, t, gamma=2.0, alpha=0.25, reduction="none"), expected)
    assert torch.allclose(I.FocalLoss(2.0, alpha=[0.75, 0.25])(z, t), expected.mean())
    zz = np.asarray(z.tolist())
    assert np.isclose(I.focal_loss_value(zz, t.tolist(), 2.0, [0.75, 0.25]), expected.mean().item())
    for kw, word in (({"gamma": -1.0}, "gamma"), ({"alpha": 2.0}, "alpha"), ({"alpha": [1.0, 2.0, 3.0]}, "alpha"),
                     ({"reduction": "max"}, "reduction")):
        with pytest.raises(ValueError, match=word):
            I.focal_loss(z, t, **kw)
    with pytest.raises(ValueError, match="logits"):
        I.focal_loss(z[0], t)
    with pytest.raises(ValueError, match="targets"):
        I.focal_loss(z, t[:2])


def test_weighted_sampler_balances_classes():
    y = np.array([0] * 95 + [1] * 5)
    s = I.weighted_sampler(y, num_samples=40000, generator=torch.Generator().manual_seed(0))
    assert isinstance(s, torch.utils.data.WeightedRandomSampler)
    assert abs(y[list(s)].mean() - 0.5) < 0.02
    assert len(I.weighted_sampler(torch.tensor(y))) == 100
    with pytest.raises(ValueError, match="num_samples"):
        I.weighted_sampler(y, num_samples=-1)


def test_best_threshold_is_exhaustive():
    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(1, 40))
        y, s = rng.integers(0, 2, n), rng.random(n).round(1)
        for metric in ("f1", "accuracy", "balanced_accuracy"):
            th, v = I.best_threshold(y, s, metric)
            vals = []
            for c in np.unique(s):
                p = (s >= c).astype(int)
                tp, fp = int(((p == 1) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum())
                fn, tn = int(((p == 0) & (y == 1)).sum()), int(((p == 0) & (y == 0)).sum())
                if metric == "f1":
                    vals.append(2 * tp / (2 * tp + fp + fn) if 2 * tp + fp + fn else 0.0)
                elif metric == "accuracy":
                    vals.append((tp + tn) / n)
                else:
                    r = [tp / (tp + fn) for _ in [0] if tp + fn] + [tn / (tn + fp) for _ in [0] if tn + fp]
                    vals.append(sum(r) / len(r))
            i = int(np.argmax(vals))
            assert np.isclose(v, vals[i]) and th == np.unique(s)[i], (metric, y, s)
        assert I.f1_threshold(y, s) == pytest.approx(I.best_threshold(y, s))
    for args, word in ((([0, 3], [0.1, 0.2]), "y_true"), (([0, 1], [0.1, np.nan]), "scores"),
                       (([0, 1], [0.1, 0.2], "auc"), "metric")):
        with pytest.raises(ValueError, match=word):
            I.best_threshold(*args)


def test_adjust_priors_and_em_recovers_a_known_prior():
    np.testing.assert_allclose(I.adjust_priors([0.9, 0.1], [0.9, 0.1], [0.5, 0.5]), [0.5, 0.5])
    rng = np.random.default_rng(4)
    means = np.array([-1.5, 0.0, 1.5])
    for true_prior in ([0.6, 0.3, 0.1], [0.1, 0.2, 0.7]):
        y = rng.choice(3, size=30000, p=true_prior)
        x = rng.normal(means[y], 1.0)
        loglik = -0.5 * (x[:, None] - means) ** 2                    # calibrated posteriors for uniform source priors
        post = np.exp(loglik - loglik.max(1, keepdims=True))
        post /= post.sum(1, keepdims=True)
        est, adj = I.em_label_shift(post, [1 / 3] * 3)
        np.testing.assert_allclose(est, true_prior, atol=0.02)
        np.testing.assert_allclose(adj.sum(1), 1.0)
        np.testing.assert_allclose(adj, I.adjust_priors(post, [1 / 3] * 3, est))
    for call, word in ((lambda: I.adjust_priors([0.5, 0.5], [0.5, 0.6], [0.5, 0.5]), "source_priors"),
                       (lambda: I.adjust_priors([0.5, 0.5], [0.5, 0.5], [0.0, 1.0]), "target_priors"),
                       (lambda: I.adjust_priors([0.5, 0.7], [0.5, 0.5], [0.5, 0.5]), "probs"),
                       (lambda: I.em_label_shift([0.5, 0.5], [0.5, 0.5]), "probs"),
                       (lambda: I.em_label_shift([[0.5, 0.5]], [0.5, 0.5], max_iter=0), "max_iter")):
        with pytest.raises(ValueError, match=word):
            call()


def test_exercises_pass_with_references_and_there_are_five():
    exercises = list_exercises("imbalance")
    assert len(exercises) >= 5 and "imbalance.prior_shift" in {ex.id for ex in exercises}
    for ex in exercises:
        assert check(ex.id, ex.reference, record=False, verbose=False).passed
        assert ex.hints and ex.diagnose is not None


@pytest.mark.parametrize("sampler", ["RandomOverSampler", "RandomUnderSampler"])
def test_samplers_refuse_what_imblearn_refuses(sampler):
    # regression: continuous y (each float a class) and a single-class y passed silently; imbalanced-learn raises
    import imblearn.over_sampling
    import imblearn.under_sampling
    ours = getattr(I, sampler)
    theirs = getattr(imblearn.over_sampling if "Over" in sampler else imblearn.under_sampling, sampler)
    X = np.arange(12.0).reshape(-1, 1)
    for y, word in ((np.linspace(0, 1, 12), "continuous"), (np.zeros(12, int), "more than 1 class"),
                    ([0, 1] * 5 + [np.nan, 1], "NaN"), (["a"] * 6 + [None] * 6, "None")):
        with pytest.raises((ValueError, TypeError)):                   # imblearn: TypeError from numpy for None
            theirs(random_state=0).fit_resample(X, y)
        with pytest.raises(ValueError, match=word):
            ours(random_state=0).fit_resample(X, y)


@pytest.mark.parametrize("sampler", ["RandomOverSampler", "RandomUnderSampler"])
def test_samplers_return_the_container_they_were_given(sampler):
    # regression: a list y came back as an ndarray; imbalanced-learn returns list for list, array for array
    import imblearn.over_sampling
    import imblearn.under_sampling
    theirs = getattr(imblearn.over_sampling if "Over" in sampler else imblearn.under_sampling, sampler)
    X, y = np.arange(10.0).reshape(-1, 1), [0] * 7 + [1] * 3
    for yy in (y, np.asarray(y)):
        _, ours_y = getattr(I, sampler)(random_state=0).fit_resample(X, yy)
        _, their_y = theirs(random_state=0).fit_resample(X, yy)
        assert type(ours_y) is type(their_y)
        assert sorted(ours_y) == sorted(their_y)


# ---------------------------------------------------------------- black-box shift estimation (Lipton et al. 2018)

def test_bbse_prior_recovers_a_planted_prior_and_refuses_bad_input():
    from domain_tutor.imbalance import bbse_prior
    rng = np.random.default_rng(0)
    ys = (rng.random(30000) < 0.3).astype(int)
    yt = (rng.random(30000) < 0.7).astype(int)
    noisy = lambda yy: np.where(rng.random(yy.size) < 0.8, yy, 1 - yy)
    np.testing.assert_allclose(bbse_prior(ys, noisy(ys), noisy(yt)), [0.3, 0.7], atol=0.03)
    # three classes, exact: target predictions distributed as C·w give back π_t
    np.testing.assert_allclose(bbse_prior([0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1]), [0.375, 0.625], atol=1e-12)
    y3 = rng.integers(0, 3, 20000)
    yt3 = rng.choice(3, 20000, p=[0.6, 0.3, 0.1])
    noisy3 = lambda yy: np.where(rng.random(yy.size) < 0.7, yy, rng.integers(0, 3, yy.size))
    np.testing.assert_allclose(bbse_prior(y3, noisy3(y3), noisy3(yt3)), [0.6, 0.3, 0.1], atol=0.04)
    with pytest.raises(ValueError, match="singular"):
        bbse_prior([0, 1], [0, 0], [0, 1])
    with pytest.raises(ValueError, match="source_preds must have the shape"):
        bbse_prior([0, 1], [0, 1, 1], [0])
    with pytest.raises(ValueError, match="source_labels"):
        bbse_prior([0.5, 1.0], [0, 1], [0])
    with pytest.raises(ValueError, match="k must be"):
        bbse_prior([0, 1], [0, 1], [0, 1], k=1)
