"""Student notebooks and the grader: stripped stubs fail, solutions pass, and tampering cannot raise a grade."""
import filecmp
import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from conftest import NBS, ROOT
from domain_tutor.config import CHAPTERS
from domain_tutor.exercises import check, list_exercises
from domain_tutor.grade import BEGIN, END, grade_notebook, student_notebook, write_student_notebooks

CHAPTER_NOTEBOOKS = [NBS / f"{stem}.ipynb" for stem, _ in CHAPTERS.values() if (NBS / f"{stem}.ipynb").exists()]
WITH_EXERCISES = [p for p in CHAPTER_NOTEBOOKS if BEGIN in p.read_text(encoding="utf-8")]


def _key(path: Path) -> str:
    return next(k for k, (stem, _) in CHAPTERS.items() if stem == path.stem)


def test_shipped_student_notebooks_are_in_sync(tmp_path):
    write_student_notebooks(NBS, tmp_path)
    shipped = ROOT / "domain_tutor" / "notebooks"
    fresh = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    assert fresh == sorted(p.name for p in shipped.glob("*.ipynb")), "run: domain-tutor notebooks --out domain_tutor/notebooks"
    stale = [n for n in fresh if not filecmp.cmp(tmp_path / n, shipped / n, shallow=False)]
    assert not stale, f"{stale} are stale; run: domain-tutor notebooks --out domain_tutor/notebooks"


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_student_copy_has_no_solutions_and_every_stub_fails(path):
    key = _key(path)
    source = nbformat.read(path, as_version=4)
    student = student_notebook(source, key)
    text = "\n".join(c.source for c in student.cells)
    assert BEGIN not in text and END not in text and "#| export" not in text
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")
    exercises = list_exercises(key)
    assert len(exercises) >= 4, f"{path.name} has {len(exercises)} exercises; the course asks for at least 4"
    module = __import__(f"domain_tutor.{key}", fromlist=["_"])
    for ex in exercises:
        cell = next((c for c in student.cells if c.cell_type == "code" and f"def {ex.func_name}(" in c.source), None)
        assert cell is not None, f"{ex.id}: no cell defines {ex.func_name} in the student copy"
        ns = dict(vars(module))
        exec(compile(cell.source, f"<student {ex.func_name}>", "exec"), ns)
        result = check(ex.id, ns[ex.func_name], record=False, verbose=False)
        assert not result.passed and "NotImplementedError" in result.feedback, (ex.id, result.feedback[:300])
        # and the reference, i.e. the solution in the source notebook, passes
        assert check(ex.id, ex.reference, record=False, verbose=False).passed, ex.id


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_student_copy_collapses_the_grading_machinery(path):
    "Registrations (cases, diagnoses, hints) are collapsed; the learner's exercises and the teaching code are not."
    student = student_notebook(nbformat.read(path, as_version=4), _key(path))
    code = [c for c in student.cells if c.cell_type == "code"]
    hidden = [c for c in code if c.metadata.get("jupyter", {}).get("source_hidden")]
    registrations = [c for c in code if "register(Exercise(" in c.source]
    assert registrations and all(c in hidden for c in registrations)
    assert not any("NotImplementedError" in c.source for c in hidden)          # every exercise stub stays open
    assert not any("check(" in c.source and "register(" not in c.source for c in hidden)
    assert all(c.source.startswith("#@title ") and c.metadata.get("cellView") == "form" for c in hidden)
    for ex in list_exercises(_key(path)):
        hints = [h for h in ex.hints if len(h) > 30]
        open_text = "\n".join(c.source for c in code if c not in hidden)
        assert not any(h in open_text for h in hints), f"{ex.id}: a hint is readable without hint()"


def test_stripping_keeps_everything_but_solutions():
    for path in WITH_EXERCISES:
        source = nbformat.read(path, as_version=4)
        student = student_notebook(source, _key(path))
        md_src = [c.source for c in source.cells if c.cell_type == "markdown"]
        md_st = [c.source for c in student.cells if c.cell_type == "markdown"]
        assert md_src == md_st


def _export_cells(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("#| export")]


def _notebook(cells: list[str], chapter: str, tmp_path: Path, name: str) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in cells])
    nb.metadata["domain_tutor"] = {"chapter": chapter}
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / name
    nbformat.write(nb, path)
    return path


needs_chapter = pytest.mark.skipif(not WITH_EXERCISES, reason="no chapter with exercises yet")


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A learner who solved everything: the chapter's exported cells, and its exercises."""
    path = WITH_EXERCISES[0]
    return _key(path), _export_cells(path), list_exercises(_key(path))


@needs_chapter
def test_a_solved_notebook_gets_full_marks(solved, tmp_path):
    key, cells, exercises = solved
    report = grade_notebook(_notebook(cells, key, tmp_path, "solved.ipynb"), timeout=30)
    assert report.score == report.max_score == sum(ex.points for ex in exercises), report.text()
    as_json = report.to_dict()
    assert set(as_json) == {"notebook", "score", "max_score", "exercises"}
    assert set(as_json["exercises"][0]) == {"id", "passed", "score", "max_score", "feedback"}


