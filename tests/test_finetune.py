"""domain_tutor.finetune against transformers, PEFT and torch: tokenization strategies, aggregation, the Trainer
wrapper, masked-LM pretraining, LoRA, distillation, and DDP with torchrun (2 CPU processes, gloo)."""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from domain_tutor.data import load_domain_dataset, make_reviews, texts_and_labels
from domain_tutor.finetune import (CASE_STUDY_SETTINGS, accuracy_table, add_lora, aggregate_chunks, as_texts_labels,
                                   case_study, continue_pretraining, count_parameters, distill, distillation_loss, encode,
                                   finetune, predict, shrink_encoder, truncate_ids)
from domain_tutor.models import DEFAULT_ENCODER, tiny_causal_lm


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(DEFAULT_ENCODER)


def tiny_bert(tokenizer, seed: int = 0, num_labels: int = 2, layers: int = 2):
    "A small randomly initialised BERT classifier that shares the bundled tokenizer's vocabulary."
    from transformers import BertConfig, BertForSequenceClassification
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, num_labels=num_labels)
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def state_digest(model) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --- encode ------------------------------------------------------------------------------------------------------
TEXTS = (["", "one", " ".join(f"token{i}" for i in range(80))]           # real text: long drug reviews, short sentences
         + list(load_domain_dataset("drugs", "test", n=8, seed=9)["text"])
         + list(load_domain_dataset("movies", "test", n=7, seed=9)["text"]))


@pytest.mark.parametrize("max_length", [6, 17, 64])
def test_head_and_sliding_match_the_tokenizer_on_a_bpe_tokenizer(max_length):
    _, tok = tiny_causal_lm()  # byte-level BPE, no special tokens
    assert encode(TEXTS, tok, max_length=max_length)["input_ids"] == \
        tok(TEXTS, truncation=True, max_length=max_length)["input_ids"]
    for overlap in (0, 1, max_length // 2):
        ref = tok(TEXTS, truncation=True, max_length=max_length, stride=overlap, return_overflowing_tokens=True)
        got = encode(TEXTS, tok, max_length=max_length, strategy="sliding", stride=overlap)
        assert got["input_ids"] == ref["input_ids"]
        assert got["overflow_to_sample_mapping"] == ref["overflow_to_sample_mapping"]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 40), budget=st.integers(1, 20), head=st.one_of(st.none(), st.integers(0, 20)),
       strategy=st.sampled_from(["head", "tail", "head_tail"]))
def test_truncate_ids_keeps_the_right_tokens(n, budget, head, strategy):
    ids = list(range(n))
    got = truncate_ids(ids, budget, strategy, head)
    assert len(got) == min(n, budget) and got == sorted(set(got)) and set(got) <= set(ids)
    if n > budget:
        k = {"head": budget, "tail": 0, "head_tail": budget // 4 if head is None else min(head, budget)}[strategy]
        assert got == ids[:k] + ids[n - (budget - k):]


def test_sliding_windows_cover_every_token_with_the_given_overlap(tokenizer):
    enc = encode(TEXTS, tokenizer, max_length=12, strategy="sliding", stride=3)
    bodies = tokenizer(TEXTS, add_special_tokens=False)["input_ids"]
    for i, body in enumerate(bodies):
        windows = [w[1:-1] for w, m in zip(enc["input_ids"], enc["overflow_to_sample_mapping"]) if m == i]
        rebuilt = windows[0] + [t for w in windows[1:] for t in w[3:]]
        assert rebuilt == body
        assert all(len(w) <= 10 for w in windows)


def test_head_tail_keeps_the_verdict_at_both_ends(tokenizer):
    text = "Great start. " + "filler words here. " * 50 + "Terrible ending."
    ids = encode([text], tokenizer, max_length=24, strategy="head_tail", head_tokens=5)["input_ids"][0]
    decoded = tokenizer.decode(ids)
    assert decoded.startswith("[CLS] great start") and decoded.endswith("terrible ending. [SEP]")
    assert len(ids) == 24


@pytest.mark.parametrize("bad, message", [
    (dict(texts="a text"), "list of strings"), (dict(texts=["a", 3]), "only strings"),
    (dict(strategy="both"), "strategy must be one of"), (dict(max_length=2), "max_length must leave room"),
    (dict(max_length=8.0), "max_length must be an int"), (dict(strategy="sliding", stride=-1), "stride"),
    (dict(head_tokens=-2, strategy="head_tail"), "head_tokens")])
def test_encode_rejects_bad_arguments(tokenizer, bad, message):
    kw = dict(texts=["a b c"], tokenizer=tokenizer) | bad
    with pytest.raises((TypeError, ValueError), match=message):
        encode(**kw)


# --- aggregate_chunks ----------------------------------------------------------------------------------------------
@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 4), extra=st.lists(st.integers(0, 5), max_size=10), seed=st.integers(0, 99))
def test_aggregate_chunks_matches_torch_scatter_reduce(n, k, extra, seed):
    mapping = np.array(list(range(n)) + [e % n for e in extra])
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(mapping.size, k)) * 3
    index = torch.as_tensor(mapping)[:, None].expand(-1, k)
    for how, reduce, values in (("mean", "mean", z), ("max", "amax", z),
                                ("mean_proba", "mean", torch.softmax(torch.as_tensor(z), 1).numpy())):
        ref = torch.zeros(n, k, dtype=torch.float64).scatter_reduce(0, index, torch.as_tensor(values), reduce,
                                                                    include_self=False)
        np.testing.assert_allclose(aggregate_chunks(z, mapping, how=how), ref.numpy(), atol=1e-12)


