"""The progress file: atomic saves, corrupt files kept aside, no lost updates across processes, a per-chapter table."""
import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from domain_tutor import progress as prog
from domain_tutor.config import CHAPTERS
from domain_tutor.progress import (attempted, load_progress, progress, progress_path, record_attempt, record_quiz,
                                   reset_progress, update_progress)

FRESH = {"version": 1, "exercises": {}, "quizzes": {}, "interview": {}}
COLUMNS = ["chapter", "title", "exercises_passed", "exercises_total", "quiz_correct", "quiz_total", "reviews_due"]


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# --- the file ---------------------------------------------------------------------------------------------------------

def test_path_follows_the_environment(course_home, monkeypatch, tmp_path):
    assert progress_path() == course_home / "progress.json"
    monkeypatch.setenv("DOMAIN_TUTOR_HOME", str(tmp_path / "elsewhere"))
    assert progress_path() == tmp_path / "elsewhere" / "progress.json"


def test_missing_file_is_a_fresh_record_and_reading_creates_nothing():
    assert load_progress() == FRESH
    assert not progress_path().exists()


def test_missing_sections_are_filled_in():
    progress_path().write_text('{"exercises": {"concepts.a": {"attempts": 1}}}')
    data = load_progress()
    assert data["version"] == 1 and data["quizzes"] == {} and data["interview"] == {}
    assert data["exercises"] == {"concepts.a": {"attempts": 1}}


def test_atomic_write_leaves_no_temporary_files(course_home):
    for i in range(5):
        record_attempt("concepts.a", i % 2 == 0, 1, 2)
    record_quiz("concepts", "q1", True)
    assert set(_names(course_home)) <= {"progress.json", "progress.json.lock"}
    assert json.loads(progress_path().read_text())["exercises"]["concepts.a"]["attempts"] == 5


def test_a_failed_save_keeps_the_previous_file(course_home, monkeypatch):
    record_attempt("concepts.a", True, 1, 1)
    before = progress_path().read_bytes()

    def broken_fsync(fd):
        raise OSError("disk full")

    with monkeypatch.context() as m:
        m.setattr(prog.os, "fsync", broken_fsync)
        with pytest.raises(OSError, match="disk full"):
            record_attempt("concepts.a", False, 0, 1)
    assert progress_path().read_bytes() == before
    assert set(_names(course_home)) <= {"progress.json", "progress.json.lock"}


def test_mutate_that_raises_writes_nothing():
    record_attempt("concepts.a", True, 1, 1)
    before = progress_path().read_bytes()

    def mutate(data):
        data["exercises"].clear()
        raise RuntimeError("learner bug")

    with pytest.raises(RuntimeError, match="learner bug"):
        update_progress(mutate)
    assert progress_path().read_bytes() == before


def test_update_returns_the_result_and_refuses_bad_mutations():
    assert update_progress(lambda d: d["interview"].setdefault("x", {"box": 1, "due": "2020-01-01"})) == {
        "box": 1, "due": "2020-01-01"}
    with pytest.raises(TypeError, match="mutate"):
        update_progress(None)
    with pytest.raises(ValueError, match="nothing was saved"):
        update_progress(lambda d: d.update(quizzes=None))
    with pytest.raises(RuntimeError, match="nested"):
        update_progress(lambda d: record_attempt("concepts.a", True, 1, 1))
    assert load_progress()["quizzes"] == {} and load_progress()["exercises"] == {}


# --- corrupt files ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"{not json", b'{"version": 1, "exercises": {"concepts.a": {"att', b"[1, 2, 3]",
                                     b"", b"\xff\xfe\x00garbage", b'{"exercises": "oops"}'])
def test_corrupt_file_is_backed_up_with_one_warning(content, course_home, capsys):
    progress_path().write_bytes(content)
    assert load_progress() == FRESH
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("domain_tutor:") and "progress.json.bak" in err, err
    assert (course_home / "progress.json.bak").read_bytes() == content
    assert not progress_path().exists()
    record_attempt("concepts.a", True, 1, 1)  # the course goes on
    assert load_progress()["exercises"]["concepts.a"]["attempts"] == 1


def test_a_second_corruption_never_overwrites_the_first_backup(course_home, capsys):
    progress_path().write_text("first bad file")
    load_progress()
    progress_path().write_text("second bad file")
    record_attempt("concepts.a", False, 0, 1)  # corruption found by an update, too
    progress_path().write_text("third bad file")
    load_progress()
    assert (course_home / "progress.json.bak").read_text() == "first bad file"
    assert (course_home / "progress.json.bak.1").read_text() == "second bad file"
    assert (course_home / "progress.json.bak.2").read_text() == "third bad file"
    assert capsys.readouterr().err.count("domain_tutor:") == 3
    assert load_progress() == FRESH


