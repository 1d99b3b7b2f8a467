"""Chapter 02 (domain_tutor.ngram): exact probabilities (sums to 1, nltk.lm agreement, Kneser–Ney by the book),
perplexity identities, adaptation helpers, the neural LM and the softmax helpers against PyTorch, bad inputs, and every
exercise with its reference and a typical mistake."""
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from nltk.lm import MLE, Laplace, Lidstone

from domain_tutor.data import ENGLISH_CORPORA, corpus_split, load_corpus
from domain_tutor.exercises import check, list_exercises
from domain_tutor.ngram import (BOS, EOS, UNK, NeuralLM, NGramLM, count_ngrams, fit_lambda, interpolate,
                                mixture_perplexity, next_token_distribution, sequence_log_prob, softmax_bigram_gd,
                                split_sentences,
                                train_neural_lm)

WORDS = ["a", "b", "c", "d", "e"]
rng = np.random.default_rng(0)
CORPUS = [list(rng.choice(WORDS, size=int(rng.integers(0, 8)))) for _ in range(40)]
TRAIN, HELD = CORPUS[:30], CORPUS[30:] + [["a", "zebra", "b"]]

sentences = st.lists(st.lists(st.sampled_from(WORDS), max_size=7), min_size=1, max_size=12)
contexts = st.lists(st.sampled_from(WORDS + ["zebra", BOS]), max_size=4).map(tuple)


# ---------------------------------------------------------------- exactness

@settings(max_examples=40, deadline=None)
@given(sentences, contexts, st.sampled_from(["laplace", "add_k", "kneser_ney"]), st.integers(1, 4),
       st.floats(0.05, 1.0))
def test_every_distribution_sums_to_one(sents, context, smoothing, order, param):
    lm = NGramLM(order, smoothing, k=param, discount=param).fit(sents)
    assert abs(sum(lm.prob(w, context) for w in lm.vocab) - 1) < 1e-9
    assert abs(sum(lm.distribution(context).values()) - 1) < 1e-9


def _nltk_ngrams(sent, order):
    padded = [BOS] * (order - 1) + sent + [EOS]
    return [tuple(padded[t - m + 1:t + 1]) for t in range(order - 1, len(padded)) for m in range(1, order + 1)]


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("smoothing", ["mle", "laplace", "add_k"])
@pytest.mark.parametrize("min_count", [1, 2])
def test_agrees_with_nltk(order, smoothing, min_count):
    ref = {"mle": MLE(order), "laplace": Laplace(order), "add_k": Lidstone(0.1, order)}[smoothing]
    from nltk.lm.vocabulary import Vocabulary
    ref.vocab = Vocabulary(unk_cutoff=min_count)
    ref.fit([_nltk_ngrams(s, order) for s in TRAIN],
            vocabulary_text=[w for s in TRAIN for w in [BOS] * (order - 1) + s + [EOS]])
    extra = {"<never-seen>"} if BOS in ref.vocab else set()      # nltk counts <s> as a vocabulary word
    ours = NGramLM(order, smoothing, k=0.1, vocab=(set(ref.vocab) - {BOS, "<UNK>"}) | extra).fit(TRAIN)
    assert len(ours.vocab) == len(ref.vocab)
    data = TRAIN if smoothing == "mle" else HELD
    grams = [g for s in data for g in _nltk_ngrams(s, order) if len(g) == order]
    for g in grams:
        assert ours.prob(g[-1], g[:-1]) == pytest.approx(ref.score(g[-1], g[:-1]), abs=1e-9)
    assert ours.perplexity(data) == pytest.approx(ref.perplexity(grams), rel=1e-9)


def test_min_count_maps_rare_words_to_unk():
    lm = NGramLM(2, "laplace", min_count=2).fit([["a", "a", "b"], ["a", "c"]])
    assert lm.vocab == {"a", "<unk>", "</s>"}
    assert lm.prob("b", ("a",)) == lm.prob("zebra", ("a",)) == lm.prob("<unk>", ("a",))
    assert lm.counts(2)[("a", "<unk>")] == 2