def test_aggregate_chunks_accepts_tensors_and_an_explicit_count():
    out = aggregate_chunks(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), [0, 1], n_samples=2)
    np.testing.assert_allclose(out, [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="every sample"):
        aggregate_chunks(np.zeros((2, 2)), [0, 1], n_samples=3)


# --- finetune and predict --------------------------------------------------------------------------------------------
def test_as_texts_labels_accepts_a_dataset():
    from datasets import Dataset
    rows = make_reviews("dvd", 4, seed=1)
    assert as_texts_labels(Dataset.from_list(rows)) == as_texts_labels(rows)
    with pytest.raises(ValueError, match="'text' and 'label' columns"):
        as_texts_labels(Dataset.from_dict({"sentence": ["a"], "label": [1]}))


def test_finetune_learns_saves_and_cleans_up(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("DOMAIN_TUTOR_CACHE", str(tmp_path / "cache"))
    train = texts_and_labels(make_reviews("books", 96, seed=1))
    valid = texts_and_labels(make_reviews("books", 48, seed=2))
    model = tiny_bert(tokenizer)
    before = state_digest(model)
    out = tmp_path / "run"
    model, history = finetune(model, tokenizer, train, valid, epochs=3, lr=3e-3, batch_size=16, max_length=48,
                              output_dir=str(out), disable_tqdm=True)
    assert state_digest(model) != before
    assert list(history["epoch"]) == [1.0, 2.0, 3.0]
    assert {"train_loss", "eval_loss", "eval_accuracy", "eval_f1"} <= set(history.columns)
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0]
    assert (out / "config.json").exists() and (out / "tokenizer_config.json").exists()
    # the best epoch's weights are the ones returned and saved
    from transformers import AutoModelForSequenceClassification
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    assert state_digest(reloaded) == state_digest(model.cpu())
    # without output_dir, the temporary checkpoints are removed
    finetune(tiny_bert(tokenizer), tokenizer, train, valid, epochs=1, max_length=32, disable_tqdm=True)
    runs = tmp_path / "cache" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


def test_finetune_is_reproducible_with_a_seed(tokenizer):
    train = texts_and_labels(make_reviews("kitchen", 48, seed=3))
    digests = [state_digest(finetune(tiny_bert(tokenizer), tokenizer, train, epochs=1, lr=1e-3, max_length=32,
                                     seed=7, disable_tqdm=True)[0]) for _ in range(2)]
    assert digests[0] == digests[1]


def test_finetune_rejects_bad_arguments(tokenizer):
    model = tiny_bert(tokenizer)
    with pytest.raises(ValueError, match="epochs"):
        finetune(model, tokenizer, (["a"], [1]), epochs=0)
    with pytest.raises(ValueError, match="batch_size"):
        finetune(model, tokenizer, (["a"], [1]), batch_size=0)
    with pytest.raises(TypeError, match="not_an_argument"):
        finetune(model, tokenizer, (["a"], [1]), not_an_argument=3)


def test_predict_equals_a_plain_forward_pass(tokenizer):
    model = tiny_bert(tokenizer, seed=3).eval()
    texts = [r["text"] for r in make_reviews("electronics", 7, seed=4)]
    probs = predict(model, tokenizer, texts, batch_size=3, max_length=40)
    with torch.no_grad():
        for text, p in zip(texts, probs):  # one at a time: no padding at all
            enc = tokenizer([text], truncation=True, max_length=40, return_tensors="pt")
            np.testing.assert_allclose(p, torch.softmax(model(**enc).logits, -1)[0].numpy(), atol=1e-5)
    # sliding windows: the mean of the windows' logits
    enc = encode(texts, tokenizer, max_length=16, strategy="sliding", stride=4)
    with torch.no_grad():
        z = np.vstack([model(input_ids=torch.tensor([ids])).logits.numpy() for ids in enc["input_ids"]])
    ref = aggregate_chunks(z, enc["overflow_to_sample_mapping"])
    ref = np.exp(ref) / np.exp(ref).sum(1, keepdims=True)
    np.testing.assert_allclose(predict(model, tokenizer, texts, max_length=16, strategy="sliding", stride=4), ref,
                               atol=1e-5)


def test_finetune_scores_sliding_windows_per_text(tokenizer):
    train = texts_and_labels(make_reviews("books", 32, seed=5))
    valid = texts_and_labels(make_reviews("books", 20, seed=6))
    _, history = finetune(tiny_bert(tokenizer), tokenizer, train, valid, epochs=1, max_length=16, strategy="sliding",
                          disable_tqdm=True)
    acc = history["eval_accuracy"].iloc[-1]
    assert abs(acc * 20 - round(acc * 20)) < 1e-9  # a multiple of 1/20: scored per text, not per window


# --- continued pretraining -------------------------------------------------------------------------------------------
def test_continue_pretraining_returns_a_loadable_adapted_checkpoint(tokenizer, tmp_path):
    from transformers import AutoModelForMaskedLM, BertConfig, BertForMaskedLM
    base = tmp_path / "base"
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    BertForMaskedLM(config).save_pretrained(base)
    tokenizer.save_pretrained(base)
    texts = [r["text"] for r in make_reviews("finance", 64, seed=1)]
    path = continue_pretraining(str(base), texts, epochs=2, lr=1e-3, batch_size=16, max_length=32,
                                output_dir=str(tmp_path / "dapt"), disable_tqdm=True)
    adapted = AutoModelForMaskedLM.from_pretrained(path)
    assert state_digest(adapted) != state_digest(AutoModelForMaskedLM.from_pretrained(base))
    from domain_tutor.models import load_encoder
    clf, tok = load_encoder(path, fallback=False)
    assert clf.config.num_labels == 2 and tok.mask_token == "[MASK]"
    with pytest.raises(ValueError, match="mlm_probability"):
        continue_pretraining(str(base), texts, mlm_probability=1.5)
    with pytest.raises(TypeError, match="model_name_or_path"):
        continue_pretraining(clf, texts)


# --- LoRA --------------------------------------------------------------------------------------------------------------
def test_lora_counts_match_peft_and_stay_under_two_percent():
    from domain_tutor.models import load_encoder
    model, _ = load_encoder(DEFAULT_ENCODER)
    full_trainable, full_total = count_parameters(model)
    assert full_trainable == full_total == sum(p.numel() for p in model.parameters())
    lora = add_lora(model, r=8)
    trainable, total = count_parameters(lora)
    assert (trainable, total) == tuple(lora.get_nb_trainable_parameters())
    assert trainable / total < 0.02


def test_lora_starts_at_the_base_model_and_is_w_plus_scaled_ba(tokenizer):
    model = tiny_bert(tokenizer, seed=1).eval()
    enc = tokenizer(["a short review", "another one, longer than the first"], padding=True, return_tensors="pt")
    with torch.no_grad():
        base_logits = model(**enc).logits
    lora = add_lora(model, r=4, alpha=8, dropout=0.0).eval()
    with torch.no_grad():
        torch.testing.assert_close(lora(**enc).logits, base_logits)  # B = 0 at the start
    layer = lora.base_model.model.bert.encoder.layer[0].attention.self.query
    torch.nn.init.normal_(layer.lora_B["default"].weight)
    x = torch.randn(3, 32)
    W, b = layer.base_layer.weight, layer.base_layer.bias
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    torch.testing.assert_close(layer(x), x @ W.T + b + (8 / 4) * (x @ A.T @ B.T))
    # the head is trained and saved with the adapters
    names = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert any("classifier" in n for n in names) and any("pooler" in n for n in names)
    assert all("lora_" in n or "classifier" in n or "pooler" in n for n in names)


def test_lora_head_is_saved_with_the_adapter(tokenizer, tmp_path):
    from peft import PeftModel
    lora = add_lora(tiny_bert(tokenizer, seed=2))
    with torch.no_grad():
        lora.base_model.model.classifier.modules_to_save["default"].weight.add_(1.0)
    lora.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(tiny_bert(tokenizer, seed=2), tmp_path / "adapter")
    enc = tokenizer(["some text"], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(**enc).logits, lora.eval()(**enc).logits)


def test_add_lora_explains_unknown_architectures():
    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.mixer = torch.nn.Linear(4, 4)
    with pytest.raises(ValueError, match="target_modules"):
        add_lora(Odd())
    with pytest.raises(TypeError, match="model must be"):
        add_lora("bert-base-uncased")
    with pytest.raises(ValueError, match="r must be"):
        add_lora(Odd(), r=0)


# --- distillation --------------------------------------------------------------------------------------------------------
@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.floats(0.5, 5), alpha=st.floats(0, 1))
def test_distillation_loss_matches_its_formula(seed, T, alpha):
    rng = np.random.default_rng(seed)
    s, t = rng.normal(size=(6, 4)) * 3, rng.normal(size=(6, 4)) * 3
    y = rng.integers(0, 4, 6)

    def log_softmax(z):
        z = z - z.max(1, keepdims=True)
        return z - np.log(np.exp(z).sum(1, keepdims=True))
    pt = np.exp(log_softmax(t / T))
    kl = (pt * (log_softmax(t / T) - log_softmax(s / T))).sum(1).mean()
    ce = -log_softmax(s)[np.arange(6), y].mean()
    got = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert abs(float(got) - (alpha * T * T * kl + (1 - alpha) * ce)) < 1e-9


