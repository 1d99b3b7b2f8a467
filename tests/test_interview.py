"""The interview bank, answer scoring, Leitner scheduling, the mock interview, its CLI and the coding problems."""
import copy
import io
import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from domain_tutor import interview as I
from domain_tutor.exercises import check, get_exercise, list_exercises
from domain_tutor.progress import load_progress

MINE = I.TOPICS[:8]
BANK = I.load_bank()
MY_ITEMS = [i for i in BANK if i.topic in MINE]
T0 = datetime(2025, 3, 1, 8, 0, tzinfo=timezone.utc)

REQUIRED = [  # every question of the source material in this half of the bank, and its wrong answers
    "domain_adaptation.definition", "domain_adaptation.challenges", "transfer_learning.vs_domain_adaptation",
    "domain_adaptation.distribution_shift", "domain_adaptation.few_shot", "domain_adaptation.task_difference",
    "finetuning_pipeline.basic_pipeline", "finetuning_pipeline.choose_pretrained", "imbalance.strategies",
    "evaluation.finetuned_model", "finetuning_pipeline.overfitting", "context_length.long_documents",
    "finetuning_pipeline.compute_cost", "domain_adaptation.use_cases", "domain_adaptation.bias"]
WRONG = ["domain_adaptation.wrong_zero_shot", "domain_adaptation.wrong_compression", "context_length.wrong_shuffle",
         "optimisation.wrong_adam_no_sqrt", "language_models.wrong_bigram_history", "language_models.wrong_mse_loss"]


def test_topics_are_fixed():
    assert len(I.TOPICS) == 17 and len(set(I.TOPICS)) == 17
    assert {p.stem for p in I.bank_paths()} <= set(I.TOPICS)


def test_bank_validates():
    problems = I.validate_bank()
    assert not problems, "\n".join(problems[:30])


def test_my_files_validate_alone():
    for t in MINE:
        assert I.validate_bank(I.bank_dir() / f"{t}.yml") == [], t


def test_counts_per_topic():
    present = {p.stem for p in I.bank_paths()}
    for t in present:
        assert sum(i.topic == t for i in BANK) >= 6, t
    assert set(MINE) <= present


def test_bank_size_targets():
    assert len(MY_ITEMS) >= 75
    if {p.stem for p in I.bank_paths()} >= set(I.TOPICS):
        assert len(BANK) >= 150


def test_required_questions_and_wrong_answers_exist():
    ids = {i.id: i for i in BANK}
    for qid in REQUIRED + WRONG:
        assert qid in ids, qid
    for qid in WRONG:
        assert ids[qid].kind == "wrong_answer" and ids[qid].wrong_claim["en"] and ids[qid].wrong_claim["zh"]
    assert "bias" in ids["domain_adaptation.bias"].answer["en"].lower()


def test_linked_exercises_exist():
    known = {e.id for e in list_exercises()}
    for item in MY_ITEMS:
        assert set(item.exercises) <= known, item.id


GOOD = {"id": "evaluation.demo", "topic": "evaluation", "difficulty": 2, "chapter": "06_metrics", "kind": "standard",
        "question": {"en": "Q?", "zh": "问？"}, "answer": {"en": "A.", "zh": "答。"},
        "key_points": {"en": ["a", "b", "c"], "zh": ["甲", "乙", "丙"]}, "follow_ups": {"en": ["F?"], "zh": ["追问？"]},
        "exercises": ["optim.adam_step"]}
BREAK = {
    "missing or empty": lambda d: d["question"].update(zh=""),
    "topic must be one of": lambda d: d.update(topic="cooking"),
    "prefixed by the topic": lambda d: d.update(id="metrics.demo"),
    "difficulty must be": lambda d: d.update(difficulty=0),
    "chapter must be": lambda d: d.update(chapter="99_nothing"),
    "3 to 6 entries": lambda d: d["key_points"].update(en=list("abcdefg"), zh=list("甲乙丙丁戊己庚")),
    "'en' has 3 entries but 'zh' has 4": lambda d: d["key_points"].update(zh=["甲", "乙", "丙", "丁"]),
    "follow_ups": lambda d: d.pop("follow_ups"),
    "does not exist": lambda d: d.update(exercises=["optim.nope"]),
    "only for kind": lambda d: d.update(wrong_claim={"en": "x", "zh": "x"}),
    "wrong_claim": lambda d: d.update(kind="wrong_answer"),
    "kind must be": lambda d: d.update(kind="other"),
    "unknown key": lambda d: d.update(tags=[]),
}