def _kn_by_the_book(sents, order, discount, vocab):
    raw = {m: Counter(tuple(([BOS] * (order - 1) + s + [EOS])[t - m + 1:t + 1])
                      for s in sents for t in range(order - 1, len(s) + order)) for m in range(1, order + 1)}
    used = {m: raw[m] if m == order else Counter(g[1:] for g in raw[m + 1]) for m in range(1, order + 1)}

    def prob(word, context):
        p = 1 / len(vocab)
        for m in range(1, order + 1):
            h = tuple(context[len(context) - (m - 1):]) if m > 1 else ()
            total = sum(c for g, c in used[m].items() if g[:-1] == h)
            if total:
                n1 = sum(1 for g in used[m] if g[:-1] == h)
                p = (max(used[m].get(h + (word,), 0) - discount, 0) + discount * n1 * p) / total
        return p
    return prob


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_kneser_ney_matches_the_formulas(order):
    lm = NGramLM(order, "kneser_ney", discount=0.7).fit(TRAIN)
    ref = _kn_by_the_book(TRAIN, order, 0.7, lm.vocab)
    for context in [(), ("a",), (BOS, "a"), ("a", "b", "c"), ("zebra", "e"), (BOS, BOS, BOS)]:
        ctx = tuple(([BOS] * (order - 1) + list(context))[len(context):]) if order > 1 else ()
        for w in lm.vocab:
            assert lm.prob(w, context) == pytest.approx(ref(w, ctx), abs=1e-12)


def test_continuation_counts_favour_diverse_words():
    sents = [["san", "francisco"]] * 5 + [["my", "glasses"], ["new", "glasses"], ["the", "glasses"]]
    lm = NGramLM(2, "kneser_ney").fit(sents)
    # after an unseen context the lower order decides: glasses (3 left contexts) beats francisco (1), though rarer
    assert lm.prob("glasses", ("zebra",)) > 2 * lm.prob("francisco", ("zebra",))
    assert lm.counts(1)[("francisco",)] > lm.counts(1)[("glasses",)]


def test_perplexity_is_exp_mean_negative_logprob_over_predicted_tokens():
    for smoothing in ("laplace", "kneser_ney"):
        lm = NGramLM(3, smoothing).fit(TRAIN)
        lps = [lm.logprob(w, tuple(s[:i])) for s in HELD for i, w in enumerate(s + [EOS])]
        assert lm.perplexity(HELD) == pytest.approx(math.exp(-np.mean(lps)), rel=1e-12)
        assert len(lm.token_probs(HELD)) == sum(len(s) + 1 for s in HELD)


def test_mle_zero_and_undefined():
    lm = NGramLM(2, "mle").fit([["a", "b"], ["a", "c"]])
    assert lm.prob("b", ("a",)) == 0.5 and lm.prob("a", ("a",)) == 0.0
    assert lm.perplexity([["a", "a"]]) == math.inf
    with pytest.raises(ValueError, match="MLE is undefined"):
        lm.prob("a", ("zebra",))
    with pytest.raises(ValueError, match="MLE is undefined"):
        lm.perplexity([["zebra", "a"]])


def test_contexts_are_cut_and_padded():
    lm = NGramLM(3).fit(TRAIN)
    assert lm.prob("a", ("e", "e", "b", "c")) == lm.prob("a", ("b", "c"))
    assert lm.prob("a", ("b",)) == lm.prob("a", (BOS, "b"))
    assert lm.prob("a") == lm.prob("a", (BOS, BOS))
    lm4 = NGramLM(4).fit(TRAIN)
    assert lm4.prob("a", ("b", "c")) == lm4.prob("a", (BOS, "b", "c")) != lm4.prob("a", (BOS, BOS, "c"))


def test_fit_accepts_strings_and_counts_match_the_exercise():
    lm = NGramLM(3).fit([" ".join(s) for s in TRAIN])
    assert dict(lm.counts(3)) == count_ngrams(TRAIN, 3)
    assert dict(lm.counts(1)) == count_ngrams(TRAIN, 1)
    assert EOS in lm.vocab and "<unk>" in lm.vocab and BOS not in lm.vocab