def test_distillation_loss_sends_no_gradient_to_the_teacher():
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    distillation_loss(s, t, torch.tensor([0, 1, 2, 0])).backward()
    assert s.grad is not None and t.grad is None


def test_distill_trains_a_shrunk_student_and_leaves_the_teacher(tokenizer):
    teacher = tiny_bert(tokenizer, seed=4, layers=4)
    student = shrink_encoder(teacher, num_layers=2)
    assert len(student.bert.encoder.layer) == 2 and student.config.num_hidden_layers == 2
    torch.testing.assert_close(student.bert.encoder.layer[1].output.dense.weight,
                               teacher.bert.encoder.layer[3].output.dense.weight)
    before = state_digest(teacher)
    train = texts_and_labels(make_reviews("dvd", 32, seed=2))
    student, history = distill(teacher, student, tokenizer, train, epochs=1, max_length=32, disable_tqdm=True)
    assert state_digest(teacher) == before and len(history) == 1
    with pytest.raises(ValueError, match="num_layers"):
        shrink_encoder(teacher, num_layers=5)


# --- many processes -------------------------------------------------------------------------------------------------------
DDP_SCRIPT = textwrap.dedent('''
    import hashlib, json, os, sys
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from domain_tutor.data import load_domain_dataset, make_reviews, texts_and_labels
    from domain_tutor.finetune import finetune
    from domain_tutor.models import DEFAULT_ENCODER
    tok = AutoTokenizer.from_pretrained(DEFAULT_ENCODER)
    config = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    train = texts_and_labels(make_reviews("books", 64, seed=1))
    model, history = finetune(model, tok, train, epochs=2, lr=1e-3, batch_size=8, max_length=32, ddp_backend="gloo",
                              use_cpu=True, disable_tqdm=True)
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode()); h.update(t.detach().cpu().contiguous().numpy().tobytes())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    out = {"rank": int(os.environ.get("RANK", "0")), "world": world, "digest": h.hexdigest(),
           "steps": len(history)}
    open(os.path.join(sys.argv[1], f"rank{out['rank']}.json"), "w").write(json.dumps(out))
''')


