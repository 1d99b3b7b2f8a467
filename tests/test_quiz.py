"""Quizzes: every bank is valid, validation catches each kind of mistake, and both front ends grade what they showed."""
import copy
import html
import json

import pytest
import yaml

import domain_tutor.quiz as quiz_mod
from domain_tutor.config import CHAPTERS
from domain_tutor.quiz import (LETTERS, TYPES, Presented, Question, answer, bank_dir, bank_paths, load_bank, present,
                               quiz, quiz_text, quiz_widget, validate_bank)

BANKS = bank_paths()


# --- the banks shipped with the course ---------------------------------------------------------------------------

def test_there_are_banks():
    assert BANKS, f"no quiz bank in {bank_dir()}"
    assert bank_dir() / "01_concepts.yml" in BANKS


@pytest.mark.parametrize("path", BANKS, ids=lambda p: p.name)
def test_bank_is_valid(path):
    assert validate_bank(path) == []
    questions = load_bank(path)
    assert questions and all(isinstance(q, Question) for q in questions)
    assert path.stem in {stem for stem, _ in CHAPTERS.values()}


def test_ids_are_unique_across_banks():
    ids = [q.id for path in BANKS for q in load_bank(path)]
    assert len(ids) == len(set(ids))


def test_concepts_bank_covers_every_type():
    bank = load_bank("01_concepts")
    counts = {t: sum(q.type == t for q in bank) for t in TYPES}
    assert len(bank) >= 10
    assert counts["single"] >= 5 and counts["multiple"] >= 1 and counts["true_false"] >= 2 and counts["numeric"] >= 1
    assert len({q.answer for q in bank if q.type == "single"}) >= 3, "vary the position of the correct choice"
    assert {q.answer for q in bank if q.type == "true_false"} == {True, False}


def test_numeric_answers_of_the_concepts_bank():
    "The two worked numbers the brief names: JS of disjoint supports (base 2) and the proxy A-distance at error 0.25."
    by_id = {q.id: q for q in load_bank("concepts")}
    js = next(q for q in by_id.values() if q.type == "numeric" and "disjoint" in q.prompt["en"])
    assert js.check(1.0) and not js.check(0.5)
    pad = next(q for q in by_id.values() if q.type == "numeric" and "0.25" in q.prompt["en"])
    assert pad.check(2 * (1 - 2 * 0.25)) and not pad.check(0.5)


# --- validate_bank catches each kind of problem ------------------------------------------------------------------

def _t(s):
    return {"en": s, "zh": "中文" + s}


GOOD = {"chapter": "01_concepts", "questions": [
    {"id": "concepts.a", "type": "single", "prompt": _t("p"), "explanation": _t("e"),
     "choices": [_t("x"), _t("y"), _t("z")], "answer": 0},
    {"id": "concepts.b", "type": "single", "prompt": _t("p"), "explanation": _t("e"),
     "choices": [_t("x"), _t("y"), _t("z")], "answer": 2},
    {"id": "concepts.c", "type": "multiple", "prompt": _t("p"), "explanation": _t("e"),
     "choices": [_t("x"), _t("y"), _t("z")], "answer": [0, 2]},
    {"id": "concepts.d", "type": "true_false", "prompt": _t("p"), "explanation": _t("e"), "answer": False},
    {"id": "concepts.e", "type": "numeric", "prompt": _t("p"), "explanation": _t("e"), "answer": 0.5,
     "tolerance": 0.01}]}


def _bank(change=None):
    bank = copy.deepcopy(GOOD)
    if change:
        change(bank["questions"])
    return bank


