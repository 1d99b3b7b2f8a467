"""The glossary: the packaged file is valid and ships with the package, lookups work in both languages, misses suggest."""
import copy
import glob
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
import yaml

import domain_tutor
from domain_tutor.config import CHAPTERS
from domain_tutor import exercises
from domain_tutor.glossary import (GlossaryTable, Term, TermNotFound, glossary, glossary_path, load_glossary,
                                   normalize_term, suggest_terms, validate_glossary)

from conftest import ROOT

TERMS = load_glossary()
RAW = yaml.safe_load(glossary_path().read_text(encoding="utf-8"))


# --- the packaged file ---------------------------------------------------------------------------------------------

def test_the_yaml_is_package_data():
    packaged = resources.files("domain_tutor") / "data" / "glossary.yml"
    assert packaged.is_file()
    assert glossary_path() == Path(str(packaged))
    assert glossary_path().is_relative_to(Path(domain_tutor.__file__).parent)
    # setup.py ships data/**/* (setuptools expands it like glob with recursive=True): the glossary is in the wheel
    assert '"data/**/*"' in (ROOT / "setup.py").read_text(encoding="utf-8")
    package = Path(domain_tutor.__file__).parent
    shipped = {Path(p).relative_to(package).as_posix() for p in glob.glob(str(package / "data/**/*"), recursive=True)}
    assert "data/glossary.yml" in shipped


def test_the_packaged_glossary_is_valid_and_large_enough():
    assert validate_glossary(glossary_path()) == []
    assert validate_glossary(RAW) == []
    assert len(TERMS) >= 80
    assert all(isinstance(t, Term) for t in TERMS)


def test_every_chapter_key_is_valid_and_every_chapter_has_terms():
    assert {t.chapter for t in TERMS} <= set(CHAPTERS)
    for key in CHAPTERS:
        assert sum(t.chapter == key for t in TERMS) >= (3 if key == "interview" else 5), key  # 08 teaches few new terms


def test_definitions_are_sentences_in_both_languages():
    for t in TERMS:
        assert t.definition["en"].endswith("."), t.en
        assert t.definition["zh"].endswith("。"), t.en


COURSE_TERMS = [
    "domain", "task", "domain shift", "covariate shift", "label shift", "concept drift", "transfer learning",
    "domain adaptation", "fine-tuning", "proxy A-distance", "H-divergence", "KL divergence", "JS divergence", "OOV",
    "n-gram", "smoothing", "Laplace smoothing", "add-k smoothing", "Kneser-Ney smoothing", "interpolation", "backoff",
    "perplexity", "cross-entropy", "softmax", "gradient descent", "SGD", "momentum", "Adam", "AdamW", "weight decay",
    "learning-rate schedule", "warm-up", "catastrophic forgetting", "gradient clipping", "class imbalance",
    "oversampling", "undersampling", "SMOTE", "class weights", "focal loss", "threshold moving",
    "gradient reversal layer", "DANN", "FGM", "PGD", "CORAL", "MMD", "data augmentation", "EDA", "confusion matrix",
    "precision", "recall", "F1", "macro averaging", "micro averaging", "ROC", "AUC", "PR curve", "average precision",
    "calibration", "ECE", "temperature scaling", "bootstrap CI", "tokenizer", "WordPiece", "BPE", "attention mask",
    "special tokens", "truncation", "sliding window", "dynamic padding", "Trainer", "DAPT", "TAPT",
    "masked language modelling", "LoRA", "PEFT", "BitFit", "adapter", "knowledge distillation", "prompt", "few-shot",
    "in-context learning", "DDP", "mixed precision", "early stopping", "cross-validation", "hyper-parameter search",
    "integrated gradients", "multi-task learning", "MAML", "Reptile", "neural language model", "RNN", "Transformer",
    "self-attention", "embedding"]


@pytest.mark.parametrize("name", COURSE_TERMS)
def test_the_course_vocabulary_is_covered(name):
    assert isinstance(glossary(name), Term)