def test_torchrun_two_processes_end_with_identical_weights(tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed")
    script = tmp_path / "train.py"
    script.write_text(DDP_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    run = subprocess.run([torchrun, "--nproc_per_node=2", "--standalone", str(script), str(tmp_path)],
                         capture_output=True, text=True, timeout=400, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["digest"] == ranks[1]["digest"]


# --- the chapter's exercises against the library and the reference libraries ------------------------------------------
from domain_tutor.finetune import (CrossValidation, cross_validate_finetune, distillation_loss_np, few_shot_prompt,  # noqa: E402
                                   head_tail_truncate, hyperparameter_search, label_word_logprobs, lora_forward,
                                   mean_aggregate, mlm_mask, sliding_windows, stratified_folds)


@settings(max_examples=100, deadline=None)
@given(n=st.integers(0, 40), max_length=st.integers(3, 24), data=st.data())
def test_head_tail_truncate_agrees_with_truncate_ids(n, max_length, data):
    head = data.draw(st.integers(0, max_length - 2))
    body = list(range(1000, 1000 + n))
    got = head_tail_truncate(body, max_length, head)
    assert got == [101] + truncate_ids(body, max_length - 2, "head_tail", head) + [102]
    assert len(got) == min(n + 2, max_length)


def test_head_tail_truncate_agrees_with_encode(tokenizer):
    for text in TEXTS:
        body = tokenizer(text, add_special_tokens=False)["input_ids"]
        for max_length, head in ((8, 0), (8, 6), (16, 4), (40, 10)):
            assert head_tail_truncate(body, max_length, head, tokenizer.cls_token_id, tokenizer.sep_token_id) == \
                encode([text], tokenizer, max_length=max_length, strategy="head_tail", head_tokens=head)["input_ids"][0]


@pytest.mark.parametrize("window, overlap", [(6, 0), (6, 2), (10, 9), (30, 8)])
def test_sliding_windows_match_the_tokenizers_overflowing_windows(tokenizer, window, overlap):
    for text in TEXTS:
        body = tokenizer(text, add_special_tokens=False)["input_ids"]
        ref = tokenizer(text, truncation=True, max_length=window + 2, stride=overlap, return_overflowing_tokens=True)
        assert [[tokenizer.cls_token_id] + w + [tokenizer.sep_token_id] for w in sliding_windows(body, window, overlap)] \
            == ref["input_ids"]


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 6), k=st.integers(1, 4), extra=st.lists(st.integers(0, 5), max_size=10), seed=st.integers(0, 99))
def test_mean_aggregate_matches_aggregate_chunks(n, k, extra, seed):
    rng = np.random.default_rng(seed)
    mapping = rng.permutation(np.array(list(range(n)) + [e % n for e in extra]))
    z = rng.normal(size=(mapping.size, k))
    np.testing.assert_allclose(mean_aggregate(z, mapping, n), aggregate_chunks(z, mapping, how="mean"), atol=1e-12)


def _collator_draws(orig, inputs, labels, mask_id):
    "Draws under which `mlm_mask` must reproduce a (inputs, labels) pair produced by another implementation."
    selected = labels != -100
    u = np.where(selected, 0.0, 1.0)
    v = np.where(inputs == mask_id, 0.5, np.where(inputs != orig, 0.85, 0.95))
    return u, v, inputs


def test_mlm_mask_reproduces_the_transformers_collator(tokenizer):
    from transformers import DataCollatorForLanguageModeling
    texts = [r["text"] for r in make_reviews("books", 64, seed=3)]
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15, return_tensors="pt")
    torch.manual_seed(0)
    rows = [{"input_ids": ids} for ids in tokenizer(texts)["input_ids"]]
    batch = collator(rows)
    padded = tokenizer.pad(rows, return_tensors="pt")["input_ids"].numpy()
    inputs, labels = batch["input_ids"].numpy(), batch["labels"].numpy()
    special = np.array([tokenizer.get_special_tokens_mask(r, already_has_special_tokens=True) for r in padded.tolist()])
    assert not (labels[special == 1] != -100).any()               # the collator never selects special tokens either
    u, v, rand = _collator_draws(padded, inputs, labels, tokenizer.mask_token_id)
    got_inputs, got_labels = mlm_mask(padded, special, u, v, rand, tokenizer.mask_token_id)
    np.testing.assert_array_equal(got_inputs, inputs)
    np.testing.assert_array_equal(got_labels, labels)


