"""The library is generated from the notebooks, and the notebooks are clean: CI fails when either drifts."""
import filecmp
import shutil
import subprocess
import sys

from conftest import ROOT


def _copy_project(tmp_path):
    for name in ("settings.ini", "setup.py", "pyproject.toml"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copytree(ROOT / "domain_tutor", tmp_path / "domain_tutor",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp_path


def _nbdev(command: str, cwd):
    code = f"from nbdev.{command[0]} import {command[1]}; {command[1]}()"
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def _differences(a, b, pattern):
    diffs = []
    for f in sorted(a.rglob(pattern)):
        if "__pycache__" in f.parts or ".ipynb_checkpoints" in f.parts:
            continue
        other = b / f.relative_to(a)
        if not other.exists() or not filecmp.cmp(f, other, shallow=False):
            diffs.append(str(f.relative_to(a)))
    for f in sorted(b.rglob(pattern)):
        if "__pycache__" not in f.parts and not (a / f.relative_to(b)).exists():
            diffs.append(f"{f.relative_to(b)} (new)")
    return diffs


def test_library_is_in_sync_with_notebooks(tmp_path):
    work = _copy_project(tmp_path)
    _nbdev(("doclinks", "nbdev_export"), work)
    diffs = _differences(ROOT / "domain_tutor", work / "domain_tutor", "*.py")
    assert not diffs, f"nbdev_export changes {diffs}: run nbdev_export and commit the library"


def test_notebooks_are_clean(tmp_path):
    work = _copy_project(tmp_path)
    _nbdev(("clean", "nbdev_clean"), work)
    diffs = _differences(ROOT / "nbs", work / "nbs", "*.ipynb")
    assert not diffs, f"nbdev_clean changes {diffs}: run nbdev_clean and commit the notebooks"


def test_installed_library_does_not_need_nbdev():
    code = ("import sys, importlib, pkgutil, domain_tutor\n"
            "sys.modules['nbdev'] = None; sys.modules['fastcore'] = None  # any import of them now fails\n"
            "for m in pkgutil.iter_modules(domain_tutor.__path__):\n"
            "    if not m.name.startswith('_'): importlib.import_module('domain_tutor.' + m.name)\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]
