"""domain_tutor.metrics against scikit-learn: exact to 1e-12 on random inputs, ties, one class, zero division; bad input."""
import math
import warnings

import numpy as np
import pytest
import sklearn.metrics as skm
from sklearn.calibration import calibration_curve

import domain_tutor.metrics as M

TOL = 1e-12


def close(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.allclose(a, b, rtol=0, atol=TOL, equal_nan=True), (a, b)


def random_labels(rng, n, k):
    return rng.integers(0, k, size=n)


def cases(seed=0, n_cases=60):
    rng = np.random.default_rng(seed)
    for _ in range(n_cases):
        n, k = int(rng.integers(1, 60)), int(rng.integers(1, 5))
        yield rng, random_labels(rng, n, k), random_labels(rng, n, k)


@pytest.fixture(autouse=True)
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def test_confusion_matrix_and_accuracy():
    for rng, t, p in cases():
        close(M.confusion_matrix(t, p), skm.confusion_matrix(t, p))
        close(M.accuracy(t, p), skm.accuracy_score(t, p))
        labels = rng.permutation(np.unique(np.r_[t, p, [7]]))
        close(M.confusion_matrix(t, p, labels=labels), skm.confusion_matrix(t, p, labels=labels))
    s = np.array(["cat", "dog", "cat", "eel"])
    close(M.confusion_matrix(s, s[::-1]), skm.confusion_matrix(s, s[::-1]))
    b = np.array([True, False, True])
    close(M.confusion_matrix(b, ~b), skm.confusion_matrix(b, ~b))
    big = np.array([10**12, 5, 10**12])
    close(M.confusion_matrix(big, big[::-1]), skm.confusion_matrix(big, big[::-1]))


@pytest.mark.parametrize("average", ["binary", "macro", "micro", "weighted", None])
@pytest.mark.parametrize("zero_division", [0.0, 1.0, np.nan])
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 0.0])
def test_precision_recall_f1(average, zero_division, beta):
    for rng, t, p in cases(seed=1):
        if average == "binary" and np.unique(np.r_[t, p]).size > 2:
            t, p = t % 2, p % 2
        ours = M.precision_recall_f1(t, p, average=average, beta=beta, zero_division=zero_division)
        ref = skm.precision_recall_fscore_support(t, p, average=average, beta=beta, zero_division=zero_division)[:3]
        close(ours, ref)
    # zero division: nothing predicted positive, no positives at all
    for t, p in [([0, 0, 0], [0, 0, 0]), ([1, 0, 1], [0, 0, 0]), ([0, 0], [1, 1]), ([2, 2], [2, 2])]:
        close(M.precision_recall_f1(t, p, average=average if average != "binary" else "binary", beta=beta,
                                    zero_division=zero_division),
              skm.precision_recall_fscore_support(t, p, average=average, beta=beta, zero_division=zero_division)[:3])


def test_pos_label_and_labels():
    t, p = np.array([3, 5, 5, 3, 5]), np.array([5, 5, 3, 3, 5])
    close(M.precision_recall_f1(t, p, pos_label=3), skm.precision_recall_fscore_support(t, p, pos_label=3, average="binary")[:3])
    close(M.precision_recall_f1(t, p, average=None, labels=[5, 3, 9]),
          skm.precision_recall_fscore_support(t, p, average=None, labels=[5, 3, 9])[:3])
    with pytest.raises(ValueError, match="pos_label"):
        M.precision_recall_f1(t, p, pos_label=1)


def test_classification_report():
    for rng, t, p in cases(seed=2, n_cases=30):
        ours = M.classification_report(t, p)
        ref = skm.classification_report(t, p, output_dict=True, zero_division=0)
        assert list(ours) == list(ref)
        for key, value in ref.items():
            if isinstance(value, dict):
                for metric in value:
                    close(ours[key][metric], value[metric])
            else:
                close(ours[key], value)
    text = str(M.classification_report([0, 1, 1], [0, 1, 0]))
    assert "precision" in text and "macro avg" in text and "weighted avg" in text


def score_cases(seed=3, n_cases=80):
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        n = int(rng.integers(2, 80))
        t = rng.integers(0, 2, size=n)
        if i % 7 == 0:
            t[:] = 0
            t[0] = 1
        s = rng.integers(0, 5, size=n).astype(float) if i % 2 else rng.normal(size=n)   # ties in half the cases
        yield t, s