def test_mlm_mask_rates_match_the_collator(tokenizer):
    from transformers import DataCollatorForLanguageModeling
    ids = np.tile(np.array([101] + list(range(2000, 2198)) + [102]), (100, 1))  # 19,800 maskable tokens
    special = np.zeros_like(ids)
    special[:, [0, -1]] = 1
    rng = np.random.default_rng(0)
    inputs, labels = mlm_mask(ids, special, rng.random(ids.shape), rng.random(ids.shape),
                              rng.integers(1000, 3000, ids.shape), tokenizer.mask_token_id)
    torch.manual_seed(0)
    ref = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=0.15)([{"input_ids": r} for r in ids.tolist()])
    for ins, lab in ((inputs, labels), (ref["input_ids"].numpy(), ref["labels"].numpy())):
        sel = lab != -100
        assert abs(sel[special == 0].mean() - 0.15) < 0.01 and not sel[special == 1].any()
        assert abs((ins[sel] == tokenizer.mask_token_id).mean() - 0.8) < 0.03
        assert abs((ins[sel] == ids[sel]).mean() - 0.1) < 0.03  # unchanged (a random draw rarely hits the same id)


def test_lora_forward_matches_a_peft_lora_layer():
    from peft import LoraConfig, get_peft_model

    class One(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(6, 5)

        def forward(self, x):
            return self.lin(x)
    torch.manual_seed(0)
    for r, alpha in ((1, 1), (2, 16), (4, 8)):
        model = get_peft_model(One(), LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=["lin"])).eval()
        layer = model.base_model.model.lin
        torch.nn.init.normal_(layer.lora_B["default"].weight)
        x = torch.randn(3, 6)
        W, b = layer.base_layer.weight.detach().numpy(), layer.base_layer.bias.detach().numpy()
        A, B = layer.lora_A["default"].weight.detach().numpy(), layer.lora_B["default"].weight.detach().numpy()
        with torch.no_grad():
            np.testing.assert_allclose(lora_forward(x.numpy(), W, b, A, B, alpha), layer(x).numpy(), atol=1e-5)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000), T=st.floats(0.5, 5), alpha=st.floats(0, 1))
