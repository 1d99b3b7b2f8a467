"""domain_tutor.metrics attributions against Captum on a tiny random BERT (float64, no download): integrated gradients,
gradient × input, completeness, attention maps, and the errors that name the bad argument."""
import subprocess
import sys

import numpy as np
import pytest
import torch

import domain_tutor.metrics as M

WORDS = "the a book was great but awful plot battery dies fast slow good bad it is not lid leaks sharp".split()
TEXTS_UNK = "the blade is sharp"                                 # "blade" is not in the vocabulary: [UNK]
TEXTS = ["the book was great but the plot is slow", "battery dies fast", "not a good lid , it leaks"]


@pytest.fixture(scope="module")
def tiny():
    "A 2-layer BERT classifier with random weights (float64, eval mode) and a word-level WordPiece tokenizer."
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ",", "."] + WORDS
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    config = BertConfig(vocab_size=len(vocab), hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=48, max_position_embeddings=32, num_labels=2, initializer_range=0.4,
                        hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).double().eval()
    with torch.no_grad():                            # BERT initialises the [PAD] row to 0: make "pad" differ from "zero"
        model.get_input_embeddings().weight[tokenizer.pad_token_id].normal_(0, 0.4)
    return model, tokenizer


def _forward(model, tokenizer, text, target, output="prob"):
    "Captum's view of the model: (B, L, D) input embeddings -> (B,) output of class `target`."
    enc = tokenizer(text, return_tensors="pt", return_special_tokens_mask=True)

    def f(embeds):
        kw = {k: enc[k].expand(embeds.shape[0], -1) for k in ("attention_mask", "token_type_ids")}
        z = model(inputs_embeds=embeds, **kw).logits
        return (torch.softmax(z, -1) if output == "prob" else z)[:, target]
    x = model.get_input_embeddings()(enc["input_ids"]).detach()
    return f, x, enc


def _pad_baseline(model, tokenizer, enc):
    ids = enc["input_ids"].clone()
    ids[0, 1:-1] = tokenizer.pad_token_id                    # [CLS] … [SEP] kept, every word ([UNK] too) replaced by [PAD]
    return model.get_input_embeddings()(ids).detach()


def test_tokenizer_is_word_level(tiny):
    _, tokenizer = tiny
    assert tokenizer.convert_ids_to_tokens(tokenizer("battery dies fast")["input_ids"]) == \
        ["[CLS]", "battery", "dies", "fast", "[SEP]"]


