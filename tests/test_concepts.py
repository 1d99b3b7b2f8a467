"""Chapter 01 (domain_tutor.concepts): the shift measures against reference libraries and hand-computed values,
their behaviour on the five real English corpora (orderings with margins that held at several seeds and sizes),
bad inputs, and every exercise with its reference and a typical mistake."""
import math
import re
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from domain_tutor.concepts import (domain_classifier_error, js_divergence, kl_divergence, label_log_odds, oov_rate,
                                   pad_from_error, proxy_a_distance, shift_matrix, shift_report, tokenize,
                                   unigram_distribution, vocab_overlap, vocabulary)
from domain_tutor.data import ENGLISH_CORPORA, load_corpus
from domain_tutor.exercises import check, get_exercise, list_exercises

WORDS = ["the", "The", "plot", "PLOT!", "battery", "lid,", "dose", "it's", "5-star", "great", "Great."]
corpus = st.lists(st.lists(st.sampled_from(WORDS), min_size=1, max_size=8).map(" ".join), min_size=1, max_size=4)


def _pair(src, tgt):
    vocab = sorted(vocabulary(src) | vocabulary(tgt))
    return unigram_distribution(src, vocab), unigram_distribution(tgt, vocab)


# ---------------------------------------------------------------- tokenize, vocabulary

def test_tokenize_lowercases_and_splits_on_non_alphanumerics():
    assert tokenize("Great PLOT! it's a 5-star wi_fi café") == ["great", "plot", "it", "s", "a", "5", "star", "wi", "fi", "café"]
    assert tokenize("") == [] and tokenize(" .,;! ") == []
    with pytest.raises(TypeError, match="text"):
        tokenize(b"bytes")


def test_vocabulary_is_the_set_of_types():
    assert vocabulary(["The plot.", "the PLOT twist"]) == {"the", "plot", "twist"}
    with pytest.raises(TypeError, match="texts must be a list"):
        vocabulary("a single string")


# ---------------------------------------------------------------- vocab_overlap and oov_rate

def test_vocab_overlap_hand_computed():
    assert vocab_overlap(["the plot", "a twist"], ["the battery", "a lid"]) == pytest.approx(2 / 6)
    assert vocab_overlap(["Great plot."], ["great PLOT!"]) == 1.0
    assert vocab_overlap(["one two"], ["three"]) == 0.0
    assert vocab_overlap([], []) == 1.0            # two empty vocabularies are identical
    assert vocab_overlap(["a b"], []) == 0.0


def test_oov_rate_counts_tokens_not_types():
    # target tokens: the battery the battery life -> battery, battery, life unknown: 3/5 (types would give 2/3)
    assert oov_rate(["the plot twists", "a plot"], ["the battery", "the battery life"]) == pytest.approx(3 / 5)
    assert oov_rate(["a b"], ["a c c"]) == pytest.approx(2 / 3)
    assert oov_rate(["x"], ["X x."]) == 0.0
    assert oov_rate([], ["a b"]) == 1.0
    assert oov_rate(["a"], []) == 0.0             # nothing unknown in an empty target
    assert oov_rate(["a"], ["a b"]) != oov_rate(["a b"], ["a"])   # asymmetric


@pytest.mark.parametrize("fn", [vocab_overlap, oov_rate, js_divergence])
def test_measures_reject_bad_corpora(fn):
    with pytest.raises(TypeError, match="src_texts"):
        fn("the plot", ["x"])
    with pytest.raises(TypeError, match=r"tgt_texts\[1\]"):
        fn(["x"], ["y", 3])


# ---------------------------------------------------------------- distributions and divergences

def test_unigram_distribution_follows_vocab_order_and_ignores_other_tokens():
    np.testing.assert_allclose(unigram_distribution(["the plot the twist", "the end"], ["the", "plot", "end"]), [0.6, 0.2, 0.2])
    np.testing.assert_allclose(unigram_distribution(["b a"], ["b", "zebra", "a"]), [0.5, 0.0, 0.5])
    with pytest.raises(ValueError, match="none of the words"):
        unigram_distribution(["a"], ["zebra"])
    with pytest.raises(ValueError, match="vocab"):
        unigram_distribution(["a"], ["a", "a"])
    with pytest.raises(TypeError, match="vocab"):
        unigram_distribution(["a"], "a")