def test_update_equals_fitting_on_everything():
    for smoothing in ("add_k", "kneser_ney"):
        a = NGramLM(3, smoothing, min_count=2).fit(TRAIN[:12]).update(TRAIN[12:])
        b = NGramLM(3, smoothing, min_count=2).fit(TRAIN)
        assert a.vocab == b.vocab and a.counts(3) == b.counts(3)
        assert a.perplexity(HELD) == pytest.approx(b.perplexity(HELD), rel=1e-12)


def test_generate_is_reproducible_and_uses_the_vocabulary():
    lm = NGramLM(3).fit(TRAIN)
    words = lm.generate(50, seed=0)
    assert len(words) == 50 and set(words) <= lm.vocab
    assert words == lm.generate(50, seed=0)
    mle = NGramLM(2, "mle").fit([["a", "b"]])
    assert mle.generate(3, seed=1) == ["a", "b", EOS]


# ---------------------------------------------------------------- interpolation

def test_interpolation_sums_to_one_and_fit_lambda_is_optimal():
    vocab = set(WORDS)
    a = NGramLM(3, vocab=vocab).fit(TRAIN[:5])
    b = NGramLM(2, "add_k", k=0.5, vocab=vocab).fit(TRAIN[5:])
    mix = interpolate(a, b, 0.3)
    for context in [(), ("a", "b"), ("zebra",)]:
        assert abs(sum(mix.prob(w, context) for w in mix.vocab) - 1) < 1e-9
        assert mix.prob("a", context) == pytest.approx(0.3 * a.prob("a", context) + 0.7 * b.prob("a", context))
    lam = fit_lambda(a, b, HELD)
    grid = np.linspace(0, 1, 1001)
    best = min(interpolate(a, b, float(g)).perplexity(HELD) for g in grid)
    assert interpolate(a, b, lam).perplexity(HELD) <= best + 1e-9
    assert fit_lambda(a, a, HELD) in (0.0, 1.0)
    pa, pb = a.token_probs(HELD), b.token_probs(HELD)
    assert mixture_perplexity(list(pa), list(pb), lam) == pytest.approx(interpolate(a, b, lam).perplexity(HELD))


def _first_tokens(sentences, n_tokens):
    ends = np.cumsum([len(x) + 1 for x in sentences])
    return sentences[:int(np.searchsorted(ends, n_tokens)) + 1]


@pytest.fixture(scope="module")
def real():
    "Real text (chapter 91's corpora): per corpus, ~20k training tokens and ~4k dev and test tokens (70/10/20 split)."
    out = {}
    for name in ENGLISH_CORPORA:
        out[name] = {part: _first_tokens(split_sentences(corpus_split(name, split)["text"]),
                                         20_000 if part == "train" else 4_000)
                     for part, split in (("train", "train"), ("dev", "validation"), ("test", "test"))}
    return out


def test_real_text_perplexity_is_in_the_hundreds_not_single_digits(real):
    for name in ("movies", "drugs"):
        ppl = [NGramLM(n, "kneser_ney", min_count=2).fit(real[name]["train"]).perplexity(real[name]["test"])
               for n in (1, 2, 3)]
        assert 50 <= ppl[2] <= 5000, (name, ppl)
        assert ppl[1] < ppl[0] and ppl[2] < 1.1 * ppl[1]


def test_kneser_ney_beats_the_best_add_k_on_real_text(real):
    for name in ("movies", "tweets"):
        train, dev, test = real[name]["train"], real[name]["dev"], real[name]["test"]
        add_k = NGramLM(3, "add_k", min_count=2).fit(train)
        scores = []
        for k in np.logspace(-4, 0, 9):
            add_k.k = float(k)
            scores.append((add_k.perplexity(dev), add_k.perplexity(test)))
        kn = NGramLM(3, "kneser_ney", min_count=2).fit(train).perplexity(test)
        assert kn <= 1.05 * min(t for _, t in scores)                  # even against k chosen on the test set
        assert kn <= 1.05 * min(scores)[1]                              # and against k chosen on dev text


def test_min_count_lowers_perplexity_without_a_better_model(real):
    ppl = [NGramLM(3, min_count=m).fit(real["movies"]["train"]).perplexity(real["movies"]["test"]) for m in (1, 2, 3, 5)]
    assert all(a > b for a, b in zip(ppl, ppl[1:]))


