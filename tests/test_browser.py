"""The course in a real browser: JupyterLab serves a student notebook, headless Chromium runs the quiz and a check.

This is the path a learner takes: the quiz form must render as live ipywidgets (not as a text fallback), clicking an
answer and "Check" must come back from the kernel with feedback, and `check` must print its ✔/✘ summary.
Needs Debian's `chromium` and PyPI's `playwright` (only the Python package: no `playwright install`); skipped
without them, except where DOMAIN_TUTOR_REQUIRE_BROWSER=1 (CI), where that is a failure.
A screenshot is kept in `test-artifacts/browser-quiz.png` (git-ignored) for a person to look at.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHAPTER = "01_concepts"
SEED = 0
NB_NAME = "browser_quiz.ipynb"
LOCAL_EXERCISE = "concepts.browser_smoke"

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    "Debian's Chromium (the Playwright-downloaded browsers are not used)."
    for candidate in (os.environ.get("DOMAIN_TUTOR_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exercise_cells() -> tuple[str, str]:
    "(setup source, exercise id): a registered chapter-1 exercise when there is one, else a local one made here."
    from domain_tutor.exercises import list_exercises
    ids = [ex.id for ex in list_exercises("concepts")]
    if ids:
        return "", ids[0]
    setup = ("from domain_tutor.exercises import Exercise, case, register\n"
             f"register(Exercise(id={LOCAL_EXERCISE!r}, title='Double a number', func_name='double',\n"
             "                   reference=lambda x: 2 * x, cases=[case(1), case(2), case(3)]))\n")
    return setup, LOCAL_EXERCISE


def _local_check(exercise_setup: str, exercise_id: str):
    "What `check` gives for the notebook's constant function in this process (nothing printed or recorded)."
    from domain_tutor import exercises
    exec(exercise_setup, {"__name__": "browser_notebook"})
    try:
        return exercises.check(exercise_id, lambda *a, **k: 0.0, record=False, verbose=False)
    finally:
        if exercise_setup:
            exercises._LOCAL.pop(exercise_id, None)     # leave no local exercise behind for other tests


def _write_notebook(path: Path, exercise_setup: str, exercise_id: str) -> None:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
    nb = new_notebook(cells=[
        new_markdown_cell("# Browser check of the course\nA quiz question, then a graded exercise."),
        new_code_cell(f'from domain_tutor.quiz import quiz\nquiz("{CHAPTER}", n=1, seed={SEED})'),
        new_code_cell(exercise_setup + f"from domain_tutor.exercises import check\n"
                                       f"check({exercise_id!r}, lambda *a, **k: 0.0)"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
                 "language_info": {"name": "python"}})
    nbformat.write(nb, str(path))


def _lab_settings(settings_dir: Path) -> None:
    "User settings that keep first-run toasts (news, update checks) from covering the notebook."
    target = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False, "doNotDisturbMode": True}))


def _start_lab(workspace: Path, state: Path, port: int, token: str, home: Path) -> tuple[subprocess.Popen, Path]:
    "JupyterLab on `workspace` in its own process group, with all its Jupyter and IPython state under `state`."
    for sub in ("config", "data", "runtime", "ipython", "settings", "workspaces"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    _lab_settings(state / "settings")
    env = dict(os.environ, DOMAIN_TUTOR_HOME=str(home), JUPYTER_CONFIG_DIR=str(state / "config"),
               JUPYTER_DATA_DIR=str(state / "data"), JUPYTER_RUNTIME_DIR=str(state / "runtime"),
               IPYTHONDIR=str(state / "ipython"), JUPYTER_PLATFORM_DIRS="1", PYTHONUNBUFFERED="1")
    env.pop("JUPYTERLAB_SETTINGS_DIR", None)
    env.pop("JUPYTERLAB_WORKSPACES_DIR", None)
    cmd = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={workspace}", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--no-browser",
           f"--IdentityProvider.token={token}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           f"--LabApp.user_settings_dir={state / 'settings'}", f"--LabApp.workspaces_dir={state / 'workspaces'}",
           "--LabApp.expose_app_in_browser=True"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = state / "lab.log"
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=workspace, env=env, stdout=f, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    return proc, log


def _wait_for_lab(proc: subprocess.Popen, url: str, log: Path, wait: float = 60.0) -> None:
    deadline = time.time() + wait
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"JupyterLab exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.time() > deadline:
            raise AssertionError(f"JupyterLab did not answer at {url} in {wait:g} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def _stop(proc: subprocess.Popen) -> None:
    "Stop the server and its kernels (its whole process group): SIGTERM, then SIGKILL."
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)    # kernels left behind in the group, if any
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


KERNEL_IDLE = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const kernel = ctx && ctx.session && ctx.session.kernel;
  return !!(kernel && kernel.status === 'idle' && kernel.connectionStatus === 'connected' && w.content
            && w.content.widgets.length >= 3);
}"""


def _run_cell(page, index: int) -> None:
    "Run code cell `index` as a learner does: click into it, Shift+Enter."
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def _choose(form, label: str) -> None:
    "Click the radio button labelled `label`."
    form.locator(".widget-radio-box label").filter(has_text=label).first.click()