def test_kl_divergence_matches_scipy_and_is_asymmetric_and_infinite_on_disjoint_supports():
    rng = np.random.default_rng(0)
    for _ in range(50):
        p, q = rng.dirichlet(np.ones(6)), rng.dirichlet(np.ones(6))
        assert kl_divergence(p, q) == pytest.approx(entropy(p, q, base=2), rel=1e-9)
    assert kl_divergence([0.9, 0.1], [0.5, 0.5]) == pytest.approx(0.5310044, rel=1e-6)
    assert kl_divergence([0.5, 0.5], [0.9, 0.1]) == pytest.approx(0.7369656, rel=1e-6)
    assert kl_divergence([1.0, 0.0], [0.0, 1.0]) == math.inf
    with pytest.raises(ValueError, match="p must sum to 1"):
        kl_divergence([0.2, 0.2], [0.5, 0.5])
    with pytest.raises(ValueError, match="q must have the shape"):
        kl_divergence([0.5, 0.5], [0.2, 0.3, 0.5])


@settings(max_examples=60, deadline=None)
@given(corpus, corpus)
def test_js_divergence_matches_scipy_squared_distance(src, tgt):
    js = js_divergence(src, tgt)
    assert js == pytest.approx(jensenshannon(*_pair(src, tgt), base=2) ** 2, abs=1e-9)   # scipy returns the distance
    assert js == pytest.approx(js_divergence(tgt, src), abs=1e-12)                       # symmetric
    assert 0.0 <= js <= 1.0                                                              # bounded in bits


def test_js_divergence_is_0_for_identical_and_1_for_disjoint_corpora():
    assert js_divergence(["the plot"], ["The PLOT."]) == 0.0
    assert js_divergence(["battery lid"], ["plot twist twist"]) == 1.0
    # P = (2/3, 1/3), Q = (1/3, 2/3), M uniform
    assert js_divergence(["a a b"], ["a b b"]) == pytest.approx(2 / 3 * math.log2(4 / 3) + 1 / 3 * math.log2(2 / 3))
    with pytest.raises(ValueError, match="src_texts has no tokens"):
        js_divergence(["..."], ["a"])


# ---------------------------------------------------------------- proxy A-distance

def test_pad_from_error_formula():
    assert [pad_from_error(e) for e in (0.0, 0.25, 0.5, 1.0)] == [2.0, 1.0, 0.0, -2.0]
    with pytest.raises(ValueError, match="error"):
        pad_from_error(1.2)
    with pytest.raises(TypeError, match="error"):
        pad_from_error(None)


def test_proxy_a_distance_near_0_for_one_gaussian_and_near_2_for_separated_ones():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    assert proxy_a_distance(a, rng.normal(size=(400, 4))) < 0.3
    assert proxy_a_distance(a, rng.normal(size=(400, 4)) + 5) > 1.9
    assert proxy_a_distance(a[:80], rng.normal(size=(400, 4))) < 0.35     # balanced error: unequal sizes fake nothing
    assert domain_classifier_error(a, a + 5) == pytest.approx(0.0, abs=0.01)


def test_proxy_a_distance_tracks_the_exact_value_for_1d_gaussians():
    from scipy.stats import norm
    rng = np.random.default_rng(1)
    for delta in (0.5, 1.5, 3.0):
        est = proxy_a_distance(rng.normal(0, 1, (1000, 1)), rng.normal(delta, 1, (1000, 1)))
        assert est == pytest.approx(2 * (2 * norm.cdf(delta / 2) - 1), abs=0.15)


def test_proxy_a_distance_is_clipped_and_deterministic():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3))
    for seed in range(5):
        assert 0.0 <= proxy_a_distance(a, b, seed=seed) <= 2.0
    assert proxy_a_distance(a, b + 1, seed=3) == proxy_a_distance(a, b + 1, seed=3)


@pytest.mark.parametrize("src, tgt, message", [
    (np.zeros(10), np.zeros((10, 1)), "src_feats must be 2-D"),
    (np.zeros((10, 2)), np.zeros((10, 3)), "tgt_feats must have as many columns"),
    (np.zeros((3, 2)), np.zeros((10, 2)), "src_feats needs at least 5 rows"),
    (np.zeros((10, 2)), np.full((10, 2), np.nan), "tgt_feats contains NaN"),
    (np.zeros((10, 2, 2)), np.zeros((10, 2)), "src_feats must be 2-D"),
])
def test_proxy_a_distance_rejects_bad_shapes(src, tgt, message):
    with pytest.raises(ValueError, match=message):
        proxy_a_distance(src, tgt)


def test_proxy_a_distance_rejects_bad_arguments():
    x = np.zeros((10, 2))
    with pytest.raises(TypeError, match="src_feats"):
        proxy_a_distance([["a", "b"]] * 10, x)
    with pytest.raises(ValueError, match="seed"):
        proxy_a_distance(x, x + 1, seed=-1)
    with pytest.raises(ValueError, match="n_splits"):
        proxy_a_distance(x, x + 1, n_splits=1)