def test_in_domain_perplexity_is_lowest_for_most_corpora(real):
    names = list(ENGLISH_CORPORA)
    trains = {d: _first_tokens(real[d]["train"], 12_000) for d in names}
    vocab = {w for w, c in Counter(w for t in trains.values() for s in t for w in s).items() if c >= 2}
    lms = {d: NGramLM(3, vocab=vocab).fit(t) for d, t in trains.items()}
    wins = [d for d in names if lms[d].perplexity(real[d]["test"]) == min(lms[t].perplexity(real[d]["test"]) for t in names)]
    assert len(wins) >= 4, wins


def test_interpolation_beats_source_and_target_on_real_text(real):
    target = "products"
    source = [s for d in ENGLISH_CORPORA if d != target for s in _first_tokens(real[d]["train"], 12_000)]
    small = _first_tokens(real[target]["train"], 3_000)
    vocab = {w for w, c in Counter(w for s in source + small for w in s).items() if c >= 2}
    src, tgt = NGramLM(3, vocab=vocab).fit(source), NGramLM(3, vocab=vocab).fit(small)
    pooled = NGramLM(3, vocab=vocab).fit(source).update(small)
    test = real[target]["test"]
    lam = fit_lambda(tgt, src, real[target]["dev"])
    assert 0 < lam < 1
    mixed = interpolate(tgt, src, lam).perplexity(test)
    assert mixed < min(src.perplexity(test), tgt.perplexity(test))
    assert pooled.perplexity(test) < src.perplexity(test)


# ---------------------------------------------------------------- neural LM

@pytest.fixture(scope="module")
def movies_neural():
    "A neural LM and a unigram model trained on the same movies sentences and vocabulary, and held-out movies text."
    texts = load_corpus("movies")["text"]
    train, held = split_sentences(texts[:800]), split_sentences(texts[-200:])
    vocab = {w for w, c in Counter(w for s in train for w in s).items() if c >= 5}
    model, history = train_neural_lm(train, vocab=vocab, order=3, epochs=3, heldout=held, seed=0, device="cpu",
                                     progress=False)
    return model, NGramLM(1, "kneser_ney", vocab=vocab).fit(train), held, history


def test_neural_lm_beats_the_unigram_model_on_heldout_text(movies_neural):
    model, unigram, held, history = movies_neural
    assert model.vocab == unigram.vocab
    assert len(model.token_probs(held)) == len(unigram.token_probs(held))          # the same predicted tokens
    assert model.perplexity(held) < unigram.perplexity(held)
    assert history["heldout_loss"][-1] < history["heldout_loss"][0]
    assert model.perplexity(held) == pytest.approx(math.exp(history["heldout_loss"][-1]), rel=1e-9)


def test_neural_lm_forward_is_the_bengio_formula_and_its_perplexity_is_torch_cross_entropy():
    torch.manual_seed(0)
    model = NeuralLM(set(WORDS), order=4, embed_dim=3, hidden_dim=7)
    contexts, targets = model.encode(HELD)
    E, H, c = model.embedding.weight, model.hidden.weight, model.hidden.bias
    U, b = model.output.weight, model.output.bias
    y = b + torch.tanh(c + E[contexts].reshape(len(contexts), -1) @ H.T) @ U.T
    torch.testing.assert_close(model(contexts), y)
    ce = torch.nn.functional.cross_entropy(model(contexts).double(), targets)
    assert model.perplexity(HELD) == pytest.approx(math.exp(ce.item()), rel=1e-9)
    lps = [model.logprob(w, tuple(s[:i])) for s in HELD for i, w in enumerate(s + [EOS])]
    np.testing.assert_allclose(model.token_logprobs(HELD), lps, rtol=1e-6)      # float32 logits, batched or not