# --- lookups -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("en, zh", [("domain adaptation", "领域适应"), ("covariate shift", "协变量偏移"),
                                    ("catastrophic forgetting", "灾难性遗忘"), ("knowledge distillation", "知识蒸馏"),
                                    ("perplexity", "困惑度"), ("label shift", "标签偏移"), ("LoRA", "低秩适配")])
def test_english_and_chinese_find_the_same_entry(en, zh):
    assert glossary(zh) == glossary(en)
    assert glossary(en).en == en and glossary(en).zh == zh


@pytest.mark.parametrize("alias, en", [("DA", "domain adaptation"), ("领域自适应", "domain adaptation"),
                                       ("域适应", "domain adaptation"), ("PPL", "perplexity"),
                                       ("MLM", "masked language modelling"), ("concept drift", "concept shift"),
                                       ("Jensen-Shannon divergence", "JS divergence"), ("OOV", "out-of-vocabulary word"),
                                       ("low-rank adaptation", "LoRA"), ("AUROC", "AUC"), ("加一平滑", "Laplace smoothing")])
def test_aliases(alias, en):
    assert glossary(alias).en == en


@pytest.mark.parametrize("spelling", ["Domain Adaptation", "DOMAIN-ADAPTATION", "domain_adaptation", "domainadaptation",
                                      "  domain   adaptation ", "ＤＡ", "领域 适应"])
def test_case_spaces_hyphens_and_width_are_ignored(spelling):
    assert glossary(spelling).en == "domain adaptation"


def test_every_name_and_cross_reference_resolves():
    for t in TERMS:
        for name in t.names:
            assert glossary(name) == t, name
        for ref in t.see_also:
            assert glossary(ref) != t, (t.en, ref)


def test_lang_sets_the_display_language_only():
    zh = glossary("perplexity", lang="zh")
    assert zh == glossary("perplexity") and zh.lang == "zh"
    assert str(zh).startswith("困惑度 · perplexity") and zh.definition["en"] not in str(zh)
    both = str(glossary("perplexity"))
    assert glossary("perplexity").definition["en"] in both and glossary("perplexity").definition["zh"] in both
    assert "&lt;" in glossary("unknown-word token")._repr_html_()      # <unk> is escaped in the card


# --- misses and bad arguments --------------------------------------------------------------------------------------

def test_an_unknown_term_raises_with_suggestions():
    with pytest.raises(TermNotFound) as info:
        glossary("domian adaptaton")
    err = info.value
    assert isinstance(err, KeyError)
    assert err.suggestions and err.suggestions[0].en == "domain adaptation"
    assert "domain adaptation (领域适应)" in str(err) and "did you mean" in str(err)


def test_a_chinese_miss_suggests_in_chinese():
    with pytest.raises(KeyError, match=r"灾难性遗忘 \(catastrophic forgetting\)"):
        glossary("灾难遗忘")


