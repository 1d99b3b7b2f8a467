"""Fine-tuning throughput: a naive Trainer (every example padded to max_length) against `finetune` (dynamic padding
and length grouping), same model, data, seed and hyper-parameters, in one run; then peak memory and trainable
parameters of full fine-tuning against LoRA.

    python benchmarks/finetune_throughput.py [--n 512] [--max-length 128] [--epochs 1]

Targets (issue 8): `finetune` at least 1.5x the naive examples/s with equal accuracy; LoRA under 2% of the
parameters trainable. Memory: the bytes held by weights, gradients and AdamW's moments after one step (activations
are about the same for both, since LoRA still back-propagates through every layer), and
`torch.cuda.max_memory_allocated` on a GPU.
"""
import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch


def data(n: int, seed: int):
    from domain_tutor.data import make_reviews, texts_and_labels
    return texts_and_labels(make_reviews("books", n, seed=seed))


def naive_trainer(model, tokenizer, train, max_length: int, epochs: int, batch_size: int, lr: float, seed: int):
    "The textbook recipe: pad everything to max_length up front, default collator, random batches."
    import tempfile
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments, default_data_collator
    from domain_tutor.models import quiet_transformers
    texts, labels = train
    enc = tokenizer(texts, truncation=True, max_length=max_length, padding="max_length")
    ds = Dataset.from_dict({**enc, "labels": list(labels)})
    import inspect
    warmup = ({"warmup_ratio": 0.1} if "warmup_ratio" in inspect.signature(TrainingArguments).parameters
              else {"warmup_steps": 0.1})  # transformers 5 reads a float warmup_steps as a ratio
    with tempfile.TemporaryDirectory() as out, quiet_transformers():
        args = TrainingArguments(out, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                                 learning_rate=lr, weight_decay=0.01, seed=seed, **warmup, data_seed=seed, report_to="none",
                                 save_strategy="no", logging_strategy="no", disable_tqdm=True)
        Trainer(model=model, args=args, train_dataset=ds, data_collator=default_data_collator).train()
    return model


def accuracy_of(model, tokenizer, test, max_length) -> tuple[float, float, float]:
    "Test accuracy and its bootstrap 95% interval."
    from domain_tutor.finetune import evaluate_accuracy
    r = evaluate_accuracy(model, tokenizer, test, max_length=max_length)
    return r["accuracy"], r["ci_low"], r["ci_high"]


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def training_state_mib(model, batch) -> float:
    "MiB held by the weights, their gradients and AdamW's two moments after one optimizer step on `batch`."
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=1e-4)
    model.train()
    model(**batch).loss.backward()
    opt.step()
    tensors = {id(p): p for p in model.parameters()}
    tensors.update({id(p.grad): p.grad for p in trainable if p.grad is not None})
    tensors.update({id(t): t for state in opt.state.values() for t in state.values() if torch.is_tensor(t)})
    return sum(t.numel() * t.element_size() for t in tensors.values()) / 2**20


def memory_and_parameters(max_length: int) -> dict:
    "Trainable parameters and training-state memory (and CUDA peak memory on a GPU) of full fine-tuning and LoRA."
    from domain_tutor.finetune import add_lora, count_parameters
    from domain_tutor.models import DEFAULT_ENCODER, get_device, load_encoder
    device = get_device()
    out = {}
    for kind in ("full", "lora"):
        model, tok = load_encoder(DEFAULT_ENCODER)
        if kind == "lora":
            model = add_lora(model)
        model.to(device)
        texts, labels = data(16, 3)
        batch = {k: v.to(device) for k, v in tok(texts, truncation=True, max_length=max_length, padding=True,
                                                 return_tensors="pt").items()}
        batch["labels"] = torch.as_tensor(labels, device=device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        state = training_state_mib(model, batch)
        peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
        out[kind] = (*count_parameters(model), state, peak)
        del model
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=512, help="training examples")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()

    from domain_tutor.finetune import finetune
    from domain_tutor.models import DEFAULT_ENCODER, get_device, load_encoder
    train, test = data(args.n, 1), data(1000, 2)
    lengths = [len(x) for x in load_encoder(DEFAULT_ENCODER)[1](train[0], truncation=True,
                                                                  max_length=args.max_length)["input_ids"]]
    print(f"device {get_device()}, {args.n} examples, max_length {args.max_length}, median length "
          f"{int(np.median(lengths))} tokens, {100 * np.mean(np.array(lengths) == args.max_length):.0f}% truncated")

    results = {}
    for name in ("naive (pad to max_length)", "finetune (dynamic padding + length grouping)"):
        model, tok = load_encoder(DEFAULT_ENCODER)  # the same initial weights for both (seeded head)
        if name.startswith("naive"):
            model, seconds = timed(lambda: naive_trainer(model, tok, train, args.max_length, args.epochs,
                                                         args.batch_size, args.lr, seed=0))
        else:
            (model, _), seconds = timed(lambda: finetune(model, tok, train, epochs=args.epochs, lr=args.lr,
                                                         batch_size=args.batch_size, max_length=args.max_length,
                                                         seed=0, disable_tqdm=True))
        results[name] = (args.n * args.epochs / seconds, accuracy_of(model, tok, test, args.max_length))
        acc, low, high = results[name][1]
        print(f"{name:>48}: {results[name][0]:7.1f} examples/s, test accuracy {acc:.3f} [{low:.3f}, {high:.3f}]")
    (naive, (acc_n, lo_n, hi_n)), (fast, (acc_f, lo_f, hi_f)) = results.values()
    overlap = "overlap" if max(lo_n, lo_f) <= min(hi_n, hi_f) else "do NOT overlap"
    print(f"{'speed-up':>48}: {fast / naive:.2f}x (target >= 1.5x); accuracy difference {acc_f - acc_n:+.3f}, "
          f"95% intervals {overlap}")

    mem = memory_and_parameters(args.max_length)
    for kind, (trainable, total, state, peak) in mem.items():
        gpu = f", CUDA peak {peak:,.0f} MiB" if peak is not None else ""
        print(f"{kind + ' fine-tuning':>48}: {trainable:>10,} of {total:,} parameters trainable "
              f"({100 * trainable / total:.2f}%), weights + gradients + AdamW state {state:,.0f} MiB{gpu}")
    (lt, ltot, lstate, _), (_, _, fstate, _) = mem["lora"], mem["full"]
    print(f"{'LoRA':>48}: {100 * lt / ltot:.2f}% of parameters trainable (target < 2%), "
          f"training state {lstate / fstate:.2f}x of full fine-tuning's")


if __name__ == "__main__":
    main()