# ---------------------------------------------------------------- label log-odds

def test_label_log_odds_counts_texts_not_occurrences():
    texts, labels = ["a great plot", "great, GREAT", "a dull plot", "dull"], [1, 1, 0, 0]
    np.testing.assert_allclose(label_log_odds(texts, labels, ["great", "dull", "plot", "zebra"]),
                               [math.log(5), -math.log(5), 0.0, 0.0])
    assert label_log_odds(texts, labels, ["great"], smoothing=1)[0] == pytest.approx(math.log(3))
    with pytest.raises(ValueError, match="labels must hold one label per text"):
        label_log_odds(texts, [1, 0], ["a"])
    with pytest.raises(ValueError, match="labels must be 0"):
        label_log_odds(texts, [1, 2, 0, 0], ["a"])
    with pytest.raises(TypeError, match="words"):
        label_log_odds(texts, labels, "great")
    with pytest.raises(ValueError, match="smoothing"):
        label_log_odds(texts, labels, ["a"], smoothing=0)


# ---------------------------------------------------------------- the real corpora

def _first_tokens(texts, n_tokens):
    out, total = [], 0
    for text in texts:
        if total >= n_tokens:
            break
        out.append(text)
        total += len(tokenize(text))
    return out


@pytest.fixture(scope="module")
def corpora():
    return {d: load_corpus(d).shuffle(seed=0) for d in ENGLISH_CORPORA}


@pytest.fixture(scope="module")
def report(corpora):
    movies = corpora["movies"]["text"]
    half = len(movies) // 2
    samples = {d: _first_tokens(movies[:half] if d == "movies" else ds["text"], 4000) for d, ds in corpora.items()}
    samples["control"] = _first_tokens(movies[half:], 4000)          # a second, disjoint sample of movies
    return shift_report(samples, show=False)


def test_shift_report_is_tidy(report):
    assert list(report.columns) == ["source", "target", "vocab_overlap", "oov_rate", "js_divergence"]
    assert len(report) == 6 * 5 and not (report["source"] == report["target"]).any()


def test_a_second_sample_of_the_same_domain_is_closest(report):
    js, overlap = shift_matrix(report, "js_divergence"), shift_matrix(report, "vocab_overlap")
    others = [d for d in ENGLISH_CORPORA if d != "movies"]
    assert js.loc["movies", "control"] < min(js.loc["movies", d] for d in others) - 0.05
    assert overlap.loc["movies", "control"] > max(overlap.loc["movies", d] for d in others) + 0.02
    assert min(js.loc["movies", "tweets"], js.loc["movies", "drugs"]) > js.loc["movies", "products"]
    np.testing.assert_allclose(js.to_numpy(), js.to_numpy().T)
    assert np.allclose(np.diag(js), 0) and np.allclose(np.diag(overlap), 1)


def test_a_movies_model_is_best_at_home(corpora):
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    movies = corpora["movies"]
    vec = CountVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False)
    clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(movies["text"][:2000]), movies["label"][:2000])
    acc = {d: clf.score(vec.transform(ds["text"][-400:]), ds["label"][-400:]) for d, ds in corpora.items()}
    for d in ("tweets", "editorials"):
        assert acc["movies"] > acc[d] + 0.04, acc