def test_a_fragment_suggests_the_entries_that_contain_it():
    assert suggest_terms("kneser")[0].en == "Kneser–Ney smoothing"
    assert "domain adaptation" in [t.en for t in suggest_terms("adaptation")]
    assert suggest_terms("qqqqqqqq") == []
    with pytest.raises(TermNotFound, match="no close match"):
        glossary("qqqqqqqq")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"term": 3}, TypeError, "term must be a str"),
    ({"term": ["LoRA"]}, TypeError, "term must be a str"),
    ({"term": "LoRA", "lang": 1}, TypeError, "lang must be"),
    ({"term": "LoRA", "lang": "fr"}, ValueError, "lang must be"),
    ({"lang": "de"}, ValueError, "lang must be"),
    ({"term": " - "}, ValueError, "term must be a non-empty name"),
    ({"term": "LoRA", "chapter": "finetune"}, ValueError, "not both"),
    ({"chapter": "finetuning"}, ValueError, "chapter must be one of"),
    ({"chapter": 2.5}, TypeError, "chapter must be a str or an int"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        glossary(**kwargs)


def test_other_bad_arguments_name_the_argument():
    with pytest.raises(TypeError, match="name must be a str"):
        normalize_term(None)
    with pytest.raises(TypeError, match="name must be a str"):
        suggest_terms(1)
    with pytest.raises(TypeError, match="path must be"):
        load_glossary(1)


# --- the table -----------------------------------------------------------------------------------------------------

def test_the_whole_glossary_is_a_table():
    table = glossary()
    assert isinstance(table, pd.DataFrame) and isinstance(table, GlossaryTable)
    assert len(table) == len(TERMS)
    assert list(table.columns) == ["zh", "chapter", "definition_en", "definition_zh"]
    assert list(table["chapter"].drop_duplicates()) == list(CHAPTERS)
    assert table.loc["domain adaptation", "zh"] == "领域适应"


@pytest.mark.parametrize("chapter", ["finetune", "07_finetune", 7, "07"])
def test_one_chapter_in_one_language(chapter):
    table = glossary(chapter=chapter, lang="en")
    assert set(table["chapter"]) == {"finetune"}
    assert len(table) == sum(t.chapter == "finetune" for t in TERMS)
    assert list(table.columns) == ["zh", "chapter", "definition"]


def test_the_chinese_table_is_indexed_by_the_chinese_term():
    table = glossary(chapter="concepts", lang="zh")
    assert table.index.name == "zh" and table.loc["领域适应", "en"] == "domain adaptation"
    assert table.loc["领域适应", "definition"] == glossary("DA").definition["zh"]
    assert "..." not in table._repr_html_() and "..." not in repr(table)          # definitions are not cut


def test_the_glossary_registers_no_exercise():
    import domain_tutor.glossary as module
    source = Path(module.__file__).read_text(encoding="utf-8")
    assert "exercises" not in source and "register(" not in source
    assert not any(key.startswith("glossary.") for key in exercises._REGISTRY)


# --- validate_glossary on broken copies of the real file ------------------------------------------------------------

def _broken(change):
    data = copy.deepcopy(RAW)
    change(data["terms"])
    return validate_glossary(data)


def _entry(terms, en):
    return next(e for e in terms if e["en"] == en)


def test_validation_catches_a_name_used_twice():
    problems = _broken(lambda ts: _entry(ts, "LoRA")["aliases"].append("Domain-Adaptation"))
    assert problems == ["'LoRA': the name 'Domain-Adaptation' is already a name of 'domain adaptation'"]
    assert _broken(lambda ts: ts.append(copy.deepcopy(_entry(ts, "LoRA"))))


@pytest.mark.parametrize("change, message", [
    (lambda e: e.pop("zh"), "zh must be a non-empty string"),
    (lambda e: e.update(zh="low-rank"), "zh has no Chinese characters"),
    (lambda e: e["definition"].update(en=""), "definition.en must be a non-empty string"),
    (lambda e: e["definition"].update(zh="第一行\n第二行"), "definition.zh must be a single line"),
    (lambda e: e["definition"].update(en="x" * 400), "keep a glossary line under"),
    (lambda e: e.update(chapter="lora"), "chapter must be one of"),
    (lambda e: e.update(see_also=["nowhere"]), "see_also 'nowhere' is not a name of any entry"),
    (lambda e: e.update(see_also=["low rank adaptation"]), "refers to the entry itself"),
    (lambda e: e.update(aliases="LoRA-adapters"), "aliases must be a list"),
    (lambda e: e.update(chapters="finetune"), "unknown key 'chapters'"),
])
def test_validation_catches_each_kind_of_mistake(change, message):
    problems = _broken(lambda ts: change(_entry(ts, "LoRA")))
    assert len(problems) == 1 and problems[0].startswith("'LoRA': ") and message in problems[0], problems


def test_an_invalid_file_is_refused(tmp_path):
    bad = copy.deepcopy(RAW)
    bad["terms"][0]["chapter"] = "nowhere"
    path = tmp_path / "glossary.yml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ValueError, match="not a valid glossary"):
        load_glossary(path)
    path.write_text(yaml.safe_dump(RAW, allow_unicode=True), encoding="utf-8")
    assert load_glossary(path) == TERMS
