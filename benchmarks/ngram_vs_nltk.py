"""domain_tutor.ngram against nltk.lm: fit + perplexity of a trigram model, same data, same conventions, one process.

Training text: at least 200k tokens of the built-in corpus (books + dvd reviews, split into sentences); test text: at
least 20k tokens of held-out reviews. Both libraries get the same padding (two <s> before, one </s> after each sentence)
and the same vocabulary, and the script first checks that their perplexities agree. Laplace is timed in full for both.
nltk's KneserNeyInterpolated needs minutes for the whole test set, so it scores a random subsample of the test
trigrams and its time is extrapolated linearly (the output says so).

Run: python benchmarks/ngram_vs_nltk.py
"""
import math
import re
import sys
import time

import numpy as np
from nltk.lm import KneserNeyInterpolated, Laplace

from domain_tutor.concepts import tokenize
from domain_tutor.data import load_unlabeled
from domain_tutor.ngram import NGramLM

ORDER = 3
TARGET = 20.0             # Laplace: fit + perplexity at least 20× faster than nltk.lm
KN_SUBSAMPLE = 2000       # test trigrams nltk's Kneser–Ney scores before we extrapolate


def sentences(domain: str, n_texts: int, seed: int) -> list[list[str]]:
    return [tokenize(s) for text in load_unlabeled(domain, n_texts, seed)
            for s in re.split(r"(?<=[.!?])\s+", text) if tokenize(s)]


def padded(sent: list[str]) -> list[str]:
    return ["<s>"] * (ORDER - 1) + sent + ["</s>"]


def everygrams(sent: list[str]) -> list[tuple]:
    "nltk's training input with our padding: every 1..ORDER-gram that ends at a predicted token."
    p = padded(sent)
    return [tuple(p[i - m + 1:i + 1]) for i in range(ORDER - 1, len(p)) for m in range(1, ORDER + 1)]


def test_trigrams(sents: list[list[str]]) -> list[tuple]:
    return [tuple(padded(s)[i - ORDER + 1:i + 1]) for s in sents for i in range(ORDER - 1, len(padded(s)))]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> int:
    train = sentences("books", 3000, 0) + sentences("dvd", 3000, 0)
    test = sentences("books", 600, 1) + sentences("dvd", 600, 1)
    n_train, n_test = sum(map(len, train)), sum(len(s) + 1 for s in test)   # predicted test tokens include </s>
    print(f"trigram models; {n_train:,} training tokens ({len(train):,} sentences), "
          f"{n_test:,} predicted test tokens (words and </s>)")
    assert n_train >= 200_000 and n_test >= 20_000

    # our model gets nltk's vocabulary size: nltk counts <s> as a word; we add one never-seen word instead
    vocab_text = [w for s in train for w in padded(s)]
    words = set(vocab_text) - {"<s>"}
    rows = []

    # Laplace, in full for both
    ours, t_fit = timed(lambda: NGramLM(ORDER, "laplace", vocab=words | {"<never-seen>"}).fit(train))
    ppl, t_ppl = timed(lambda: ours.perplexity(test))
    ref, r_fit = timed(lambda: _fit_nltk(Laplace(ORDER), train, vocab_text))
    grams = test_trigrams(test)
    ref_ppl, r_ppl = timed(lambda: ref.perplexity(grams))
    assert math.isclose(ppl, ref_ppl, rel_tol=1e-9), (ppl, ref_ppl)
    rows.append(("Laplace", t_fit, t_ppl, r_fit, r_ppl, "", ppl, ref_ppl))

    # interpolated Kneser–Ney: nltk scores a subsample, extrapolated to the whole test set
    ours, t_fit = timed(lambda: NGramLM(ORDER, "kneser_ney", discount=0.75).fit(train))
    ppl, t_ppl = timed(lambda: ours.perplexity(test))
    ref, r_fit = timed(lambda: _fit_nltk(KneserNeyInterpolated(ORDER, discount=0.75), train, vocab_text))
    rng = np.random.default_rng(0)
    sample = [grams[i] for i in rng.choice(len(grams), size=min(KN_SUBSAMPLE, len(grams)), replace=False)]
    _, r_sample = timed(lambda: [ref.logscore(g[-1], g[:-1]) for g in sample])
    r_ppl = r_sample * len(grams) / len(sample)
    rows.append(("Kneser–Ney", t_fit, t_ppl, r_fit, r_ppl, f"nltk scored {len(sample):,} of {len(grams):,} test "
                 "trigrams; its perplexity time is extrapolated", ppl, float("nan")))

    print(f"\n{'smoothing':<11}{'ours fit':>10}{'ours ppl':>10}{'nltk fit':>10}{'nltk ppl':>10}"
          f"{'ours total':>12}{'nltk total':>12}{'ratio':>9}   perplexity (ours / nltk)")
    ratios = {}
    for name, a, b, c, d, note, p_ours, p_ref in rows:
        ratios[name] = (c + d) / (a + b)
        print(f"{name:<11}{a:>9.3f}s{b:>9.3f}s{c:>9.2f}s{d:>9.2f}s{a + b:>11.3f}s{c + d:>11.2f}s{ratios[name]:>8.0f}×"
              f"   {p_ours:.4f} / " + (f"{p_ref:.4f}" if p_ref == p_ref else "(subsample only)")
              + (f"\n           ({note})" if note else ""))
    ok = ratios["Laplace"] >= TARGET
    kn_total = rows[1][1] + rows[1][2]
    print(f"\nLaplace: {ratios['Laplace']:.0f}× faster than nltk.lm (target ≥ {TARGET:.0f}×): {'OK' if ok else 'MISSED'}")
    print(f"Kneser–Ney: ours {kn_total:.2f} s, nltk ≈ {rows[1][3] + rows[1][4]:.0f} s (extrapolated), "
          f"{ratios['Kneser–Ney']:.0f}× faster")
    return 0 if ok else 1


def _fit_nltk(model, train, vocab_text):
    model.fit([everygrams(s) for s in train], vocabulary_text=vocab_text)
    return model


if __name__ == "__main__":
    sys.exit(main())