@needs_chapter
def test_tampering_cannot_raise_the_grade(solved, tmp_path):
    key, cells, exercises = solved
    wrong = exercises[-1]          # the learner gets the last exercise wrong ...
    loops = exercises[-2]          # ... loops forever in another ...
    cheats = exercises[-3]         # ... and calls the library's answer in a third
    honest = cells + [
        f"def {wrong.func_name}(*args, **kwargs):\n    return 0.123456789",
        f"def {loops.func_name}(*args, **kwargs):\n    while True:\n        pass",
        f"def {cheats.func_name}(*args, **kwargs):\n    import domain_tutor.{key} as m\n"
        f"    return m.{cheats.func_name}(*args, **kwargs)",
    ]
    tampering = [
        "import domain_tutor.exercises as E\nE.check = lambda *a, **k: print('✔ forged')\n"
        "E.compare_values = lambda *a, **k: (True, '')",
        f"import domain_tutor.{key} as M\nM.{wrong.func_name} = {wrong.func_name}",
        f"from domain_tutor.progress import record_attempt\nrecord_attempt({wrong.id!r}, True, 1.0, 1.0)",
        "check = lambda *a, **k: True",
        "while True:\n    pass",                      # a cell that never ends: cut by the per-cell limit
        honest[-1],                                   # a duplicated cell
    ]
    base = grade_notebook(_notebook(honest, key, tmp_path, "honest.ipynb"), timeout=10, exercise_timeout=3)
    forged = grade_notebook(_notebook(honest[:-3] + tampering[:3] + honest[-3:] + tampering[3:], key, tmp_path,
                                      "forged.ipynb"), timeout=5, exercise_timeout=3)
    assert forged.score == base.score < base.max_score, (base.text(), forged.text())
    by_id = {r.exercise_id: r for r in forged.results}
    assert not by_id[wrong.id].passed
    assert "stopped after" in by_id[loops.id].feedback
    assert not by_id[cheats.id].passed and "reference solution cannot be called" in by_id[cheats.id].feedback
    assert forged.execution_errors, "the endless cell should be reported"


@needs_chapter
def test_deleted_function_scores_zero_and_a_crash_is_contained(solved, tmp_path):
    key, cells, exercises = solved
    gone, crash = exercises[0], exercises[1]
    kept = [c for c in cells if f"def {gone.func_name}(" not in c]
    kept.append(f"def {crash.func_name}(*args, **kwargs):\n    import os\n    os._exit(3)")
    report = grade_notebook(_notebook(kept, key, tmp_path, "partial.ipynb"), timeout=30, exercise_timeout=3)
    by_id = {r.exercise_id: r for r in report.results}
    assert not by_id[gone.id].passed and "not defined" in by_id[gone.id].feedback
    assert not by_id[crash.id].passed and "ended the grading process" in by_id[crash.id].feedback
    others = [ex for ex in exercises if ex.id not in (gone.id, crash.id)]
    assert all(by_id[ex.id].passed for ex in others), report.text()


@needs_chapter
def test_a_cell_that_swallows_interrupts_cannot_hang_the_grader(solved, tmp_path):
    key, cells, exercises = solved
    stubborn = "import time\nwhile True:\n    try:\n        time.sleep(0.05)\n    except KeyboardInterrupt:\n        pass"
    start = time.perf_counter()
    report = grade_notebook(_notebook(cells + [stubborn], key, tmp_path, "stubborn.ipynb"), timeout=3)
    assert time.perf_counter() - start < 90
    assert report.score == 0 and any("ran past" in e for e in report.execution_errors), report.text()


def test_cli_notebooks_and_grade_errors(tmp_path):
    exe = Path(sys.executable).parent / "domain-tutor"
    out = subprocess.run([str(exe), "notebooks", "--out", str(tmp_path / "student")], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "student" / "index.ipynb").exists()
    bad = subprocess.run([str(exe), "grade", str(tmp_path / "missing.ipynb")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "does not exist" in bad.stderr


@needs_chapter
@pytest.mark.slow
def test_grading_the_untouched_student_copy_gives_zero(tmp_path):
    path = WITH_EXERCISES[0]
    student = student_notebook(nbformat.read(path, as_version=4), _key(path))
    target = tmp_path / path.name
    nbformat.write(student, target)
    exe = Path(sys.executable).parent / "domain-tutor"
    out = subprocess.run([str(exe), "grade", str(target), "--json"], capture_output=True, text=True, timeout=600,
                         cwd=NBS)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["score"] == 0 and report["max_score"] >= 4
    assert all("NotImplementedError" in e["feedback"] for e in report["exercises"])
