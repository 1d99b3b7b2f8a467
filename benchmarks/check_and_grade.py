"""How fast is grading? Two numbers the learning-platform issue sets targets for.

1. The median time of `check()` over every exercise of the course, graded against its own reference
   (target: under 1 s). This is the wait a learner sees after running a check cell.
2. The time `domain-tutor grade` takes on a completed chapter notebook (the source notebook, every exercise solved)
   against plainly executing the same notebook with nbclient (target: under 2x). Grading executes the notebook too,
   then extracts the learner's functions and runs them in a clean worker process.

Run: python benchmarks/check_and_grade.py [chapter ...]   (default: every chapter notebook with exercises)
"""
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("DOMAIN_TUTOR_FAST", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import nbformat
from nbclient import NotebookClient

from domain_tutor.config import CHAPTERS
from domain_tutor.exercises import check, list_exercises
from domain_tutor.grade import BEGIN, grade_notebook

NBS = Path(__file__).resolve().parents[1] / "nbs"


def time_checks() -> list[tuple[str, float]]:
    times = []
    for ex in list_exercises():
        start = time.perf_counter()
        result = check(ex.id, ex.reference, record=False, verbose=False)
        times.append((ex.id, time.perf_counter() - start))
        assert result.passed, ex.id
    return times


def time_execution(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - start


def main(chapters: list[str]) -> None:
    times = time_checks()
    if times:
        median = statistics.median(t for _, t in times)
        slowest = max(times, key=lambda x: x[1])
        print(f"check(): {len(times)} exercises, median {median * 1000:.0f} ms, slowest {slowest[0]} "
              f"{slowest[1] * 1000:.0f} ms  (target median < 1 s: {'met' if median < 1 else 'NOT met'})")
    else:
        print("check(): no exercises registered yet")
    for key in chapters:
        path = NBS / f"{CHAPTERS[key][0]}.ipynb"
        if not path.exists() or BEGIN not in path.read_text(encoding="utf-8"):
            continue
        plain = time_execution(path)
        start = time.perf_counter()
        report = grade_notebook(path, timeout=600)
        graded = time.perf_counter() - start
        ratio = graded / plain
        print(f"{path.name}: plain execution {plain:.1f} s, grading {graded:.1f} s "
              f"({report.score:g}/{report.max_score:g} points), ratio {ratio:.2f}  "
              f"(target < 2: {'met' if ratio < 2 else 'NOT met'})")


if __name__ == "__main__":
    main(sys.argv[1:] or list(CHAPTERS))