def _write(tmp_path, bank, name="01_concepts.yml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(bank, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def test_good_bank_is_valid(tmp_path):
    assert validate_bank(_bank()) == []
    assert validate_bank(_write(tmp_path, _bank())) == []
    assert validate_bank(str(_write(tmp_path, _bank()))) == []
    assert validate_bank(load_bank(_write(tmp_path, _bank()))) == []     # a list of Question objects


BAD = {
    "two correct answers in a single question": (lambda qs: qs[0].update(answer=[0, 1]),
                                                 ["concepts.a", "exactly one correct"]),
    "missing zh prompt": (lambda qs: qs[1]["prompt"].pop("zh"), ["concepts.b", "prompt", "'zh'"]),
    "empty zh explanation": (lambda qs: qs[3]["explanation"].update(zh=""), ["concepts.d", "explanation", "'zh'"]),
    "missing zh choice": (lambda qs: qs[2]["choices"][1].pop("zh"), ["concepts.c", "choice 1", "'zh'"]),
    "duplicate id": (lambda qs: qs[1].update(id="concepts.a"), ["concepts.a", "duplicate id"]),
    "id without the chapter key": (lambda qs: qs[1].update(id="ngram.b"), ["ngram.b", "chapter key"]),
    "single answer out of range": (lambda qs: qs[1].update(answer=3), ["concepts.b", "out of range"]),
    "negative single answer": (lambda qs: qs[1].update(answer=-1), ["concepts.b", "out of range"]),
    "multiple answer out of range": (lambda qs: qs[2].update(answer=[0, 9]), ["concepts.c", "out of range"]),
    "multiple answer repeated": (lambda qs: qs[2].update(answer=[2, 2]), ["concepts.c", "repeats"]),
    "multiple answer empty": (lambda qs: qs[2].update(answer=[]), ["concepts.c", "non-empty list"]),
    "too few choices": (lambda qs: qs[0]["choices"].pop(), ["concepts.a", "at least 3 choices"]),
    "true_false not a bool": (lambda qs: qs[3].update(answer="no"), ["concepts.d", "true or false"]),
    "numeric not finite": (lambda qs: qs[4].update(answer=float("inf")), ["concepts.e", "finite number"]),
    "numeric not a number": (lambda qs: qs[4].update(answer="half"), ["concepts.e", "finite number"]),
    "bad tolerance": (lambda qs: qs[4].update(tolerance=0), ["concepts.e", "tolerance"]),
    "unknown type": (lambda qs: qs[0].update(type="essay"), ["concepts.a", "type must be"]),
    "misspelt key": (lambda qs: qs[0].update(explaination=_t("e")), ["concepts.a", "unknown key"]),
    "choices on a true_false": (lambda qs: qs[3].update(choices=[_t("x"), _t("y")]), ["concepts.d", "choices"]),
    "all single answers at index 0": (lambda qs: qs[1].update(answer=0), ["bank", "position 0"]),
    "missing answer": (lambda qs: qs[0].pop("answer"), ["concepts.a", "answer is missing"]),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_validate_bank_catches(kind, tmp_path):
    change, words = BAD[kind]
    for source in (_bank(change), _write(tmp_path, _bank(change))):     # a dict, and the same bank as a file
        problems = validate_bank(source)
        assert any(all(w in p for w in words) for p in problems), (kind, problems)
    with pytest.raises(ValueError, match="is invalid"):
        load_bank(_write(tmp_path, _bank(change)))


def test_validate_bank_checks_the_file(tmp_path):
    assert any("file name" in p for p in validate_bank(_write(tmp_path, _bank(), "02_ngram.yml")))
    broken = tmp_path / "01_concepts.yml"
    broken.write_text("questions: [unclosed", encoding="utf-8")
    assert any("not valid YAML" in p for p in validate_bank(broken))
    assert any("not a chapter" in p for p in validate_bank({"chapter": "nope", "questions": []}))
    assert any("non-empty list" in p for p in validate_bank({"chapter": "01_concepts", "questions": []}))
    with pytest.raises(FileNotFoundError, match="questions_or_path"):
        validate_bank(tmp_path / "missing.yml")
    with pytest.raises(TypeError, match="questions_or_path"):
        validate_bank(1.5)


def test_load_bank_sees_edits(tmp_path):
    path = _write(tmp_path, _bank())
    assert load_bank(path)[0].prompt["en"] == "p"
    edited = _bank(lambda qs: qs[0]["prompt"].update(en="edited"))
    path.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    import os
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    assert load_bank(path)[0].prompt["en"] == "edited"


def test_load_bank_errors(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="chapter must be"):
        load_bank("09_nothing")
    monkeypatch.setattr(quiz_mod, "bank_dir", lambda: tmp_path)   # an empty bank folder: no chapter has a quiz
    with pytest.raises(FileNotFoundError, match="no quiz yet"):
        load_bank("08_interview")


# --- presenting: shuffling, seeds, n -------------------------------------------------------------------------------

def _quiet(capsys, f, *args, **kwargs):
    result = f(*args, **kwargs)
    return result, capsys.readouterr().out


def test_shuffle_is_a_permutation_that_keeps_the_right_answer(capsys):
    bank = load_bank("concepts")
    positions = set()
    for seed in range(8):
        for p in present(bank, seed=seed):
            q = p.question
            assert sorted(p.order) == list(range(len(q.choices)))
            if q.type != "single":
                continue
            right = LETTERS[p.order.index(q.answer)]
            positions.add((q.id, right))
            assert dict(p.options())[f"{right}. {q.choices[q.answer]['en']}"] == q.answer
            for letter in LETTERS[:len(q.choices)]:
                ok, printed = _quiet(capsys, answer, q.id, letter)
                assert ok is (letter == right), (q.id, seed, letter, right)
                assert printed.startswith("✔" if ok else "✘") and q.explanation["en"] in printed
    assert len(positions) > len([q for q in bank if q.type == "single"]), "the right letter never moves"


def test_multiple_true_false_numeric_answers(capsys):
    bank = load_bank("concepts")
    for p in present(bank, seed=11):
        q = p.question
        if q.type == "multiple":
            right = [LETTERS[p.order.index(j)] for j in q.answer]
            assert _quiet(capsys, answer, q.id, "".join(right).lower())[0] is True
            assert _quiet(capsys, answer, q.id, list(reversed(right)))[0] is True
            assert _quiet(capsys, answer, q.id, ", ".join(right))[0] is True
            assert _quiet(capsys, answer, q.id, right[0])[0] is False
            assert _quiet(capsys, answer, q.id, LETTERS[:len(q.choices)])[0] is False
        elif q.type == "true_false":
            assert _quiet(capsys, answer, q.id, q.answer)[0] is True
            assert _quiet(capsys, answer, q.id, str(q.answer).lower())[0] is True
            assert _quiet(capsys, answer, q.id, "对" if q.answer else "错")[0] is True
            assert _quiet(capsys, answer, q.id, "错" if q.answer else "对")[0] is False
            assert _quiet(capsys, answer, q.id, not q.answer)[0] is False
        elif q.type == "numeric":
            assert _quiet(capsys, answer, q.id, q.answer)[0] is True
            assert _quiet(capsys, answer, q.id, str(q.answer))[0] is True
            assert _quiet(capsys, answer, q.id, q.answer + q.tolerance / 2)[0] is True
            assert _quiet(capsys, answer, q.id, q.answer + 10 * q.tolerance + 0.01)[0] is False


def test_numeric_answer_accepts_fractions_and_percent(capsys):
    q = next(q for q in load_bank("concepts") if q.type == "numeric" and abs(q.answer - 0.15) < 1e-9)
    present([q])
    assert _quiet(capsys, answer, q.id, "3/20")[0] is True
    assert _quiet(capsys, answer, q.id, "15%")[0] is True
    assert _quiet(capsys, answer, q.id, " 0.15 ")[0] is True


def test_seeds_reproduce_and_differ():
    bank = load_bank("concepts")
    run = lambda seed, n=None: [(p.id, p.order) for p in present(bank, n=n, seed=seed)]
    assert run(0) == run(0) and run(5, 4) == run(5, 4)
    assert len({tuple(run(s, 4)) for s in range(6)}) > 1


def test_n_limits():
    bank = load_bank("concepts")
    for n in (1, 3, len(bank)):
        shown = present(bank, n=n, seed=0)
        assert len(shown) == n and len({p.id for p in shown}) == n
        ids = [q.id for q in bank]
        assert [p.id for p in shown] == sorted((p.id for p in shown), key=ids.index)   # bank order kept
    assert len(present(bank, n=10_000)) == len(bank)
    assert len(present(bank)) == len(bank)
    with pytest.raises(ValueError, match="n must be"):
        present(bank, n=0)
    with pytest.raises(TypeError, match="n must be"):
        present(bank, n=2.0)
    with pytest.raises(TypeError, match="seed must be"):
        present(bank, seed="0")


# --- text mode ---------------------------------------------------------------------------------------------------

def test_text_mode_prints_every_question_and_its_letters(capsys, monkeypatch):
    monkeypatch.setattr(quiz_mod, "widget_frontend", lambda: False)
    result = quiz("01_concepts", seed=2)
    out = capsys.readouterr().out
    assert result.form is None and len(result.questions) == len(load_bank("concepts"))
    for p in result.questions:
        assert f"[{p.id}]" in out and p.question.prompt["en"] in out
        for i, j in enumerate(p.order):
            assert f"   {LETTERS[i]}. {p.question.choices[j]['en']}\n" in out
    assert "answer(" in out
    assert "answer" not in repr(result) or "concepts.q" in repr(result)
    for q in load_bank("concepts"):                       # the repr never reveals an answer
        for c in q.choices:
            assert c["en"] not in repr(result)


def test_text_mode_in_chinese(capsys, monkeypatch):
    monkeypatch.setattr(quiz_mod, "widget_frontend", lambda: False)
    result = quiz(1, lang="zh", n=4, seed=0)
    out = capsys.readouterr().out
    assert "小测验" in out and "作答方式" in out
    for p in result.questions:
        assert p.question.prompt["zh"] in out
    tf = next((p for p in present(load_bank(1), lang="zh") if p.question.type == "true_false"))
    ok, printed = _quiet(capsys, answer, tf.id, tf.question.answer)
    assert ok and printed.startswith("✔ 正确") and tf.question.explanation["zh"] in printed
    ok, printed = _quiet(capsys, answer, tf.id, tf.question.answer, lang="en")
    assert printed.startswith("✔ Correct")


def test_same_seed_same_letters_in_both_modes(capsys, monkeypatch):
    monkeypatch.setattr(quiz_mod, "widget_frontend", lambda: False)
    text = quiz("concepts", n=5, seed=9)
    monkeypatch.setattr(quiz_mod, "widget_frontend", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: None)
    form = quiz("concepts", n=5, seed=9)
    assert form.form is not None
    assert [(p.id, p.order) for p in text.questions] == [(p.id, p.order) for p in form.questions]


def test_quiz_errors():
    with pytest.raises(ValueError, match="lang must be"):
        quiz("concepts", lang="EN")
    with pytest.raises(ValueError, match="chapter must be"):
        quiz("chapter one")
    with pytest.raises(ValueError, match="n must be"):
        quiz("concepts", n=-2)


def test_widget_frontend_needs_a_kernel():
    assert quiz_mod.widget_frontend() is False     # pytest: ipywidgets is importable, but there is no kernel


# --- answer errors ------------------------------------------------------------------------------------------------

def test_answer_errors(capsys):
    bank = load_bank("concepts")
    by_type = {t: next(q for q in bank if q.type == t) for t in TYPES}
    shown = {p.question.type: p for p in present(list(by_type.values()), seed=0)}
    single, multiple = shown["single"], shown["multiple"]
    cases = [
        (("concepts.q999", "A"), "qid must be"),
        ((None, "A"), "qid must be"),
        ((single.id, "Z"), "choice must be letters A to D"),
        ((single.id, "AB"), "choice must be one letter"),
        ((single.id, ""), "choice must be"),
        ((single.id, 2), "choice must be"),
        ((single.id, None), "choice must be"),
        ((single.id, ["A", 2]), "choice must be"),
        ((multiple.id, "AZ"), "choice must be letters"),
        ((multiple.id, []), "choice must be"),
        ((by_type["true_false"].id, "perhaps"), "choice must be True or False"),
        ((by_type["true_false"].id, 1), "choice must be True or False"),
        ((by_type["numeric"].id, "lots"), "choice must be a number"),
        ((by_type["numeric"].id, float("nan")), "choice must be a number"),
        ((by_type["numeric"].id, "1/0"), "choice must be a number"),
        ((by_type["numeric"].id, False), "choice must be a number"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            answer(*args)
    with pytest.raises(ValueError, match="lang must be"):
        answer(single.id, "A", lang="fr")
    assert capsys.readouterr().out == ""                   # nothing graded, nothing printed


def test_answer_before_quiz_says_what_to_do():
    quiz_mod._SESSION.clear()
    with pytest.raises(ValueError, match=r"run quiz\('01_concepts'\) first"):
        answer("concepts.q01", "A")


def test_answer_uses_the_latest_order(capsys):
    q = next(q for q in load_bank("concepts") if q.type == "single")
    first = present([q], seed=1)[0]
    second = next(p for s in range(2, 50) for p in present([q], seed=s) if p.order != first.order)
    assert _quiet(capsys, answer, q.id, second.answer_text())[0] is True
    if first.answer_text() != second.answer_text():
        assert _quiet(capsys, answer, q.id, first.answer_text())[0] is False


# --- progress recording --------------------------------------------------------------------------------------------

def test_results_are_recorded(capsys, course_home, monkeypatch):
    calls = []
    progress = pytest.importorskip("domain_tutor.progress")
    monkeypatch.setattr(progress, "record_quiz", lambda chapter, qid, correct: calls.append((chapter, qid, correct)))
    q = next(q for q in load_bank("concepts") if q.type == "true_false")
    present([q])
    answer(q.id, q.answer)
    answer(q.id, not q.answer)
    assert calls == [("concepts", q.id, True), ("concepts", q.id, False)]


def test_recording_lands_in_the_progress_file(capsys, course_home):
    progress = pytest.importorskip("domain_tutor.progress")
    q = next(q for q in load_bank("concepts") if q.type == "numeric")
    present([q])
    answer(q.id, q.answer)
    data = progress.load_progress()
    assert data["quizzes"]["concepts"][q.id]["correct"] is True
    assert str(course_home) in str(progress.progress_path())


def test_a_failing_recorder_does_not_break_the_quiz(capsys, monkeypatch):
    import sys
    import types
    broken = types.ModuleType("domain_tutor.progress")
    def record_quiz(*args):
        raise OSError("disk full")
    broken.record_quiz = record_quiz
    monkeypatch.setitem(sys.modules, "domain_tutor.progress", broken)
    q = next(q for q in load_bank("concepts") if q.type == "true_false")
    present([q])
    assert answer(q.id, q.answer) is True
    assert "could not record" in capsys.readouterr().err


def test_without_a_progress_module_nothing_is_recorded(capsys, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "domain_tutor.progress", None)     # any import of it now fails
    q = next(q for q in load_bank("concepts") if q.type == "true_false")
    present([q])
    assert answer(q.id, q.answer) is True
    captured = capsys.readouterr()
    assert captured.out.startswith("✔") and captured.err == ""


# --- the widget, without a front end ------------------------------------------------------------------------------

def _form(lang="en", seed=0):
    bank = load_bank("concepts")
    kinds = [next(q for q in bank if q.type == t) for t in TYPES]
    shown = present(kinds, seed=seed, lang=lang)
    return shown, quiz_widget(shown, lang)


def test_widget_tree():
    import ipywidgets as w
    shown, form = _form()
    assert isinstance(form, w.VBox)
    heading, score, *boxes = form.children
    assert "Quiz" in heading.value and "0 / 4 correct" in score.value
    assert [type(b.children[1]) for b in boxes] == [w.RadioButtons, w.VBox, w.RadioButtons, w.FloatText]
    for p, box in zip(shown, boxes):
        prompt, field, button, feedback = box.children
        assert p.question.prompt["en"] in html.unescape(prompt.value)
        assert isinstance(button, w.Button) and button.description == "Check" and feedback.value == ""
    assert [label for label, _ in boxes[0].children[1].options] == [label for label, _ in shown[0].options()]
    assert [t.description for t in boxes[1].children[1].children] == [label for label, _ in shown[1].options()]
    assert boxes[0].children[1].value is None              # nothing preselected
    json.dumps(form.get_state())                            # the state a front end would receive is serialisable


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_widget_check_gives_feedback_and_score(seed):
    shown, form = _form(seed=seed)
    _, score, one, many, yes_no, number = form.children
    one.children[2].click()
    assert "Choose an answer first" in one.children[3].value and "0 checked" in score.value
    right = shown[0].question.answer
    wrong = next(v for _, v in shown[0].options() if v != right)
    one.children[1].value = wrong
    one.children[2].click()
    assert "✘" in one.children[3].value and f"the answer is {shown[0].answer_text()}" in one.children[3].value
    assert "0 / 4 correct (1 checked)" in score.value
    one.children[1].value = right
    one.children[2].click()
    assert "✔" in one.children[3].value
    assert html.escape(shown[0].question.explanation["en"]) in one.children[3].value
    for tick, (_, v) in zip(many.children[1].children, shown[1].options()):
        tick.value = v in shown[1].question.answer
    many.children[2].click()
    assert "✔" in many.children[3].value
    yes_no.children[1].value = not shown[2].question.answer
    yes_no.children[2].click()
    assert "✘" in yes_no.children[3].value
    number.children[1].value = shown[3].question.answer
    number.children[2].click()
    assert "✔" in number.children[3].value
    assert "3 / 4 correct (4 checked)" in score.value


def test_widget_in_chinese():
    shown, form = _form(lang="zh")
    _, score, one, *_ = form.children
    assert one.children[2].description == "检查" and "得分" in score.value
    one.children[1].value = shown[0].question.answer
    one.children[2].click()
    assert "✔ 正确" in one.children[3].value and html.escape(shown[0].question.explanation["zh"]) in one.children[3].value


def test_widget_records_results(monkeypatch):
    progress = pytest.importorskip("domain_tutor.progress")
    calls = []
    monkeypatch.setattr(progress, "record_quiz", lambda chapter, qid, correct: calls.append((chapter, qid, correct)))
    shown, form = _form()
    number = form.children[-1]
    number.children[1].value = shown[3].question.answer
    number.children[2].click()
    assert calls == [("concepts", shown[3].id, True)]


def test_quiz_in_a_kernel_shows_the_form(monkeypatch):
    shown_objects, colab = [], []
    monkeypatch.setattr(quiz_mod, "widget_frontend", lambda: True)
    monkeypatch.setattr("IPython.display.display", lambda obj: shown_objects.append(obj))
    monkeypatch.setattr(quiz_mod, "_enable_colab_widgets", lambda: colab.append(True))
    result = quiz("01_concepts", n=3, seed=0)
    assert shown_objects == [result.form] and colab == [True]
    assert len(result.form.children) == 2 + 3


def test_colab_widget_manager_is_enabled(monkeypatch):
    import sys
    import types
    calls = []
    google, colab = types.ModuleType("google"), types.ModuleType("google.colab")
    output = types.ModuleType("google.colab.output")
    output.enable_custom_widget_manager = lambda: calls.append("enabled")
    colab.output, google.colab = output, colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    quiz_mod._enable_colab_widgets()
    assert calls == ["enabled"]


def test_presented_is_what_text_and_widget_share():
    shown = present(load_bank("concepts"), n=6, seed=4)
    text = quiz_text(shown)
    form = quiz_widget(shown)
    for p, box in zip(shown, form.children[2:]):
        assert isinstance(p, Presented)
        for label, _ in p.options():
            assert label in text