def test_neural_lm_reads_tokens_like_ngram_lm():
    model = NeuralLM({"a", "b"}, order=3)
    contexts, targets = model.encode([["a", "zebra"], [], ["b"]])
    names = model._vocab.tolist() + [BOS]
    assert [names[i] for i in targets] == ["a", UNK, EOS, EOS, "b", EOS]
    assert [names[i] for i in contexts[1]] == [BOS, "a"] and [names[i] for i in contexts[3]] == [BOS, BOS]
    assert model.vocab == NGramLM(3, vocab={"a", "b"}).fit([["a"]]).vocab
    for context in [(), ("a",), ("zebra", "b", "a"), (BOS,)]:
        assert sum(model.distribution(context).values()) == pytest.approx(1.0, abs=1e-9)
    assert model.prob("a", ("b", "b", "a")) == pytest.approx(model.prob("a", ("b", "a")), rel=1e-12)
    assert model.prob("zebra", ("a",)) == pytest.approx(model.prob(UNK, ("a",)), rel=1e-12)


def test_neural_lm_mixes_with_an_ngram_model():
    vocab = set(WORDS)
    neural, _ = train_neural_lm(TRAIN, vocab=vocab, order=3, epochs=2, seed=0, device="cpu", progress=False)
    kn = NGramLM(3, vocab=vocab).fit(TRAIN)
    lam = fit_lambda(neural, kn, HELD)
    mix = interpolate(neural, kn, lam)
    assert abs(sum(mix.prob(w, ("a",)) for w in mix.vocab) - 1) < 1e-9
    assert mix.perplexity(HELD) <= min(neural.perplexity(HELD), kn.perplexity(HELD)) + 1e-9


def test_train_neural_lm_is_seeded_and_can_continue_training():
    runs = [train_neural_lm(TRAIN, order=3, epochs=2, seed=3, device="cpu", progress=False) for _ in range(2)]
    assert runs[0][1] == runs[1][1]
    for p, q in zip(runs[0][0].parameters(), runs[1][0].parameters()):
        assert torch.equal(p, q)
    other, _ = train_neural_lm(TRAIN, order=3, epochs=2, seed=4, device="cpu", progress=False)
    assert not torch.equal(other.output.weight, runs[0][0].output.weight)
    threads = torch.get_num_threads()
    model, history = train_neural_lm(HELD, model=runs[0][0], epochs=1, device="cpu", progress=False)
    assert model is runs[0][0] and history["epoch"] == [1] and "heldout_loss" not in history
    assert torch.get_num_threads() == threads                                       # restored after training


# ---------------------------------------------------------------- softmax helpers against torch

@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.integers(1, 12), st.floats(0.05, 20.0), st.floats(0.1, 1000.0), st.integers(0, 2**31))
def test_next_token_distribution_matches_torch_softmax(rows, vocab_size, temperature, scale, seed):
    logits = np.random.default_rng(seed).normal(0, scale, (rows, vocab_size))
    expected = torch.softmax(torch.tensor(logits) / temperature, dim=-1).numpy()
    np.testing.assert_allclose(next_token_distribution(logits, temperature), expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(next_token_distribution(logits[0], temperature), expected[0], rtol=1e-9, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10), st.integers(2, 12), st.floats(0.1, 1000.0), st.integers(0, 2**31))