@pytest.mark.parametrize("text", TEXTS + [TEXTS_UNK])
@pytest.mark.parametrize("target", [0, 1])
@pytest.mark.parametrize("output", ["prob", "logit"])
@pytest.mark.parametrize("steps", [2, 7, 50])
def test_integrated_gradients_match_captum(tiny, text, target, output, steps):
    captum_attr = pytest.importorskip("captum.attr")
    model, tokenizer = tiny
    ours = M.attributions(model, tokenizer, text, target=target, steps=steps, output=output)
    f, x, enc = _forward(model, tokenizer, text, target, output)
    ref = captum_attr.IntegratedGradients(f).attribute(x, baselines=_pad_baseline(model, tokenizer, enc),
                                                       n_steps=steps, method="riemann_trapezoid")
    # Captum's trapezoid weights are 1/steps with halved ends (they sum to (steps − 1)/steps); ours are 1/(steps − 1).
    # Captum also rounds the points α_k to float32 (torch.linspace(0, 1, n).tolist()), hence rtol 1e-5, not 1e-12.
    expected = ref.sum(-1)[0].detach().numpy() * steps / (steps - 1)
    np.testing.assert_allclose(ours.scores, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert ours.tokens == tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert ours.target == target and ours.method == "ig"


@pytest.mark.parametrize("text", TEXTS)
def test_integrated_gradients_converge_to_captum_gauss_legendre(tiny, text):
    "Different quadratures of the same integral agree when both use many points."
    captum_attr = pytest.importorskip("captum.attr")
    model, tokenizer = tiny
    ours = M.attributions(model, tokenizer, text, target=1, steps=600, baseline="zero", batch_size=128)
    f, x, enc = _forward(model, tokenizer, text, 1)
    special = enc["special_tokens_mask"].bool()[:, :, None]             # [CLS] and [SEP] kept
    zero = torch.where(special, x, torch.zeros_like(x))
    ref, delta = captum_attr.IntegratedGradients(f).attribute(x, baselines=zero, n_steps=100, method="gausslegendre",
                                                              return_convergence_delta=True)
    expected = ref.sum(-1)[0].detach().numpy()
    np.testing.assert_allclose(ours.scores, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert abs(ours.delta) < 1e-5 and abs(float(delta)) < 1e-5


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("output", ["prob", "logit"])
def test_gradient_x_input_matches_captum(tiny, text, output):
    captum_attr = pytest.importorskip("captum.attr")
    model, tokenizer = tiny
    ours = M.attributions(model, tokenizer, text, method="grad_x_input", target=0, output=output)
    f, x, _ = _forward(model, tokenizer, text, 0, output)
    ref = captum_attr.InputXGradient(f).attribute(x.clone().requires_grad_(True))
    np.testing.assert_allclose(ours.scores, ref.sum(-1)[0].detach().numpy(), rtol=1e-10, atol=1e-14)
    assert ours.delta is None


@pytest.mark.parametrize("text", TEXTS)
def test_completeness(tiny, text):
    model, tokenizer = tiny
    r = M.attributions(model, tokenizer, text, steps=300, batch_size=64)
    f, x, enc = _forward(model, tokenizer, text, r.target)
    with torch.no_grad():
        f_x, f_base = float(f(x)), float(f(_pad_baseline(model, tokenizer, enc)))
    assert r.f_input == pytest.approx(f_x, abs=1e-12) and r.f_baseline == pytest.approx(f_base, abs=1e-12)
    assert r.delta == pytest.approx(r.scores.sum() - (f_x - f_base), abs=1e-12)
    assert abs(r.delta) < 1e-4 * max(abs(f_x - f_base), 1e-3)
    assert abs(M.attributions(model, tokenizer, text, steps=3).delta) > abs(r.delta)     # fewer steps, larger gap


def test_default_target_probabilities_and_special_tokens(tiny):
    model, tokenizer = tiny
    text = TEXTS[0]
    with torch.no_grad():
        p = torch.softmax(model(**tokenizer(text, return_tensors="pt")).logits, -1)[0].numpy()
    r = M.attributions(model, tokenizer, text, steps=8)
    assert r.target == int(p.argmax()) and r.prob == pytest.approx(float(p.max()), abs=1e-9)
    assert r.scores[0] == 0.0 and r.scores[-1] == 0.0                     # [CLS] and [SEP] kept in the baseline
    other = M.attributions(model, tokenizer, text, steps=8, target=1 - r.target)
    np.testing.assert_allclose(other.scores, -r.scores, atol=1e-12)      # two classes: P(0) = 1 − P(1)
    assert other.prob == pytest.approx(1 - r.prob, abs=1e-9)


def test_batching_baselines_and_training_mode(tiny):
    model, tokenizer = tiny
    text = TEXTS[2]
    a = M.attributions(model, tokenizer, text, steps=23, batch_size=23)
    for bs in (1, 5, 64):
        np.testing.assert_allclose(M.attributions(model, tokenizer, text, steps=23, batch_size=bs).scores, a.scores,
                                   atol=1e-12)
    _, x, enc = _forward(model, tokenizer, text, 0)
    pad = _pad_baseline(model, tokenizer, enc)[0]
    np.testing.assert_allclose(M.attributions(model, tokenizer, text, steps=23, baseline=pad).scores, a.scores, atol=1e-12)
    np.testing.assert_allclose(M.attributions(model, tokenizer, text, baseline=x[0].numpy()).scores, 0.0, atol=1e-15)
    assert not np.allclose(M.attributions(model, tokenizer, text, steps=23, baseline="zero").scores, a.scores)
    model.train()
    try:
        r = M.attributions(model, tokenizer, text, steps=23)            # dropout is off inside the call
        np.testing.assert_allclose(r.scores, a.scores, atol=1e-12)
        assert model.training                                            # and the mode is restored
    finally:
        model.eval()


def test_top_tokens(tiny):
    r = M.Attribution(["[CLS]", "good", "bad", "plot", "[SEP]"], np.array([0.0, 0.5, -0.7, 0.1, 0.0]), 1, 0.6, "ig")
    assert r.top(2) == [("good", 0.5), ("plot", 0.1)]
    assert r.top(3, sign=-1) == [("bad", -0.7)]


def test_attention_map_matches_eager_attentions(tiny):
    model, tokenizer = tiny
    text = TEXTS[0]
    impl = model.config._attn_implementation
    att = M.attention_map(model, tokenizer, text, layer=0)
    assert model.config._attn_implementation == impl                     # switched back after the call
    model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = model(**tokenizer(text, return_tensors="pt"), output_attentions=True).attentions
    finally:
        model.set_attn_implementation(impl)
    np.testing.assert_allclose(att.weights, ref[0][0].mean(0).numpy(), atol=1e-6)
    np.testing.assert_allclose(att.weights.sum(1), 1.0, atol=1e-6)
    last = M.attention_map(model, tokenizer, text)
    assert last.layer == 1 and att.tokens == last.tokens and att.tokens[0] == "[CLS]"
    np.testing.assert_allclose(last.weights, ref[-1][0].mean(0).numpy(), atol=1e-6)


def test_plots(tiny):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    model, tokenizer = tiny
    ax = M.plot_attributions(M.attributions(model, tokenizer, TEXTS[0], steps=4))
    assert len(ax.texts) == len(tokenizer(TEXTS[0])["input_ids"])
    ax2 = M.plot_attention(M.attention_map(model, tokenizer, TEXTS[1]))
    assert ax2.get_xlabel() and ax2.get_ylabel() and ax2.get_title()
    plt.close("all")


@pytest.mark.parametrize("kwargs, exc, word", [
    ({"method": "shap"}, ValueError, "method"),
    ({"steps": 1}, ValueError, "steps"),
    ({"steps": 2.5}, ValueError, "steps"),
    ({"batch_size": 0}, ValueError, "batch_size"),
    ({"target": 2}, ValueError, "target"),
    ({"target": -1}, ValueError, "target"),
    ({"target": True}, ValueError, "target"),
    ({"baseline": "mask"}, ValueError, "baseline"),
    ({"baseline": np.zeros((3, 24))}, ValueError, "baseline"),
    ({"output": "softmax"}, ValueError, "output"),
    ({"text": ""}, ValueError, "text"),
    ({"text": "   "}, ValueError, "text"),
    ({"text": ["two", "texts"]}, TypeError, "text"),
    ({"model": "bert-base-uncased"}, TypeError, "model"),
    ({"tokenizer": None}, TypeError, "tokenizer"),
])
def test_attribution_errors_name_the_argument(tiny, kwargs, exc, word):
    model, tokenizer = tiny
    args = {"model": model, "tokenizer": tokenizer, "text": TEXTS[1]} | kwargs
    with pytest.raises(exc, match=word):
        M.attributions(**args)


def test_other_errors_name_the_argument(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="layer"):
        M.attention_map(model, tokenizer, TEXTS[0], layer=2)
    with pytest.raises(TypeError, match="layer"):
        M.attention_map(model, tokenizer, TEXTS[0], layer="last")
    with pytest.raises(ValueError, match="text"):
        M.attention_map(model, tokenizer, "")
    with pytest.raises(TypeError, match="result"):
        M.plot_attributions({"tokens": [], "scores": []})
    with pytest.raises(TypeError, match="att"):
        M.plot_attention(np.eye(3))


def test_exercise_references():
    rng = np.random.default_rng(0)
    g, e = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    np.testing.assert_allclose(M.gradient_x_input(g, e), np.einsum("ld,ld->l", g, e))
    x, b = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    f = lambda z: np.tanh(z).sum()                                      # F(z) = Σ tanh(z), gradient 1 − tanh²
    alphas = np.linspace(0, 1, 2001)
    path = b + alphas[:, None, None] * (x - b)
    scores = M.trapezoid_ig(1 - np.tanh(path) ** 2, x, b)
    assert scores.sum() == pytest.approx(f(x) - f(b), abs=1e-6)       # completeness of the exact integral
    np.testing.assert_allclose(scores, (np.tanh(x) - np.tanh(b)).sum(-1), atol=1e-6)   # separable F: exact per token


def test_import_stays_light():
    code = "import sys, domain_tutor.metrics; print(sorted(m for m in ('transformers', 'captum', 'matplotlib') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out