def test_roc_curve_and_auc():
    for t, s in score_cases():
        for drop in (True, False):
            close(np.r_[M.roc_curve(t, s, drop_intermediate=drop)],
                  np.r_[skm.roc_curve(t, s, drop_intermediate=drop)])
        if np.unique(t).size == 2:
            close(M.roc_auc(t, s), skm.roc_auc_score(t, s))
    for t in ([0, 0, 0], [1, 1, 1]):        # a single class: sklearn returns nan curves, AUC is undefined
        close(np.r_[M.roc_curve(t, [0.1, 0.5, 0.2])], np.r_[skm.roc_curve(t, [0.1, 0.5, 0.2])])
        with pytest.warns(skm._classification.UndefinedMetricWarning, match="one class"):
            assert math.isnan(M.roc_auc(t, [0.1, 0.5, 0.2]))           # as scikit-learn >= 1.6: NaN and a warning
    close(M.roc_auc([-1, 1, -1, 1], [0.1, 0.4, 0.35, 0.8]), skm.roc_auc_score([-1, 1, -1, 1], [0.1, 0.4, 0.35, 0.8]))


def test_auc_is_the_probability_a_positive_outranks_a_negative():
    rng = np.random.default_rng(4)
    t, s = rng.integers(0, 2, 50), rng.integers(0, 4, 50).astype(float)
    pos, neg = s[t == 1], s[t == 0]
    pairs = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    close(M.roc_auc(t, s), pairs)


def test_roc_auc_ovr():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n, k = 40, int(rng.integers(3, 6))
        t = np.r_[np.arange(k), rng.integers(0, k, n - k)]
        probs = rng.dirichlet(np.ones(k), size=n)
        close(M.roc_auc(t, probs, multi_class="ovr"), skm.roc_auc_score(t, probs, multi_class="ovr"))
    with pytest.raises(ValueError, match="multi_class"):
        M.roc_auc(t, probs)


def test_precision_recall_curve_and_average_precision():
    for t, s in list(score_cases(seed=6)) + [(np.zeros(5, int), np.arange(5.0)), (np.ones(4, int), np.arange(4.0))]:
        ours, ref = M.precision_recall_curve(t, s), skm.precision_recall_curve(t, s)
        for a, b in zip(ours, ref):
            close(a, b)
        close(M.average_precision(t, s), skm.average_precision_score(t, s))


def test_ece_matches_calibration_curve_and_definition():
    rng = np.random.default_rng(7)
    for n_bins in (1, 5, 10, 15):
        t = rng.integers(0, 2, 300)
        p = np.round(rng.uniform(size=300), 2)           # values on the bin edges too
        p[:5] = [0.0, 1.0, 0.2, 0.4, 0.6]
        conf, freq, count = M.calibration_bins(t, p, n_bins)
        f_ref, c_ref = calibration_curve(t, p, n_bins=n_bins, strategy="uniform")
        close(conf[count > 0], c_ref)
        close(freq[count > 0], f_ref)
        close(M.expected_calibration_error(t, p, n_bins), np.sum(count[count > 0] / 300 * np.abs(f_ref - c_ref)))
    probs = rng.dirichlet(np.ones(3), 200)
    y = rng.integers(0, 3, 200)
    conf, hit = probs.max(1), probs.argmax(1) == y
    edges = np.linspace(0, 1, 16)
    ece = sum(abs(hit[m].mean() - conf[m].mean()) * m.mean()
              for m in [(conf > lo) & (conf <= hi) for lo, hi in zip(edges[:-1], edges[1:])] if m.any())
    close(M.expected_calibration_error(y, probs), ece)


def test_temperature_scaling_recovers_a_known_temperature():
    rng = np.random.default_rng(8)
    z = rng.normal(scale=2, size=(4000, 4))
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = (rng.uniform(size=(4000, 1)) > p.cumsum(1)).sum(1)
    T = M.temperature_scale(3.0 * z, y)                  # over-confident logits: T should be close to 3
    assert abs(T - 3.0) < 0.3, T
    grid = np.linspace(T * 0.9, T * 1.1, 201)

    def nll(t):
        s = 3.0 * z / t
        return np.mean(np.log(np.exp(s).sum(1)) - s[np.arange(len(y)), y])
    assert nll(T) <= min(nll(g) for g in grid) + 1e-9