def test_sequence_log_prob_matches_torch_cross_entropy(length, vocab_size, scale, seed):
    rng = np.random.default_rng(seed)
    logits, targets = rng.normal(0, scale, (length, vocab_size)), rng.integers(0, vocab_size, length)
    expected = -torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(targets), reduction="sum").item()
    assert sequence_log_prob(logits, targets) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_sequence_log_prob_of_a_causal_lm_equals_its_loss():
    torch.manual_seed(0)
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)).eval()
    ids = torch.randint(0, 50, (1, 9))
    with torch.no_grad():
        out = model(ids, labels=ids)
    log_p = sequence_log_prob(out.logits[0, :-1].double().numpy(), ids[0, 1:].numpy())
    assert log_p == pytest.approx(-8 * out.loss.item(), rel=1e-5)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("make, match", [
    (lambda: NGramLM(order=0), "order"),
    (lambda: NGramLM(order=True), "order"),
    (lambda: NGramLM(smoothing="good_turing"), "smoothing"),
    (lambda: NGramLM(smoothing="add_k", k=-1), "k must be"),
    (lambda: NGramLM(discount=0), "discount"),
    (lambda: NGramLM(min_count=0), "min_count"),
    (lambda: NGramLM().fit([]), "sentences is empty"),
    (lambda: NGramLM().fit("a b c"), "sentences must be an iterable"),
    (lambda: NGramLM().fit([["a"], 5]), r"sentences\[1\] must be"),
    (lambda: NGramLM().fit([["a", "</s>"]]), "'</s>'"),
    (lambda: NGramLM().perplexity([["a"]]), "not fitted"),
    (lambda: NGramLM().fit([["a"]]).perplexity([]), "sentences is empty"),
    (lambda: NGramLM().fit([["a"]]).prob("a", "a b"), "context"),
    (lambda: NGramLM().fit([["a"]]).prob(BOS), "never predicted"),
    (lambda: NGramLM().fit([["a"]]).counts(4), "n must be"),
    (lambda: interpolate(NGramLM().fit([["a"]]), NGramLM().fit([["a"]]), 1.2), "lam"),
    (lambda: interpolate(NGramLM().fit([["a"]]), NGramLM().fit([["b"]]), 0.5), "share one vocabulary"),
    (lambda: fit_lambda(NGramLM().fit([["a"]]), "not a model", [["a"]]), "lm_b"),
    (lambda: NeuralLM({"a"}, order=1), "order"),
    (lambda: NeuralLM("abc"), "vocab"),
    (lambda: NeuralLM({"a", BOS}), "vocab"),
    (lambda: NeuralLM({"a"}, embed_dim=0), "embed_dim"),
    (lambda: NeuralLM({"a"}, order=3)(torch.zeros((2, 3), dtype=torch.long)), "contexts"),
    (lambda: NeuralLM({"a"}).encode([]), "sentences is empty"),
    (lambda: NeuralLM({"a"}).prob(BOS), "never predicted"),
    (lambda: NeuralLM({"a"}).prob("a", "a b"), "context"),
    (lambda: train_neural_lm([]), "sentences is empty"),
    (lambda: train_neural_lm([["a"]], epochs=0), "epochs"),
    (lambda: train_neural_lm([["a"]], lr=-1.0), "lr"),
    (lambda: train_neural_lm([["a"]], weight_decay=-0.1), "weight_decay"),
    (lambda: train_neural_lm([["a"]], model="not a model"), "model"),
    (lambda: next_token_distribution([1.0, 2.0], temperature=0), "temperature"),
    (lambda: next_token_distribution([], 1.0), "logits"),
    (lambda: next_token_distribution([[[1.0]]]), "logits"),
    (lambda: next_token_distribution([1.0, float("nan")]), "logits"),
    (lambda: sequence_log_prob([1.0, 2.0], [0]), "logits"),
    (lambda: sequence_log_prob([[1.0, 2.0]], [0, 1]), "targets"),
    (lambda: sequence_log_prob([[1.0, 2.0]], [2]), "targets"),
])
def test_bad_input_raises_value_error_naming_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_generate_checks_its_arguments_and_explains_mle_gaps():
    lm = NGramLM(2).fit([["a", "b"]])
    with pytest.raises(TypeError, match="seed must be"):
        lm.generate(3, seed="x")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        lm.generate(3, seed=-1)
    assert lm.generate(5, seed=np.random.default_rng(2)) == lm.generate(5, seed=2)
    with pytest.raises(ValueError, match="smoothed model"):
        NGramLM(2, "mle").fit([["a", "b"]]).generate(3, context=("zebra",))


@pytest.mark.parametrize("make, match", [
    (lambda: NGramLM().fit([["a", 1]]), r"sentences\[0\] must hold str tokens"),
    (lambda: NGramLM(2).fit([["a", None]]), r"sentences\[0\] must hold str tokens"),
    (lambda: NGramLM(2).fit([["a"], ["b", b"c"]]), r"sentences\[1\]\[1\]"),
    (lambda: next_token_distribution("not numbers"), "logits"),
    (lambda: sequence_log_prob([[1.0, 2.0]], [0.5]), "targets"),
])
def test_wrong_types_raise_type_error_naming_the_argument(make, match):
    with pytest.raises(TypeError, match=match):
        make()


# ---------------------------------------------------------------- exercises