def test_good_item_is_valid():
    assert I.validate_bank([GOOD]) == []


@pytest.mark.parametrize("expected", list(BREAK))
def test_validate_catches(expected):
    bad = copy.deepcopy(GOOD)
    BREAK[expected](bad)
    assert any(expected in p for p in I.validate_bank([bad])), I.validate_bank([bad])


def test_validate_catches_duplicates_and_file_names(tmp_path):
    assert any("duplicate id" in p for p in I.validate_bank([GOOD, GOOD]))
    (tmp_path / "peft.yml").write_text(json.dumps({"topic": "evaluation", "questions": [GOOD]}))
    assert any("must be named evaluation.yml" in p for p in I.validate_bank(tmp_path))
    (tmp_path / "peft.yml").write_text("topic: [unclosed")
    assert any("not valid YAML" in p for p in I.validate_bank(tmp_path))


def test_load_bank_skips_a_broken_file_and_sees_edits(tmp_path):
    (tmp_path / "evaluation.yml").write_text(json.dumps({"topic": "evaluation", "questions": [GOOD]}))
    assert [i.id for i in I.load_bank(tmp_path)] == ["evaluation.demo"]
    (tmp_path / "peft.yml").write_text("topic: peft\nquestions: 3\n")
    assert [i.id for i in I.load_bank(tmp_path)] == ["evaluation.demo"]
    other = dict(GOOD, id="evaluation.demo2")
    (tmp_path / "evaluation.yml").write_text(json.dumps({"topic": "evaluation", "questions": [GOOD, other]}))
    assert len(I.load_bank(tmp_path)) == 2


def test_questions_table():
    df = I.questions("context_length", lang="zh")
    assert list(df.columns) == ["id", "topic", "difficulty", "question"]
    assert len(df) >= 6 and (df.topic == "context_length").all() and df.question.str.contains("[\u4e00-\u9fff]").all()
    assert (I.questions(difficulty=3).difficulty == 3).all()
    with pytest.raises(ValueError):
        I.questions("cooking")


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_model_answers_score_high(lang):
    low = [(i.id, I.score_answer(i.id, i.answer[lang], lang)["coverage"]) for i in MY_ITEMS
           if I.score_answer(i.id, i.answer[lang], lang)["coverage"] < 0.8]
    assert not low, low


DISTANT = {"domain_adaptation": "optimisation", "transfer_learning": "context_length", "language_models": "optimisation",
           "finetuning_pipeline": "imbalance", "optimisation": "domain_adaptation", "imbalance": "optimisation",
           "evaluation": "optimisation", "context_length": "imbalance"}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_unrelated_answers_score_low(lang):
    by_topic = {t: [i for i in MY_ITEMS if i.topic == t] for t in MINE}
    high = []
    for item in MY_ITEMS:
        for other in by_topic[DISTANT[item.topic]]:
            c = I.score_answer(item.id, other.answer[lang], lang)["coverage"]
            if c > 0.2:
                high.append((item.id, other.id, c))
    assert not high, high
    rng = random.Random(1)     # and a random answer from any other topic: low on average
    cov = [I.score_answer(i.id, rng.choice([j for j in MY_ITEMS if j.topic != i.topic]).answer[lang], lang)["coverage"]
           for i in MY_ITEMS]
    assert np.mean(cov) < 0.1 and np.mean(np.array(cov) <= 0.2) > 0.9, cov


def test_score_answer_details():
    r = I.score_answer("context_length.wrong_shuffle", "Shuffling does not change the number of tokens; it destroys word order.")
    assert r["coverage"] == 0.5 and len(r["covered"]) == 2 and len(r["missing"]) == 2
    assert I.score_answer("context_length.wrong_shuffle", "")["coverage"] == 0
    with pytest.raises(ValueError):
        I.score_answer("no.such_item", "x")
    with pytest.raises(ValueError):
        I.score_answer("context_length.wrong_shuffle", "x", lang="fr")