def test_bootstrap_ci_and_paired_bootstrap():
    rng = np.random.default_rng(9)
    t = rng.integers(0, 2, 400)
    p = np.where(rng.uniform(size=400) < 0.8, t, 1 - t)
    low, high = M.bootstrap_ci(M.accuracy, t, p, n_boot=500, seed=1)
    acc = M.accuracy(t, p)
    assert low < acc < high and 0.03 < high - low < 0.12
    assert M.bootstrap_ci("accuracy", t, p, n_boot=500, seed=1) == (low, high)
    # the fast path and the generic one agree
    generic = M.bootstrap_ci(lambda a, b: float(np.mean(a == b)), t, p, n_boot=500, seed=1)
    close(generic, (low, high))
    worse = np.where(rng.uniform(size=400) < 0.6, t, 1 - t)
    assert M.paired_bootstrap("accuracy", t, p, worse, n_boot=500) < 0.01
    assert M.paired_bootstrap("accuracy", t, p, p, n_boot=200) == 1.0
    noisy = p.copy()
    noisy[:3] = 1 - noisy[:3]
    assert M.paired_bootstrap("macro_f1", t, p, noisy, n_boot=200) > 0.05


def test_roc_auc_positive_class_is_the_greater_label():
    # regression: {1, 2} labels gave 0.25 (1 taken as positive) and string labels raised; scikit-learn gives 0.75
    s = [0.1, 0.4, 0.35, 0.8]
    for t in ([1, 1, 2, 2], ["neg", "neg", "pos", "pos"], [0, 0, 1, 1], [-1, -1, 1, 1], [False, False, True, True]):
        assert M.roc_auc(t, s) == skm.roc_auc_score(t, s) == 0.75
    assert M.roc_auc([1, 1, 2, 2], s, pos_label=1) == 0.25                      # an explicit pos_label still wins
    for fn in (M.roc_curve, M.precision_recall_curve, skm.roc_curve, skm.precision_recall_curve):
        with pytest.raises(ValueError, match="pos_label"):                       # {1, 2} without pos_label: raise
            fn([1, 1, 2, 2], s)
    close(np.r_[M.roc_curve([1, 1, 2, 2], s, pos_label=2)], np.r_[skm.roc_curve([1, 1, 2, 2], s, pos_label=2)])
    with pytest.raises(ValueError, match="pos_label"):
        M.average_precision(["neg", "pos"], [0.1, 0.2])                         # default pos_label=1 not a label
    assert M.average_precision(["neg", "pos"], [0.1, 0.2], pos_label="pos") == 1.0


def test_roc_auc_ovr_needs_probabilities():
    with pytest.raises(ValueError, match="sum to 1"):
        M.roc_auc([0, 1, 2], [[0.5, 0.2, 0.2], [0.2, 0.5, 0.2], [0.2, 0.2, 0.5]], multi_class="ovr")


@pytest.mark.parametrize("fn,name,word", [
    (lambda: M.accuracy([0, 1], [np.nan, 1]), "y_pred", "NaN"),
    (lambda: M.accuracy([np.nan, 1], [0, 1]), "y_true", "NaN"),
    (lambda: M.precision_recall_f1([0, 1], [np.inf, 1], average="macro"), "y_pred", "infinity"),
    (lambda: M.confusion_matrix([0, 1], [np.nan, 1]), "y_pred", "NaN"),            # once blamed an absent labels=
    (lambda: M.accuracy(["a", "b"], [0, 1]), "y_true", "Mix of label types"),
    (lambda: M.confusion_matrix(["a", "b"], [0, 1]), "y_pred", "Mix of label types"),
    (lambda: M.confusion_matrix(np.array(["a", 1], dtype=object), ["a", "b"]), "y_true", "mixes string and number"),
    (lambda: M.precision_recall_f1([None, 1], [0, 1]), "y_true", "None"),
    (lambda: M.classification_report([0, 1], np.array([0, None], dtype=object)), "y_pred", "None"),
    (lambda: M.accuracy([0.5, 1.5], [0.5, 1.5]), "y_true", "continuous"),
    (lambda: M.calibration_bins(["neg", "pos"], [0.2, 0.7]), "y_true", "0/1"),
    (lambda: M.expected_calibration_error(["neg", "pos"], [0.2, 0.7]), "y_true", "0/1"),
    (lambda: M.expected_calibration_error(["a", "b"], [[0.2, 0.8], [0.7, 0.3]]), "y_true", "class indices"),
    (lambda: M.roc_auc([0, None, 1], [0.1, 0.2, 0.3]), "y_true", "None"),
])
def test_bad_labels_raise_naming_the_argument(fn, name, word):
    # regression: these passed silently (accuracy 0.5, macro-F1 1/3, ECE counting strings as negatives) or crashed
    # inside numpy with "'<' not supported"; scikit-learn refuses all of them
    with pytest.raises(ValueError) as err:
        fn()
    assert name in str(err.value) and word in str(err.value), str(err.value)