def test_there_are_at_least_five_exercises_and_the_references_pass():
    exercises = list_exercises("ngram")
    assert len(exercises) >= 5
    for ex in exercises:
        assert check(ex.id, ex.reference, record=False, verbose=False).passed, ex.id


def _naive_softmax(z):
    with np.errstate(all="ignore"):
        return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def _gd_with(C, lr, steps, total=False, sign=1, probs=True):
    "Gradient descent on free bigram scores with torch autograd (mean or summed loss)."
    C = torch.tensor(np.asarray(C, dtype=float))
    W = torch.zeros_like(C, requires_grad=True)
    for _ in range(steps):
        loss = -(C * torch.log_softmax(W, dim=1)).sum() / (1.0 if total else C.sum())
        (grad,) = torch.autograd.grad(loss, W)
        W = (W - sign * lr * grad).detach().requires_grad_(True)
    return torch.softmax(W, dim=1).detach().numpy() if probs else W.detach().numpy()


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(0, 40), lr=st.sampled_from([0.1, 1.0, 10.0]))
def test_softmax_bigram_gd_matches_autograd(seed, steps, lr):
    C = np.random.default_rng(seed).integers(0, 5, (3, 4)).astype(float)
    C[0, 0] += 1
    np.testing.assert_allclose(softmax_bigram_gd(C, lr, steps), _gd_with(C, lr, steps), rtol=1e-9, atol=1e-12)


def test_softmax_bigram_gd_converges_to_the_count_table():
    C = np.array([[3.0, 1.0, 2.0], [1.0, 1.0, 8.0], [0.0, 0.0, 0.0]])
    P = softmax_bigram_gd(C, lr=float(C.sum() / C.sum(axis=1).max()) * 2, steps=3000)
    np.testing.assert_allclose(P[:2], C[:2] / C[:2].sum(axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(P[2], np.full(3, 1 / 3))                  # no counts: no gradient, stays uniform
    with pytest.raises(ValueError, match="counts must"):
        softmax_bigram_gd(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="lr must"):
        softmax_bigram_gd(C, lr=0)


@pytest.mark.parametrize("exercise_id, wrong, message", [
    ("ngram.markov_context", lambda h, n: tuple(h), "ONE previous word"),
    ("ngram.count_ngrams", lambda s, n: {tuple(x[i:i + n]): 1 for x in s for i in range(len(x) - n + 1)}, ""),
    ("ngram.mle_prob", lambda c, w, h: c.get(tuple(h) + (w,), 0) / sum(c.values()), "joint"),
    ("ngram.add_k_prob", lambda c, v, w, h, k=1.0: (c.get(tuple(h) + (w,), 0) + 1) / (
        sum(x for g, x in c.items() if g[:-1] == tuple(h)) + v), "whatever k is"),
    ("ngram.continuation_counts", lambda c: {g[1]: c[g] for g in c}, ""),
    ("ngram.perplexity_from_logprobs", lambda t, lp: math.exp(-np.mean(lp)), "'<s>'"),
    ("ngram.sample_bigram", lambda c, us: ["the"] * len(us), ""),
    ("ngram.mixture_perplexity",
     lambda a, b, lam: math.exp(-np.mean([lam * math.log(x) + (1 - lam) * math.log(y) for x, y in zip(a, b)])),
     "geometric"),
    ("ngram.next_token_distribution", lambda z, t=1.0: _naive_softmax(np.asarray(z) * t), "divide by it"),
    ("ngram.next_token_distribution", lambda z, t=1.0: _naive_softmax(np.asarray(z) / t), "subtract the row maximum"),
    ("ngram.softmax_bigram_gd", lambda C, lr=1.0, steps=100: _gd_with(C, lr, steps, total=True), "MEAN"),
    ("ngram.softmax_bigram_gd", lambda C, lr=1.0, steps=100: _gd_with(C, lr, steps, sign=-1), "sign"),
    ("ngram.softmax_bigram_gd", lambda C, lr=1.0, steps=100: _gd_with(C, lr, steps, probs=False), "not the scores"),
])
def test_typical_mistakes_fail_with_a_hint(exercise_id, wrong, message):
    result = check(exercise_id, wrong, record=False, verbose=False)
    assert not result.passed
    assert message in result.feedback