# --- concurrency ------------------------------------------------------------------------------------------------------

RACER = textwrap.dedent("""
    import pathlib, sys, time
    from domain_tutor.progress import record_attempt, record_quiz
    ready, go, n = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), int(sys.argv[3])
    ready.touch()
    while not go.exists():
        time.sleep(0.005)
    for i in range(n):
        record_attempt("concepts.race", i == n - 1, float(i % 5), 4.0)
        if i % 10 == 0:
            record_quiz("01_concepts", "q1", True)
""")


def _race(tmp_path: Path, n_procs: int, n_each: int) -> None:
    "Start `n_procs` processes, hold them at a start line until all are ready, then let them record at once."
    gate = tmp_path / "gate"
    gate.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(gate / f"ready{i}"), str(gate / "go"), str(n_each)],
                              stderr=subprocess.PIPE, text=True) for i in range(n_procs)]
    try:
        deadline = time.time() + 120
        while not all((gate / f"ready{i}").exists() for i in range(n_procs)):
            assert time.time() < deadline, "the racing processes did not start"
            assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs if p.poll() is not None]
            time.sleep(0.05)
        (gate / "go").touch()
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


@pytest.mark.parametrize("n_procs", [2, 4])
def test_concurrent_processes_lose_no_update(n_procs, tmp_path, course_home):
    _race(tmp_path, n_procs, 50)
    data = load_progress()
    entry = data["exercises"]["concepts.race"]
    assert entry["attempts"] == 50 * n_procs
    assert entry["passed"] is True and entry["best_score"] == 4.0 and entry["max_score"] == 4.0
    assert data["quizzes"]["concepts"]["q1"]["attempts"] == 5 * n_procs
    assert set(_names(course_home)) <= {"progress.json", "progress.json.lock"}


def test_concurrent_threads_lose_no_update():
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: record_attempt("ngram.threads", False, 0, 1), range(40)))
    assert load_progress()["exercises"]["ngram.threads"]["attempts"] == 40


# --- recording --------------------------------------------------------------------------------------------------------

def test_record_attempt_keeps_attempts_best_and_ever_passed():
    record_attempt("concepts.oov", False, 1, 4)
    record_attempt("concepts.oov", True, 4, 4)
    record_attempt("concepts.oov", False, 2, 4.0)
    e = load_progress()["exercises"]["concepts.oov"]
    assert {k: e[k] for k in ("attempts", "passed", "best_score", "max_score", "last_passed")} == {
        "attempts": 3, "passed": True, "best_score": 4.0, "max_score": 4.0, "last_passed": False}
    last = datetime.fromisoformat(e["last"])
    assert last.utcoffset() == timedelta(0)
    assert abs((datetime.now(timezone.utc) - last).total_seconds()) < 60
    assert attempted("concepts.oov") and not attempted("concepts.other")


@pytest.mark.parametrize("args, exc, name", [
    ((None, True, 1, 1), TypeError, "exercise_id"),
    ((3, True, 1, 1), TypeError, "exercise_id"),
    (("", True, 1, 1), ValueError, "exercise_id"),
    (("   ", True, 1, 1), ValueError, "exercise_id"),
    (("concepts.a", 1, 1, 1), TypeError, "passed"),
    (("concepts.a", "True", 1, 1), TypeError, "passed"),
    (("concepts.a", True, "1", 1), TypeError, "score"),
    (("concepts.a", True, True, 1), TypeError, "score"),
    (("concepts.a", True, -0.5, 1), ValueError, "score"),
    (("concepts.a", True, float("nan"), 1), ValueError, "score"),
    (("concepts.a", True, 2, 1), ValueError, "max_score"),
    (("concepts.a", True, 0, -1), ValueError, "max_score"),
    (("concepts.a", True, 1, None), TypeError, "max_score"),
])
def test_record_attempt_rejects_bad_input(args, exc, name):
    with pytest.raises(exc, match=name):
        record_attempt(*args)
    assert load_progress() == FRESH and not progress_path().exists()


def test_attempted_rejects_bad_input():
    with pytest.raises(TypeError, match="exercise_id"):
        attempted(["concepts.a"])


