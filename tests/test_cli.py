"""`domain-tutor start`: a workspace that keeps the learner's work, and a JupyterLab that answers."""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from domain_tutor.cli import course_notebooks, main


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str, wait: float = 30.0) -> int:
    "The HTTP status of `url`, retrying while the server finishes starting."
    deadline = time.time() + wait
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.status
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)


def _script() -> list[str]:
    exe = shutil.which("domain-tutor", path=str(Path(sys.executable).parent))
    assert exe, "the console script domain-tutor is not installed next to this Python"
    return [exe]


def test_console_script_version():
    out = subprocess.run(_script() + ["--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and re.match(r"domain_tutor \d+\.\d+", out.stdout)


def test_start_rejects_a_file_as_workspace(tmp_path, capsys):
    f = tmp_path / "file.txt"
    f.write_text("x")
    assert main(["start", "--dir", str(f), "--no-browser"]) == 2
    assert "dir must be a folder" in capsys.readouterr().err


@pytest.mark.slow
def test_start_serves_the_course(tmp_path):
    port = _free_port()
    work = tmp_path / "course"
    (work).mkdir()
    (work / "index.ipynb").write_text('{"my": "edited notebook"}')
    proc = subprocess.Popen(_script() + ["start", "--dir", str(work), "--port", str(port), "--no-browser"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url, log = None, []
    try:
        deadline = time.time() + 120
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                break
            log.append(line)
            m = re.search(rf"http://127\.0\.0\.1:{port}/\S*", line)
            url = m.group(0) if m else None
        assert url, "".join(log[-30:])
        assert _status(url) == 200
        assert (work / "index.ipynb").read_text() == '{"my": "edited notebook"}'   # never overwritten
        copied = {p.name for p in work.glob("*.ipynb")}
        assert copied == {p.name for p in course_notebooks()}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