BAD = [
    (lambda: M.accuracy([0, 1], [0]), "same length"),
    (lambda: M.confusion_matrix([0, 1, 2], [0, 1, 1], labels=[0, 1]), "labels"),
    (lambda: M.confusion_matrix(["a", "b"], ["a", "c"], labels=["a", "b"]), "labels"),
    (lambda: M.precision_recall_f1([0, 1], [0, 1], average="mean"), "average"),
    (lambda: M.precision_recall_f1([0, 1, 2], [0, 1, 2]), "average"),
    (lambda: M.precision_recall_f1([0, 1], [0, 1], zero_division=5), "zero_division"),
    (lambda: M.roc_curve([0, 1], [0.1, np.nan]), "y_score"),
    (lambda: M.roc_auc([0, 1], [0.1, np.inf]), "y_score"),
    (lambda: M.average_precision([0, 1, 1], [0.1, 0.2]), "same length"),
    (lambda: M.roc_auc([0, 1, 2], [0.1, 0.2, 0.3]), "binary"),
    (lambda: M.roc_auc([0, 1], [0.1, 0.2], multi_class="ovo"), "multi_class"),
    (lambda: M.expected_calibration_error([0, 1], [0.2, 1.2]), "probs"),
    (lambda: M.expected_calibration_error([0, 1], [0.2, np.nan]), "probs"),
    (lambda: M.expected_calibration_error([0, 1], [0.2, 0.3], n_bins=0), "n_bins"),
    (lambda: M.bootstrap_ci("accuracy", [0, 1], [0, 1], alpha=1.5), "alpha"),
    (lambda: M.bootstrap_ci("auc", [0, 1], [0, 1]), "metric"),
    (lambda: M.paired_bootstrap("accuracy", [0, 1], [0, 1], [0]), "pred_b"),
    (lambda: M.temperature_scale([[1.0, 2.0]], [2]), "labels"),
]


@pytest.mark.parametrize("fn,word", BAD, ids=[w + str(i) for i, (_, w) in enumerate(BAD)])
def test_bad_input_names_the_argument(fn, word):
    with pytest.raises(ValueError, match=word):
        fn()


@pytest.fixture(scope="module")
def tiny_lm():
    from domain_tutor.models import tiny_causal_lm
    return tiny_causal_lm(n_positions=32)


def full_sequence_ppl(model, tokenizer, text):
    import torch
    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    x = torch.tensor([ids])
    with torch.no_grad():
        out = model(x, labels=x)                        # Hugging Face shifts the labels and averages the NLL
    return math.exp(float(out.loss)), len(ids) - 1


def test_perplexity_equals_a_full_sequence_computation(tiny_lm):
    model, tokenizer = tiny_lm
    text = "the plot was slow but the ending was great"
    ref, n = full_sequence_ppl(model, tokenizer, text)
    assert n + 1 <= 32
    for stride in (1, 3, 16, 32):
        assert abs(M.perplexity(model, tokenizer, [text], stride=stride) - ref) < 1e-6 * ref


def test_sliding_window_counts_every_token_once(tiny_lm):
    model, tokenizer = tiny_lm
    text = " ".join(["the kettle boiled fast and the lid stayed shut"] * 12)
    ids = [tokenizer.bos_token_id] + tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(ids) > 3 * 32
    for stride in (1, 7, 16, 31, 32):
        nll, count = M.window_nll(model, ids, stride=stride, max_length=32)
        assert count == len(ids) - 1, (stride, count)
    # against the Hugging Face recipe: each window's labels masked to the tokens it scores, loss × their number
    import torch
    for stride in (7, 16, 31):
        total, scored_to, begin = 0.0, 1, 0
        while scored_to < len(ids):
            end = min(begin + 32, len(ids))
            x = torch.tensor([ids[begin:end]])
            labels = x.clone()
            labels[0, : scored_to - begin] = -100
            with torch.no_grad():
                total += float(model(x, labels=labels).loss) * (end - scored_to)
            scored_to, begin = end, begin + stride
        nll, count = M.window_nll(model, ids, stride=stride, max_length=32)
        assert abs(nll - total) < 1e-6 * total
        assert abs(M.perplexity(model, tokenizer, text, stride=stride, max_length=32) - math.exp(total / count)) < 1e-6 * math.exp(total / count)
    with pytest.raises(ValueError, match="stride"):
        M.perplexity(model, tokenizer, [text], stride=0)
    with pytest.raises(ValueError, match="texts"):
        M.perplexity(model, tokenizer, [])