def test_jieba_is_optional(monkeypatch):
    monkeypatch.setattr(I, "_jieba", lambda: None)
    assert I.content_units("上下文长度", "zh") == ["上下", "下文", "文长", "长度"]


def test_leitner_boxes_and_due_dates(course_home):
    qid = "optimisation.warmup"
    e = I.record_review(qid, 2, now=T0)
    assert (e["box"], e["due"], e["chapter"]) == (2, (T0 + timedelta(days=2)).isoformat(), "03_optim")
    e = I.record_review(qid, 3, now=T0 + timedelta(days=2))
    assert (e["box"], e["due"]) == (4, (T0 + timedelta(days=10)).isoformat())
    e = I.record_review(qid, 1, now=T0 + timedelta(days=10))
    assert (e["box"], e["due"]) == (4, (T0 + timedelta(days=18)).isoformat())
    for k in range(3):
        e = I.record_review(qid, 3, now=T0 + timedelta(days=20 + k))
    assert e["box"] == 5 and e["due"] == (T0 + timedelta(days=22 + 16)).isoformat()
    e = I.record_review(qid, 0, now=T0 + timedelta(days=40))
    assert (e["box"], e["due"], e["reviews"]) == (1, (T0 + timedelta(days=41)).isoformat(), 7)
    assert load_progress()["interview"][qid]["box"] == 1
    with pytest.raises(ValueError):
        I.record_review(qid, 4)


def test_due_orders_overdue_then_new(course_home):
    a, b = "imbalance.strategies", "evaluation.calibration"
    I.record_review(a, 2, now=T0)                     # due T0 + 2 days
    I.record_review(b, 0, now=T0)                     # due T0 + 1 day
    assert I.due(2, now=T0) [0] not in (a, b)          # nothing due yet: new items
    assert I.due(2, now=T0 + timedelta(days=1))[0] == b
    assert I.due(2, now=T0 + timedelta(days=3))[:2] == [b, a]
    new = I.due(200, now=T0)
    assert a not in new and b not in new and len(new) == min(200, len(BANK) - 2)
    assert I.get_item(new[0]).difficulty == 1
    assert all(I.get_item(q).topic == "imbalance" for q in I.due(5, topics="imbalance", now=T0))


def test_progress_counts_due_reviews(course_home):
    from domain_tutor.progress import progress_table
    I.record_review("optimisation.warmup", 0, now=T0)
    table = progress_table(now=T0 + timedelta(days=2))
    assert int(table.set_index("chapter").loc["03_optim", "reviews_due"]) == 1


def test_mock_interview_text_mode_records(course_home):
    ids = ["domain_adaptation.definition", "context_length.wrong_shuffle"]
    good = I.get_item(ids[0]).answer["en"]
    out = io.StringIO()
    res = I.mock_interview(qids=ids, answers=[good, "no idea"], now=T0, out=out)
    assert [r["grade"] for r in res] == [2, 0]
    text = out.getvalue()
    assert "Model answer" in text and "Follow-up" in text and "Common wrong answer" in text
    saved = load_progress()["interview"]
    assert saved[ids[0]]["box"] == 2 and saved[ids[1]]["box"] == 1


def test_mock_interview_with_ask_and_grades(course_home):
    prompts = []
    replies = iter(["some answer", "3", "another", ""])
    def ask(prompt):
        prompts.append(prompt)
        return next(replies)
    res = I.mock_interview(n=2, topics=["imbalance"], lang="zh", seed=3, ask=ask, now=T0, out=io.StringIO())
    assert len(res) == 2 and res[0]["grade"] == 3 and res[1]["grade"] == I.suggested_grade(res[1]["coverage"])
    assert any("自评" in p for p in prompts)
    assert all(I.get_item(r["id"]).topic == "imbalance" for r in res)


def test_mock_interview_stops_at_eof(course_home):
    def ask(prompt):
        raise EOFError
    assert I.mock_interview(n=3, seed=0, ask=ask, out=io.StringIO()) == []
    assert load_progress()["interview"] == {}


def test_seed_reproduces():
    a = I.mock_interview(n=3, seed=7, answers=["", "", ""], record=False, out=io.StringIO())
    b = I.mock_interview(n=3, seed=7, answers=["", "", ""], record=False, out=io.StringIO())
    assert [r["id"] for r in a] == [r["id"] for r in b]


