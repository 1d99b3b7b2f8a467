"""The embedded corpus: deterministic, exact about labels, and with a real, learnable domain shift."""
import io
from contextlib import redirect_stderr

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from domain_tutor.data import (DOMAINS, GENERATED_SIZES, HUB_DATASETS, REVIEW_DOMAINS, load_domain_dataset,
                               load_unlabeled, make_reviews, texts_and_labels)


def test_domains_cover_the_benchmark_and_a_far_domain():
    assert {"books", "dvd", "electronics", "kitchen"} <= set(REVIEW_DOMAINS)
    assert {"clinical", "finance"} & set(DOMAINS)


@pytest.mark.parametrize("domain", DOMAINS)
def test_deterministic_per_seed_and_different_across_seeds(domain):
    a, b = make_reviews(domain, 100, seed=11), make_reviews(domain, 100, seed=11)
    assert a == b
    c = make_reviews(domain, 100, seed=12)
    assert sum(x["text"] != y["text"] for x, y in zip(a, c)) > 90
    assert all(r["domain"] == domain and r["label"] in (0, 1) and r["text"] for r in a)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), ratio=st.floats(0, 1), seed=st.integers(0, 10_000), domain=st.sampled_from(DOMAINS))
def test_label_ratio_is_honoured_exactly(n, ratio, seed, domain):
    reviews = make_reviews(domain, n, seed=seed, label_ratio=ratio)
    assert len(reviews) == n
    assert sum(r["label"] for r in reviews) == round(n * ratio)


def test_labels_are_shuffled_not_sorted():
    labels = [r["label"] for r in make_reviews("books", 200, seed=0, label_ratio=0.5)]
    assert 0 < sum(labels[:100]) < 100


def test_lengths_vary_and_include_long_reviews():
    lengths = np.array([len(r["text"].split()) for r in make_reviews("electronics", 1000)])
    assert lengths.min() < 15 and lengths.max() > 128
    assert 0.05 < (lengths > 100).mean() < 0.3


def test_unlabeled_texts_are_a_separate_stream():
    texts = load_unlabeled("finance", 200, seed=0)
    assert len(texts) == 200 and all(isinstance(t, str) for t in texts)
    assert texts == load_unlabeled("finance", 200, seed=0)
    assert len(set(texts) & {r["text"] for r in make_reviews("finance", 200, seed=0)}) < 5


@pytest.mark.parametrize("bad, match", [
    (dict(domain="book"), "did you mean 'books'"),
    (dict(domain=None), "domain must be a str"),
    (dict(n=-1), "n must"),
    (dict(n=2.5), "n must"),
    (dict(seed=-3), "seed must"),
    (dict(label_ratio=-0.1), "label_ratio"),
    (dict(label_ratio="half"), "label_ratio"),
])
def test_bad_arguments_name_the_argument(bad, match):
    kwargs = dict(domain="books", n=5, seed=0, label_ratio=0.5) | bad
    with pytest.raises((ValueError, TypeError), match=f"(?i){match}"):
        make_reviews(**kwargs)


def _bow_accuracy(train, tests):
    vec = CountVectorizer(ngram_range=(1, 2))
    x, y = texts_and_labels(train)
    clf = LogisticRegression(max_iter=2000).fit(vec.fit_transform(x), y)
    return {name: clf.score(vec.transform(texts_and_labels(d)[0]), texts_and_labels(d)[1]) for name, d in tests.items()}


def test_shift_is_real_and_learnable():
    """Issue 2: BoW logistic regression trained on books >= 75% in domain, and >= 5 points lower on electronics."""
    acc = _bow_accuracy(make_reviews("books", 2000, seed=0),
                        {"books": make_reviews("books", 1000, seed=1), "electronics": make_reviews("electronics", 1000, seed=1)})
    print(acc)
    assert acc["books"] >= 0.75
    assert acc["books"] - acc["electronics"] >= 0.05


def test_shift_has_the_benchmark_structure():
    """Closer domains transfer better: books->dvd beats books->electronics, which beats books->clinical (chance)."""
    acc = _bow_accuracy(make_reviews("books", 1500, seed=0),
                        {d: make_reviews(d, 600, seed=2) for d in ("books", "dvd", "electronics", "clinical")})
    assert acc["books"] > acc["dvd"] > acc["electronics"] > acc["clinical"]
    assert abs(acc["clinical"] - 0.5) < 0.08


def test_load_domain_dataset_generated_splits():
    train = load_domain_dataset("kitchen", "train")
    test = load_domain_dataset("kitchen", "test")
    assert train.column_names == ["text", "label", "domain"]
    assert (len(train), len(test)) == (GENERATED_SIZES["train"], GENERATED_SIZES["test"])
    assert len(set(train["text"]) & set(test["text"])) < 0.02 * len(test)
    assert load_domain_dataset("kitchen", "test", n=30)["text"] == load_domain_dataset("kitchen", "test", n=30)["text"]
    assert load_domain_dataset("kitchen", "test", n=30, seed=1)["text"] != load_domain_dataset("kitchen", "test", n=30)["text"]


@pytest.mark.parametrize("name", list(HUB_DATASETS) + ["someone/some-reviews"])
def test_hub_names_fall_back_offline_in_one_line(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = io.StringIO()
    with redirect_stderr(err):
        ds = load_domain_dataset(name, "test", n=12)
    assert len(ds) == 12 and ds.column_names == ["text", "label", "domain"]
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "built-in" in lines[0], lines
    assert set(ds["domain"]) <= set(DOMAINS)


def test_hub_failure_with_network_allowed_also_falls_back(monkeypatch):
    """No offline variable set, but the hub is unreachable: the download fails and becomes one line."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    import domain_tutor.data as data
    monkeypatch.setattr(data, "hub_offline", lambda: False)   # pretend the probe said "reachable"

    def broken(*a, **k):
        raise ConnectionError("Couldn't reach 'stanfordnlp/imdb' on the Hub (LocalEntryNotFoundError)\nmore detail")
    import datasets
    monkeypatch.setattr(datasets, "load_dataset", broken)
    err = io.StringIO()
    with redirect_stderr(err):
        ds = load_domain_dataset("imdb", "train", n=5)
    assert len(ds) == 5 and set(ds["domain"]) == {"dvd"}
    assert err.getvalue().count("\n") == 1 and "ConnectionError" in err.getvalue()


def test_hub_dataset_is_normalised(monkeypatch):
    """The real hub path: a data set with other column names comes back as text/label/domain."""
    import datasets
    import domain_tutor.data as data
    fake = datasets.Dataset.from_dict({"title": ["Nice", "Bad"], "content": ["works well", "broke"], "label": [1, 0]})
    monkeypatch.setattr(data, "hub_offline", lambda: False)
    monkeypatch.setattr(datasets, "load_dataset", lambda path, config, split: fake)
    ds = load_domain_dataset("amazon_polarity", "test")
    assert ds["text"] == ["Nice. works well", "Bad. broke"] and ds["label"] == [1, 0]
    assert set(ds["domain"]) == {"amazon_polarity"}


@pytest.mark.parametrize("bad, match", [(("imbd",), "did you mean 'imdb'"), (("books", "dev"), "split"),
                                        ((42,), "name must"), (("books", "train", -1), "n must")])
def test_load_domain_dataset_bad_input(bad, match):
    with pytest.raises((ValueError, TypeError), match=f"(?i){match}"):
        load_domain_dataset(*bad)