def test_proxy_a_distance_on_word_presence_separates_domains_not_samples(corpora):
    from sklearn.feature_extraction.text import CountVectorizer
    def presence(a, b):
        vec = CountVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False, max_features=300, binary=True)
        vec.fit(a + b)
        return vec.transform(a).toarray(), vec.transform(b).toarray()
    movies = corpora["movies"]["text"]
    a, control = movies[:100], movies[len(movies) // 2:len(movies) // 2 + 100]
    same = proxy_a_distance(*presence(a, control))
    assert same < 0.35
    assert proxy_a_distance(*presence(a, corpora["editorials"]["text"][:100])) > same + 0.4
    assert proxy_a_distance(*presence(a, corpora["drugs"]["text"][:100])) > 1.4


def test_shift_report_plots_and_rejects_bad_input(report):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from domain_tutor.concepts import shift_heatmap
    ax = shift_heatmap(report, "oov_rate")
    assert "OOV" in ax.get_title()
    plt.close("all")
    with pytest.raises(TypeError, match="domains must be a dict"):
        shift_report([["a"], ["b"]])
    with pytest.raises(ValueError, match="at least two"):
        shift_report({"a": ["x"]})
    with pytest.raises(ValueError, match=r"domains\['b'\] has no tokens"):
        shift_report({"a": ["x"], "b": ["..."]}, show=False)
    with pytest.raises(ValueError, match="measure"):
        shift_matrix(report, "kl")


# ---------------------------------------------------------------- exercises

EXERCISES = ["concepts.vocab_overlap", "concepts.oov_rate", "concepts.unigram_distribution",
             "concepts.js_divergence", "concepts.pad_from_error"]


def test_the_chapter_registers_its_exercises():
    assert [ex.id for ex in list_exercises("concepts") if ex.id in EXERCISES] == EXERCISES


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_every_exercise_passes_with_its_reference(exercise_id):
    ex = get_exercise(exercise_id)
    result = check(exercise_id, ex.reference, record=False, verbose=False)
    assert result.passed, result.feedback
    assert len(ex.all_cases()) >= 20


def _types_oov(src, tgt):
    vt = vocabulary(tgt)
    return len(vt - vocabulary(src)) / len(vt) if vt else 0.0


def _js_nats(src, tgt):
    return js_divergence(src, tgt) * math.log(2)


WRONG = {
    "concepts.vocab_overlap": (lambda s, t: len(vocabulary(s) & vocabulary(t)) / max(1, len(vocabulary(s)) + len(vocabulary(t))),
                               "union"),
    "concepts.oov_rate": (_types_oov, "types instead of tokens"),
    "concepts.unigram_distribution": (lambda texts, vocab: unigram_distribution(texts, vocab) * 2, None),
    "concepts.js_divergence": (_js_nats, "natural logarithm"),
    "concepts.pad_from_error": (lambda e: 1 - 2 * e, "factor 2"),
}


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_every_exercise_fails_a_typical_mistake_with_a_diagnosis(exercise_id):
    wrong, words = WRONG[exercise_id]
    result = check(exercise_id, wrong, record=False, verbose=False)
    assert not result.passed
    assert "expected" in result.feedback
    if words:
        assert words in result.feedback, result.feedback


def _case_kept(text):
    return re.findall(r"[^\W_]+", text)      # tokenize without lower-casing


def _oov_case_kept(src, tgt):
    known = {w for t in src for w in _case_kept(t)}
    tokens = [w for t in tgt for w in _case_kept(t)]
    return sum(w not in known for w in tokens) / len(tokens) if tokens else 0.0


def _overlap_on_spaces(src, tgt):
    vs, vt = {w for t in src for w in t.lower().split()}, {w for t in tgt for w in t.lower().split()}
    return len(vs & vt) / len(vs | vt) if vs | vt else 1.0


def _unigram_once_per_text(texts, vocab):
    counts = Counter(w for t in texts for w in set(tokenize(t)))
    freq = np.array([counts[w] for w in vocab], dtype=float)
    return freq / freq.sum()


@pytest.mark.parametrize("exercise_id, wrong, words", [
    ("concepts.oov_rate", _oov_case_kept, "lower-case"),
    ("concepts.vocab_overlap", _overlap_on_spaces, "spaces only"),
    ("concepts.unigram_distribution", _unigram_once_per_text, "once per text"),
    ("concepts.vocab_overlap", lambda s, t: vocab_overlap([x.lower() for x in s], [x.lower() for x in t]) if s and t else 0.0,
     "1.0 when the union is empty"),
    ("concepts.oov_rate", lambda s, t: oov_rate(t, s), "swap"),
    ("concepts.oov_rate", lambda s, t: 1 - oov_rate(s, t), "complement"),
    ("concepts.unigram_distribution", lambda x, v: unigram_distribution(x, sorted(v)), "sort"),
    ("concepts.js_divergence", lambda s, t: math.sqrt(js_divergence(s, t)), "distance"),
    ("concepts.js_divergence", lambda s, t: kl_divergence(*_pair(s, t)), "KL(P‖Q)"),
    ("concepts.js_divergence", lambda s, t: 2 * js_divergence(s, t), "½"),
    ("concepts.pad_from_error", lambda e: 2 * (1 - e), "1 − ε"),
])
def test_diagnoses_name_the_mistake(exercise_id, wrong, words):
    result = check(exercise_id, wrong, record=False, verbose=False)
    assert not result.passed and words in result.feedback, result.feedback


def test_exercise_cases_are_plain_data():
    plain = (str, int, float, bool, type(None), list, tuple, dict)
    def ok(x):
        if isinstance(x, (list, tuple)):
            return all(ok(i) for i in x)
        if isinstance(x, dict):
            return all(ok(k) and ok(v) for k, v in x.items())
        return isinstance(x, plain)
    for exercise_id in EXERCISES:
        for c in get_exercise(exercise_id).all_cases():
            assert ok(list(c.args)) and ok(c.kwargs), (exercise_id, c)