def test_distillation_loss_np_matches_the_torch_loss(seed, T, alpha):
    rng = np.random.default_rng(seed)
    s, t, y = rng.normal(size=(5, 3)) * 3, rng.normal(size=(5, 3)) * 3, rng.integers(0, 3, 5)
    ref = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), T, alpha)
    assert abs(distillation_loss_np(s, t, y, T, alpha) - float(ref)) < 1e-9


# --- prompting a causal LM -----------------------------------------------------------------------------------------------
def test_few_shot_prompt_writes_the_examples_with_their_label_words():
    words = [" no", " yes"]
    assert few_shot_prompt([("a", 1), ("b", 0)], words, template="Q: {text}\nA:", instruction="Go.") == \
        "Go.\n\nQ: a\nA: yes\n\nQ: b\nA: no\n\n"
    assert few_shot_prompt([], words) == "" and few_shot_prompt([], words, instruction="Go.") == "Go.\n\n"


def test_label_word_logprobs_equal_one_plain_forward_pass_per_prompt():
    model, tok = tiny_causal_lm(seed=1)
    model.eval()
    words = [" bad", " good"]
    texts = ["fine", "it broke after a week and support never answered", "great value, would buy again"]
    for prefix in ("", few_shot_prompt([("solid", 1), ("awful", 0)], words, instruction="Rate each review.")):
        ids = [tok(w, add_special_tokens=False)["input_ids"][0] for w in words]
        with torch.no_grad():
            plain = np.array([torch.log_softmax(model(**tok(prefix + f"Review: {x}\nSentiment:", return_tensors="pt"))
                                                .logits[0, -1], -1)[ids].numpy() for x in texts])
        for batch_size in (1, 2, 8):
            got = label_word_logprobs(model, tok, texts, words, prefix=prefix, batch_size=batch_size)
            np.testing.assert_allclose(got, plain, atol=1e-4)
    with pytest.raises(ValueError, match="different tokens"):
        label_word_logprobs(model, tok, texts, [" good", " good"])


# --- model selection -------------------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(n_pos=st.integers(3, 20), n_neg=st.integers(3, 20), k=st.integers(2, 3), seed=st.integers(0, 50))
def test_stratified_folds_are_sklearns(n_pos, n_neg, k, seed):
    from sklearn.model_selection import StratifiedKFold
    y = np.random.default_rng(seed).permutation([1] * n_pos + [0] * n_neg)
    ref = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros((y.size, 1)), y)
    folds = stratified_folds(y, k, seed)
    for (train, held), (ref_train, ref_held) in zip(folds, ref, strict=True):
        np.testing.assert_array_equal(train, ref_train)
        np.testing.assert_array_equal(held, ref_held)
    np.testing.assert_array_equal(np.sort(np.concatenate([h for _, h in folds])), np.arange(y.size))


def test_stratified_folds_reject_too_many_folds():
    with pytest.raises(ValueError, match="n_splits=4"):
        stratified_folds([0, 0, 0, 1, 1, 1, 1], 4)
    with pytest.raises(ValueError, match="n_splits must be"):
        stratified_folds([0, 1] * 5, 1)


def test_cross_validate_finetune_trains_a_fresh_model_per_fold(tokenizer):
    from sklearn.model_selection import StratifiedKFold
    data = texts_and_labels(make_reviews("books", 30, seed=8))
    made = []

    def model_init():
        made.append(tiny_bert(tokenizer, seed=len(made)))
        return made[-1]
    cv = cross_validate_finetune(model_init, tokenizer, data, n_splits=3, seed=2, epochs=1, lr=1e-3, max_length=16)
    assert len(made) == 3 and len({id(m) for m in made}) == 3
    ref = list(StratifiedKFold(3, shuffle=True, random_state=2).split(np.zeros((30, 1)), data[1]))
    for (train, held), (ref_train, ref_held) in zip(cv.splits, ref, strict=True):
        np.testing.assert_array_equal(held, ref_held)
    assert cv.scores.shape == (3,) and ((0 <= cv.scores) & (cv.scores <= 1)).all()
    for (_, held), score in zip(cv.splits, cv.scores):
        assert abs(score * held.size - round(score * held.size)) < 1e-9  # a fraction of the held-out fold
    assert cv.mean == pytest.approx(np.mean(cv.scores)) and cv.std == pytest.approx(np.std(cv.scores, ddof=1))
    assert "± " in str(cv)
    with pytest.raises(TypeError, match="model_init"):
        cross_validate_finetune(tiny_bert(tokenizer), tokenizer, data)
    with pytest.raises(ValueError, match="metric"):
        cross_validate_finetune(model_init, tokenizer, data, metric="auc")


