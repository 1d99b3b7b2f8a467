"""Smoke-mode run time of every notebook against the 2-minute budget, and of the whole course against 15 minutes.

Runs each notebook top to bottom in a fresh kernel (DOMAIN_TUTOR_FAST=1, hub offline), as tests/test_notebooks.py
does, and prints one row per notebook with its time and the verdict. The tests never fail on time (a slow or busy
machine is not a bug); this script is where the budget is checked.

    python benchmarks/notebook_times.py [NOTEBOOK ...]
"""
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

NBS = Path(__file__).resolve().parents[1] / "nbs"
BUDGET_S, COURSE_BUDGET_S = 120, 15 * 60


def run(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NBS)}}).execute()
    return time.perf_counter() - start


def main(names: list[str]) -> int:
    os.environ.update(DOMAIN_TUTOR_FAST="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
                      MPLBACKEND="Agg")
    paths = [NBS / n for n in names] if names else sorted(NBS.glob("*.ipynb"))
    total, over = 0.0, []
    print(f"{'notebook':<24} {'seconds':>8}  verdict (budget {BUDGET_S} s)")
    for path in paths:
        t = run(path)
        total += t
        verdict = "ok" if t < BUDGET_S else "OVER BUDGET"
        if t >= BUDGET_S:
            over.append(path.name)
        print(f"{path.name:<24} {t:8.1f}  {verdict}", flush=True)
    print(f"{'course':<24} {total:8.1f}  {'ok' if total < COURSE_BUDGET_S else 'OVER BUDGET'} "
          f"(budget {COURSE_BUDGET_S} s); over budget: {', '.join(over) or 'none'}")
    return 1 if over or total >= COURSE_BUDGET_S else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