def test_record_quiz_accepts_any_spelling_of_the_chapter():
    record_quiz("01_concepts", "q1", True)
    record_quiz("concepts", "q1", False)
    record_quiz(1, "q1", False)
    record_quiz("01", "q2", True)
    quizzes = load_progress()["quizzes"]
    assert list(quizzes) == ["concepts"]
    q1 = quizzes["concepts"]["q1"]
    assert (q1["attempts"], q1["correct"], q1["ever_correct"]) == (3, False, True)
    assert quizzes["concepts"]["q2"]["correct"] is True
    assert datetime.fromisoformat(q1["last"]).utcoffset() == timedelta(0)


@pytest.mark.parametrize("args, exc, name", [
    (("99_unknown", "q1", True), ValueError, "chapter"),
    ((None, "q1", True), TypeError, "chapter"),
    (("concepts", "", True), ValueError, "qid"),
    (("concepts", 7, True), TypeError, "qid"),
    (("concepts", "q1", "yes"), TypeError, "correct"),
])
def test_record_quiz_rejects_bad_input(args, exc, name):
    with pytest.raises(exc, match=name):
        record_quiz(*args)
    assert load_progress() == FRESH


# --- the table --------------------------------------------------------------------------------------------------------

def _expected_totals(module: str, fn: str) -> list[int]:
    "What the registry or bank says, or 0 where it cannot (the modules may not exist yet)."
    totals = []
    for key in CHAPTERS:
        try:
            source = getattr(__import__(f"domain_tutor.{module}", fromlist=[fn]), fn)
            totals.append(len({item.id for item in source(key)}))
        except Exception:
            totals.append(0)
    return totals


def test_progress_table_counts_what_is_recorded():
    record_attempt("concepts.a", False, 0, 1)
    record_attempt("concepts.a", True, 1, 1)
    record_attempt("concepts.b", False, 0, 1)
    record_attempt("ngram.a", True, 1, 1)
    record_attempt("ngramx.a", True, 1, 1)  # not an ngram exercise
    record_quiz("concepts", "q1", True)
    record_quiz("concepts", "q2", True)
    record_quiz("concepts", "q2", False)  # the latest answer counts
    record_quiz("metrics", "q1", True)
    now = datetime.now(timezone.utc)
    update_progress(lambda d: d["interview"].update({
        "optim.adam": {"box": 1, "due": (now - timedelta(minutes=5)).isoformat()},
        "optim.sgd": {"box": 3, "due": (now + timedelta(days=3)).isoformat()},
        "why-fine-tune": {"box": 2, "due": "2001-01-01T00:00:00Z"},
        "later": {"box": 2, "due": "2999-01-01T00:00:00+00:00"},
        "bad": {"box": 1, "due": "not a date"},
    }))
    table = progress(show=False)
    assert list(table.columns) == COLUMNS
    assert list(table.chapter) == [stem for stem, _ in CHAPTERS.values()]
    assert list(table.title) == [title for _, title in CHAPTERS.values()]
    rows = table.set_index("chapter")
    assert rows.exercises_passed.to_dict() == {
        "01_concepts": 1, "02_ngram": 1, "03_optim": 0, "04_imbalance": 0, "05_adversarial": 0, "06_metrics": 0,
        "07_finetune": 0, "08_interview": 0}
    assert rows.quiz_correct["01_concepts"] == 1 and rows.quiz_correct["06_metrics"] == 1
    assert rows.quiz_correct.sum() == 2
    assert rows.reviews_due["03_optim"] == 1 and rows.reviews_due["08_interview"] == 1
    assert rows.reviews_due.sum() == 2
    assert list(table.exercises_total) == _expected_totals("exercises", "list_exercises")
    assert list(table.quiz_total) == _expected_totals("quiz", "load_bank")


def test_progress_of_a_new_learner_is_all_zeros():
    table = progress(show=False)
    assert len(table) == len(CHAPTERS)
    assert table[["exercises_passed", "quiz_correct", "reviews_due"]].to_numpy().sum() == 0


def test_progress_works_without_the_registry_and_banks(monkeypatch):
    monkeypatch.setitem(sys.modules, "domain_tutor.exercises", None)  # importing them now fails
    monkeypatch.setitem(sys.modules, "domain_tutor.quiz", None)
    record_attempt("concepts.a", True, 1, 1)
    table = progress(show=False)
    assert table.exercises_total.sum() == 0 and table.quiz_total.sum() == 0
    assert table.exercises_passed.sum() == 1