def test_cross_validation_statistics():
    cv = CrossValidation("f1", np.array([0.2, 0.4, 0.9]))
    assert cv.mean == pytest.approx(0.5) and cv.std == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert CrossValidation("f1", np.array([0.7])).std == 0.0


def _search_data():
    rows = texts_and_labels(make_reviews("kitchen", 32, seed=4))
    return (rows[0][:24], rows[1][:24]), (rows[0][24:], rows[1][24:])


def test_grid_search_evaluates_every_grid_point(tokenizer):
    train, valid = _search_data()
    calls = []

    def model_init():
        calls.append(1)
        return tiny_bert(tokenizer)
    space = {"lr": [1e-3, 1e-2], "batch_size": [4, 8]}
    table = hyperparameter_search(model_init, tokenizer, train, valid, space, backend="grid", epochs=1, max_length=16)
    assert len(calls) == 4 and len(table) == 4
    assert set(zip(table["lr"], table["batch_size"])) == {(a, b) for a in space["lr"] for b in space["batch_size"]}
    assert table.attrs["backend"] == "grid" and table.attrs["best_score"] == table["accuracy"].max()
    assert isinstance(table.attrs["best"]["batch_size"], int)
    some = hyperparameter_search(model_init, tokenizer, train, valid, space, n_trials=3, backend="grid", epochs=1,
                                 max_length=16)
    assert len(some) == 3 and len(set(zip(some["lr"], some["batch_size"]))) == 3  # random search on the grid


def test_optuna_search_runs_n_trials_through_the_trainer(tokenizer):
    pytest.importorskip("optuna")
    train, valid = _search_data()
    calls = []

    def model_init():
        calls.append(1)
        return tiny_bert(tokenizer)
    table = hyperparameter_search(model_init, tokenizer, train, valid, {"lr": (1e-4, 1e-2), "epochs": [1, 2]},
                                  n_trials=3, backend="optuna", max_length=16, seed=3)
    assert len(table) == 3 and table.attrs["backend"] == "optuna"
    assert table["lr"].between(1e-4, 1e-2).all() and set(table["epochs"]) <= {1, 2}
    assert len(calls) >= 3  # a fresh model per trial (Trainer also builds one when it is created)
    assert ((0 <= table["accuracy"]) & (table["accuracy"] <= 1)).all()
    auto = hyperparameter_search(model_init, tokenizer, train, valid, {"lr": [1e-3]}, n_trials=1, max_length=16)
    assert auto.attrs["backend"] == "optuna"


def test_optuna_and_grid_score_a_setting_alike(tokenizer):
    pytest.importorskip("optuna")
    train, valid = _search_data()
    kw = dict(epochs=2, batch_size=4, max_length=16, seed=1)
    init = lambda: tiny_bert(tokenizer, seed=5)  # noqa: E731
    grid = hyperparameter_search(init, tokenizer, train, valid, {"lr": [3e-3]}, backend="grid", **kw)
    opt = hyperparameter_search(init, tokenizer, train, valid, {"lr": [3e-3]}, backend="optuna", n_trials=1, **kw)
    assert grid["accuracy"].iloc[0] == pytest.approx(opt["accuracy"].iloc[0])


@pytest.mark.parametrize("kw, error, message", [
    (dict(backend="bayes"), ValueError, "backend must be"),
    (dict(space={"dropout": [0.1]}), ValueError, "unknown hyper-parameter"),
    (dict(space={"lr": (1e-5, 1e-3)}, backend="grid"), ValueError, "grid backend needs a list"),
    (dict(space={"lr": []}), ValueError, "non-empty list"),
    (dict(space=[1e-3]), TypeError, "space must be"),
    (dict(n_trials=0, backend="grid"), ValueError, "n_trials"),
    (dict(backend="optuna"), ValueError, "n_trials must be given"),
    (dict(metric="loss"), ValueError, "metric must be")])
