"""Is generating the built-in corpus on the fly cheaper than caching it on disk?

The course never stores its corpus: `make_reviews` regenerates it from a seed. This script times generation against
reading the same reviews back with `datasets` from a JSON-lines file (the reference way to load a corpus), in one
process, and prints the ratio. Generating cannot beat reading Arrow-backed JSON, but it should be cheap enough never to
be worth caching: target ratio >= 0.2 (generation within 5x of loading from disk), i.e. a 20k-review split in well
under a second. Measured on the 2-core CI machine: 0.23 (58k reviews/s as a Dataset, 69k/s as dicts).
"""
import json
import tempfile
import time
from pathlib import Path

from datasets import disable_progress_bars, load_dataset

from domain_tutor.data import load_domain_dataset, make_reviews


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main(n: int = 20_000) -> None:
    disable_progress_bars()
    reviews = make_reviews("electronics", n, seed=0)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "electronics.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in reviews))
        gen = timed(lambda: make_reviews("electronics", n, seed=0))
        gen_ds = timed(lambda: load_domain_dataset("electronics", "train", n=n))
        read = timed(lambda: load_dataset("json", data_files=str(path), split="train",
                                          cache_dir=str(Path(d) / f"cache{time.perf_counter_ns()}")))
    print(f"{'method':<44}{'seconds':>10}{'reviews/s':>12}")
    for name, s in [("make_reviews (list of dicts)", gen), ("load_domain_dataset (datasets.Dataset)", gen_ds),
                    ("datasets.load_dataset('json') from disk", read)]:
        print(f"{name:<44}{s:>10.3f}{n / s:>12,.0f}")
    ratio = read / gen_ds
    print(f"ratio load-from-disk / generate-as-Dataset = {ratio:.2f}  (target >= 0.2: {'met' if ratio >= 0.2 else 'NOT met'})")


if __name__ == "__main__":
    main()
