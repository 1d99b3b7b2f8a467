"""domain_tutor.metrics against scikit-learn on 10⁶ samples: each metric timed side by side, results checked equal.

Run: python benchmarks/metrics_vs_sklearn.py [n]. Prints a table of times (best of 3) and speed-ups (sklearn time /
ours); the target is ≥ 1× for every metric. ECE has no scikit-learn function: its counterpart is
`sklearn.calibration.calibration_curve` plus the weighted gap, which computes the same bins."""
import sys
import time
import warnings

import numpy as np
import sklearn.metrics as skm
from sklearn.calibration import calibration_curve

import domain_tutor.metrics as M


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def sklearn_ece(y, p, n_bins=15):
    freq, conf = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], p), minlength=n_bins)
    return float(np.sum(counts[counts > 0] / len(p) * np.abs(freq - conf)))


def main(n=1_000_000):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, n)
    score = np.round(rng.normal(size=n) + y, 3)            # rounded: many ties, as real classifier scores have
    prob = 1 / (1 + np.exp(-score))
    pred = (score > 0.5).astype(int)
    y5, p5 = rng.integers(0, 5, n), rng.integers(0, 5, n)
    rows = [
        ("confusion_matrix (5 classes)", lambda: M.confusion_matrix(y5, p5), lambda: skm.confusion_matrix(y5, p5)),
        ("accuracy", lambda: M.accuracy(y, pred), lambda: skm.accuracy_score(y, pred)),
        ("precision_recall_f1 binary", lambda: M.precision_recall_f1(y, pred),
         lambda: skm.precision_recall_fscore_support(y, pred, average="binary")[:3]),
        ("precision_recall_f1 macro (5 classes)", lambda: M.precision_recall_f1(y5, p5, average="macro"),
         lambda: skm.precision_recall_fscore_support(y5, p5, average="macro")[:3]),
        ("classification_report (5 classes)", lambda: M.classification_report(y5, p5)["macro avg"]["f1-score"],
         lambda: skm.classification_report(y5, p5, output_dict=True)["macro avg"]["f1-score"]),
        ("roc_curve", lambda: np.r_[M.roc_curve(y, score)], lambda: np.r_[skm.roc_curve(y, score)]),
        ("roc_auc", lambda: M.roc_auc(y, score), lambda: skm.roc_auc_score(y, score)),
        ("precision_recall_curve", lambda: np.r_[M.precision_recall_curve(y, score)[:2]],
         lambda: np.r_[skm.precision_recall_curve(y, score)[:2]]),
        ("average_precision", lambda: M.average_precision(y, score), lambda: skm.average_precision_score(y, score)),
        ("expected_calibration_error", lambda: M.expected_calibration_error(y, prob), lambda: sklearn_ece(y, prob)),
    ]
    print(f"{n:,} samples; best of 3 runs\n")
    print(f"{'metric':<40}{'ours (ms)':>11}{'sklearn (ms)':>14}{'speed-up':>10}  equal")
    worst = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, ours, ref in rows:
            t_ours, a = best_of(ours)
            t_ref, b = best_of(ref)
            same = np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=0, atol=1e-12)
            ratio = t_ref / t_ours
            worst = min(worst, ratio)
            print(f"{name:<40}{1e3 * t_ours:>11.1f}{1e3 * t_ref:>14.1f}{ratio:>9.1f}×  {same}")
    verdict = "met" if worst >= 1 else "NOT met"
    print(f"\nslowest speed-up {worst:.1f}× — target ≥ 1× scikit-learn for every metric: {verdict}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