def test_hyperparameter_search_rejects_bad_arguments(tokenizer, kw, error, message):
    train, valid = _search_data()
    args = dict(space={"lr": [1e-3]}) | kw
    with pytest.raises(error, match=message):
        hyperparameter_search(lambda: tiny_bert(tokenizer), tokenizer, train, valid, **args)


def test_distill_gives_the_teacher_back_trainable(tokenizer):
    teacher = tiny_bert(tokenizer, seed=6, layers=2)
    before = count_parameters(teacher)
    train = texts_and_labels(make_reviews("kitchen", 16, seed=2))
    distill(teacher, shrink_encoder(teacher, num_layers=1), tokenizer, train, epochs=1, max_length=16, disable_tqdm=True)
    assert count_parameters(teacher) == before and before[0] == before[1]


# --- comparing models and the case study's data --------------------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(5, 80), seeds=st.integers(1, 3))
def test_accuracy_table_scores_paired_gains_and_reads_verdicts_off_the_interval(seed, n, seeds):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    preds = {"base": rng.integers(0, 2, (seeds, n)), "other": np.where(rng.random((seeds, n)) < 0.7, y, 1 - y)}
    t = accuracy_table(preds, y, n_boot=300, seed=seed)
    for k, p in preds.items():
        acc = (p == y).mean(axis=1)
        assert t.loc[k, "accuracy"] == pytest.approx(acc.mean())
        assert t.loc[k, "sd_over_seeds"] == pytest.approx(acc.std(ddof=1) if seeds > 1 else 0.0)
        assert t.loc[k, "ci_low"] - 1e-9 <= t.loc[k, "accuracy"] <= t.loc[k, "ci_high"] + 1e-9
    row = t.loc["other"]
    assert row["gain"] == pytest.approx(row["accuracy"] - t.loc["base", "accuracy"])
    assert row["gain_ci_low"] - 1e-9 <= row["gain"] <= row["gain_ci_high"] + 1e-9
    assert row["verdict"] == ("better than base" if row["gain_ci_low"] > 0 else "worse than base"
                              if row["gain_ci_high"] < 0 else "no detectable difference from base")
    assert t.loc["base", "verdict"] == "reference" and t.loc["base", "gain"] == 0


def test_accuracy_table_finds_a_clear_gain_and_no_gain_between_equal_models():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500)
    weak, strong = np.where(rng.random(500) < 0.6, y, 1 - y), np.where(rng.random(500) < 0.9, y, 1 - y)
    t = accuracy_table({"weak": weak, "strong": strong, "copy": weak.copy()}, y)
    assert t.loc["strong", "verdict"] == "better than weak"
    assert t.loc["copy", "verdict"] == "no detectable difference from weak"
    assert t.loc["copy", "gain_ci_low"] == t.loc["copy", "gain_ci_high"] == 0
    with pytest.raises(ValueError, match="base must be"):
        accuracy_table({"weak": weak}, y, base="strong")
    with pytest.raises(ValueError, match="predictions"):
        accuracy_table({"weak": weak[:10]}, y)


def test_case_data_uses_the_real_splits_with_fixed_test_sets():
    from domain_tutor.data import corpus_split
    from domain_tutor.finetune import _case_data
    s = dict(CASE_STUDY_SETTINGS["fast"], n_source=20, n_target=12, n_unlabeled=30, n_test=40)
    a, b = _case_data("movies", "products", s, 0), _case_data("movies", "products", s, 1)
    assert a["target_test"] == b["target_test"] and a["source_test"] == b["source_test"]  # the seed moves training only
    assert a["target_train"] != b["target_train"]
    assert len(a["target_unlabeled"]) == 30 and len(a["target_train"][0]) == 12
    held_out = set(corpus_split("products", "test")["text"])
    assert not held_out & set(a["target_unlabeled"]) and not held_out & set(a["target_train"][0])
    assert set(a["target_unlabeled"]) <= set(corpus_split("products", "train", neutral=True)["text"])


def test_case_study_settings_fit_the_real_splits():
    from domain_tutor.data import corpus_split
    n_train = {name: len(corpus_split(name, "train")) for name in ("movies", "products")}
    for size in ("fast", "full"):
        s = CASE_STUDY_SETTINGS[size]
        assert s["n_source"] <= n_train["movies"] and s["n_target"] <= n_train["products"], size
    assert CASE_STUDY_SETTINGS["full"]["n_seeds"] >= 3 and CASE_STUDY_SETTINGS["fast"]["n_seeds"] >= 1
    with pytest.raises(TypeError, match="unknown case-study setting"):
        case_study(n_sources=10)
    with pytest.raises(ValueError, match="seeds"):
        case_study(seeds=[])