def _answer(page, form, shown) -> None:
    "Give the right answer to the question `shown` (a `Presented`) in the rendered `form`."
    q = shown.question
    if q.type in ("single", "true_false"):
        _choose(form, next(label for label, value in shown.options() if value == q.answer))
    elif q.type == "multiple":
        boxes = form.locator(".widget-checkbox")
        for label, value in shown.options():
            if value in q.answer:
                boxes.filter(has_text=label).locator("input").first.check()
    else:
        field = form.locator(".widget-text input").first
        field.fill(f"{q.answer:g}")
        field.press("Tab")       # FloatText syncs its value on blur / Enter


def test_quiz_and_check_in_jupyterlab(tmp_path, course_home):
    missing = pytest.fail if os.environ.get("DOMAIN_TUTOR_REQUIRE_BROWSER") == "1" else pytest.skip   # CI sets it
    try:
        from playwright import sync_api
    except ModuleNotFoundError:
        missing("the playwright package is not installed (pip install playwright)")
    chromium = _chromium()
    if chromium is None:
        missing("no chromium executable (Debian: apt-get install -y chromium)")
    from domain_tutor.quiz import load_bank, present

    shown = present(load_bank(CHAPTER), n=1, seed=SEED)[0]     # what the kernel will show: same bank, same seed
    exercise_setup, exercise_id = _exercise_cells()
    workspace, state = tmp_path / "workspace", tmp_path / "jupyter"
    workspace.mkdir()
    _write_notebook(workspace / NB_NAME, exercise_setup, exercise_id)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "browser-quiz.png"
    shot.unlink(missing_ok=True)

    port, token = _free_port(), secrets.token_hex(16)
    base = f"http://127.0.0.1:{port}"
    started = time.time()
    proc, log = _start_lab(workspace, state, port, token, course_home)
    console: list[str] = []
    try:
        _wait_for_lab(proc, f"{base}/api/status?token={token}", log)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.set_default_timeout(60_000)
                page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
                page.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
                try:
                    page.goto(f"{base}/lab/tree/{NB_NAME}?token={token}", wait_until="domcontentloaded")
                    page.wait_for_function(KERNEL_IDLE, polling=250, timeout=90_000)

                    # 1. the quiz: a live widget form, answered right, graded by the kernel
                    _run_cell(page, 0)
                    form = page.locator(".jp-CodeCell").nth(0).locator(".jp-OutputArea-output .widget-vbox").first
                    form.wait_for(state="visible")
                    prompt = shown.question.prompt["en"]
                    page.get_by_text(prompt[:40], exact=False).first.wait_for()
                    check_button = form.get_by_role("button", name="Check")
                    feedback = form.locator(".widget-html-content")
                    wrong_text = None
                    if shown.question.type in ("single", "true_false"):   # a wrong answer first, then the right one
                        _choose(form, next(label for label, value in shown.options()
                                           if value != shown.question.answer))
                        check_button.click()
                        feedback.filter(has_text="✘").first.wait_for(timeout=30_000)
                        wrong_text = feedback.filter(has_text="✘").first.inner_text()
                    _answer(page, form, shown)
                    check_button.click()
                    feedback.filter(has_text="✔").first.wait_for(timeout=30_000)
                    quiz_text = feedback.filter(has_text="✔").first.inner_text()
                    score = feedback.filter(has_text="Score:").first   # set after the feedback, maybe a tick later
                    sync_api.expect(score).to_contain_text("1 / 1 correct", timeout=30_000)
                    score_text = score.inner_text()

                    # 2. a graded exercise: check() prints a one-line ✔/✘ summary, here for a constant function
                    _run_cell(page, 1)
                    out = page.locator(".jp-CodeCell").nth(1).locator(".jp-OutputArea-output")
                    summary = out.filter(has_text=re.compile(rf"[✔✘] {re.escape(exercise_id)}: \d+/\d+ cases"))
                    summary.first.wait_for(timeout=60_000)
                    check_text = summary.first.inner_text()
                    page.wait_for_function(KERNEL_IDLE, polling=250)   # the cell has finished (progress recorded)

                    form.scroll_into_view_if_needed()
                    page.screenshot(path=str(shot))
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "browser-quiz-failure.png"))
                    raise
            finally:
                browser.close()
    except Exception as err:
        raise AssertionError(f"{err}\n--- browser console errors ---\n" + "\n".join(console[-20:]) +
                             f"\n--- JupyterLab log ---\n{log.read_text()[-4000:]}") from err
    finally:
        _stop(proc)
    elapsed = time.time() - started

    assert quiz_text.strip().startswith("✔ Correct."), quiz_text
    assert "1 / 1 correct" in score_text, score_text
    if wrong_text is not None:
        assert wrong_text.strip().startswith(f"✘ Not quite: the answer is {shown.answer_text()}."), wrong_text
    expected = _local_check(exercise_setup, exercise_id)      # the same grading, here, without the browser
    assert check_text.strip().splitlines()[0] == expected.feedback.splitlines()[0], (check_text, expected.feedback)
    assert not expected.passed and check_text.startswith(f"✘ {exercise_id}:"), check_text
    assert shot.is_file() and shot.stat().st_size > 10_000
    # the results went to this test's course home, not the developer's
    progress = json.loads((course_home / "progress.json").read_text())
    record = progress["quizzes"]["concepts"][shown.id]
    assert record["correct"] is True and record["attempts"] == (1 if wrong_text is None else 2), record
    assert progress["exercises"][exercise_id]["attempts"] == 1
    assert progress["exercises"][exercise_id]["passed"] is False
    assert elapsed < 120, f"the browser test took {elapsed:.0f} s"