def test_progress_show_prints_the_table_and_draws_a_chart(capsys, monkeypatch):
    import matplotlib.pyplot as plt
    figures = []
    monkeypatch.setattr(prog, "progress_chart", lambda t: figures.append(plt.figure()) or figures[-1])
    record_attempt("concepts.a", True, 1, 1)
    table = progress()
    out = capsys.readouterr().out
    assert "01_concepts" in out and "exercises_passed" in out
    assert len(figures) == 1 and len(table) == len(CHAPTERS)
    with pytest.raises(TypeError, match="show"):
        progress(show=1)


def test_the_chart_is_labelled_and_states_the_finding():
    import matplotlib.pyplot as plt
    record_attempt("ngram.a", True, 1, 1)
    fig = prog.progress_chart(progress(show=False))
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    assert [t.get_text() for t in ax.get_yticklabels()] == [stem for stem, _ in CHAPTERS.values()]
    plt.close(fig)


# --- reset ------------------------------------------------------------------------------------------------------------

def test_reset_without_confirm_changes_nothing(capsys, course_home):
    record_attempt("concepts.a", True, 1, 1)
    before, names = progress_path().read_bytes(), _names(course_home)
    assert reset_progress() is False
    assert "confirm=True" in capsys.readouterr().out
    assert progress_path().read_bytes() == before and _names(course_home) == names
    with pytest.raises(TypeError, match="confirm"):
        reset_progress("yes")
    assert progress_path().read_bytes() == before


def test_reset_with_confirm_keeps_a_backup(course_home):
    record_attempt("concepts.a", True, 1, 1)
    (course_home / "progress.json.bak").write_text("an older backup")
    before = progress_path().read_bytes()
    assert reset_progress(confirm=True) is True
    assert load_progress() == FRESH
    assert (course_home / "progress.json.bak").read_text() == "an older backup"
    assert (course_home / "progress.json.bak.1").read_bytes() == before
    assert reset_progress(confirm=True) is True  # nothing to reset: still fine


def _fake_sources(monkeypatch):
    "Stand-in exercise registry and quiz banks: 4 concepts exercises, 2 ngram ones, 3 concepts questions."
    import types
    from types import SimpleNamespace as Item
    exercises, quiz = types.ModuleType("domain_tutor.exercises"), types.ModuleType("domain_tutor.quiz")
    registry = {"concepts": ["concepts.a", "concepts.b", "concepts.c", "concepts.d"], "ngram": ["ngram.a", "ngram.b"]}
    exercises.list_exercises = lambda key: [Item(id=i) for i in registry.get(key, [])]

    def load_bank(chapter):
        if chapter != "concepts":
            raise FileNotFoundError(f"no bank for {chapter}")  # a chapter without a bank yet
        return [Item(id=q) for q in ("q1", "q2", "q3")]

    quiz.load_bank = load_bank
    monkeypatch.setitem(sys.modules, "domain_tutor.exercises", exercises)
    monkeypatch.setitem(sys.modules, "domain_tutor.quiz", quiz)


def test_progress_totals_come_from_the_registry_and_banks(monkeypatch):
    _fake_sources(monkeypatch)
    record_attempt("concepts.a", True, 1, 1)
    record_attempt("concepts.b", True, 1, 1)
    record_quiz("concepts", "q1", True)
    rows = progress(show=False).set_index("chapter")
    assert (rows.exercises_passed["01_concepts"], rows.exercises_total["01_concepts"]) == (2, 4)
    assert (rows.exercises_passed["02_ngram"], rows.exercises_total["02_ngram"]) == (0, 2)
    assert (rows.quiz_correct["01_concepts"], rows.quiz_total["01_concepts"]) == (1, 3)
    assert rows.quiz_total.drop("01_concepts").sum() == 0 and rows.exercises_total.sum() == 6


def test_the_chart_shows_percentages_when_totals_are_known(monkeypatch):
    import matplotlib.pyplot as plt
    _fake_sources(monkeypatch)
    record_attempt("concepts.a", True, 1, 1)
    record_quiz("concepts", "q1", True)
    record_quiz("concepts", "q2", True)
    fig = prog.progress_chart(progress(show=False))
    ax = fig.axes[0]
    widths = sorted(round(p.get_width(), 1) for p in ax.patches if p.get_width() > 0)
    assert widths == [25.0, 66.7]
    assert "01_concepts" in ax.get_title()
    assert {"1/4", "2/3"} <= {t.get_text() for t in ax.texts}
    plt.close(fig)