def test_review_runs_due_items(course_home):
    I.record_review("evaluation.calibration", 0, now=T0)
    res = I.review(n=2, answers=["", ""], now=T0 + timedelta(days=1), out=io.StringIO())
    assert res[0]["id"] == "evaluation.calibration" and len(res) == 2


def test_widget_submit_and_grade(course_home):
    form = I.interview_widget([I.get_item("context_length.wrong_shuffle")], "en")
    card = form.children[1]
    head, box, submit, feedback, buttons, status = card.children
    box.value = "Shuffling does not change the number of tokens and destroys word order."
    submit.click()
    assert "Key points covered: 2/4" in feedback.value and "Model answer" in feedback.value
    buttons.children[2].click()
    assert form.results[0]["grade"] == 2
    assert load_progress()["interview"]["context_length.wrong_shuffle"]["box"] == 2


def test_cheatsheet():
    md = I.cheatsheet("context_length")
    assert md.startswith("## Cheat sheet · context_length") and "Common wrong answers" in md
    assert "速查表" in I.cheatsheet("context_length", "zh")
    with pytest.raises(ValueError):
        I.cheatsheet("cooking")


def test_cli_interview_with_piped_stdin(tmp_path):
    exe = Path(sys.executable).parent / "domain-tutor"
    env = {**__import__("os").environ, "DOMAIN_TUTOR_HOME": str(tmp_path)}
    out = subprocess.run([str(exe), "interview", "--n", "2", "--topic", "context_length", "--seed", "1"],
                         input="I would truncate to 512 tokens keeping head and tail\n1\n\n", capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert "Mock interview" in out.stdout and "Model answer" in out.stdout
    saved = json.loads((tmp_path / "progress.json").read_text())["interview"]
    assert len(saved) == 2 and all(k.startswith("context_length.") for k in saved)
    zh = subprocess.run([str(exe), "interview", "--lang", "zh", "--n", "1"], input="", capture_output=True, text=True,
                        timeout=120, env=env)
    assert zh.returncode == 0 and "模拟面试" in zh.stdout
    bad = subprocess.run([str(exe), "interview", "--topic", "cooking"], input="", capture_output=True, text=True,
                         timeout=120, env=env)
    assert bad.returncode == 2 and "topics must be among" in bad.stderr


EXERCISES = ["interview.gradient_reversal_backward", "interview.focal_loss", "interview.fgm_perturbation",
             "interview.perplexity_from_logits", "interview.top_k_filter", "interview.head_tail_truncate"]
WRONG_VERSIONS = {
    "interview.gradient_reversal_backward": [lambda g, lam: lam * np.asarray(g), lambda g, lam: -np.asarray(g)],
    "interview.focal_loss": [I._ce, lambda z, t, gamma=2.0: I.focal_loss(z, t, gamma) * len(t)],
    "interview.fgm_perturbation": [lambda g, epsilon=1.0: epsilon * np.sign(g),
                                   lambda g, epsilon=1.0: epsilon * g / np.linalg.norm(g)],
    "interview.perplexity_from_logits": [lambda z, y: I._ce(z, y), lambda z, y: float(2 ** I._ce(z, y))],
    "interview.top_k_filter": [lambda p, k: np.where(np.isin(np.arange(len(p)), np.argsort(-p, kind="stable")[:k]), p, 0),
                               lambda p, k: (lambda q: q / q.sum())(np.where(p >= np.sort(p)[::-1][min(k, len(p)) - 1], p, 0.0))],
    "interview.head_tail_truncate": [lambda t, m=512, h=128: list(t)[:m], lambda t, m=512, h=128: list(t)[:h] + list(t)[-(m - h):]],
}


def test_at_least_five_interview_exercises():
    ids = {e.id for e in list_exercises("interview")}
    assert set(EXERCISES) <= ids and len(ids) >= 5


@pytest.mark.parametrize("eid", EXERCISES)
def test_exercise_reference_passes_and_wrong_versions_fail(eid):
    ex = get_exercise(eid)
    assert check(eid, ex.reference, record=False, verbose=False).passed
    np.seterr(all="ignore")
    for wrong in WRONG_VERSIONS[eid]:
        r = check(eid, wrong, record=False, verbose=False)
        assert not r.passed, (eid, r.feedback)
