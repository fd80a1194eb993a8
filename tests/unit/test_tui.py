"""``repx tui``: driven with textual's pilot on a real tiny lab that has run.

The lab (tests/tuilab.py) ran for real: seeds 1 and 2 succeeded, seed 3 failed (its stats
job is blocked); the ``hold`` run's job blocks on a FIFO until released.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest
from textual.widgets import Log

from repx.config import RuntimeKind
from repx.inspect.status import JobState
from repx.run.store import Store
from repx.services.location import Location
from repx.tui.app import Confirm, HelpScreen, Ref, RepxTui
from repx.tui.board import Board
from tuilab import PATIENCE, REPX, end_jobs, stop, wait_until, write_tiny_lab

SIZE = (120, 36)


@pytest.fixture
def lab(tmp_path):
    tiny = write_tiny_lab(tmp_path)
    result = tiny.run("sweep", "--continue-on-failure")
    assert result.returncode == 1, result.stderr  # seed 3 failed
    yield tiny
    end_jobs(tiny)


def make_app(lab, run=None):
    board = Board(Location(lab=lab.root, base=lab.base), run, RuntimeKind.NATIVE)
    return RepxTui(board, interval=0.05)


async def until(pilot, condition, what):
    """Let the app run until ``condition()`` holds (fails after PATIENCE seconds)."""
    deadline = time.monotonic() + PATIENCE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def select(pilot, app, job):
    """Put the cursor on ``job`` and wait until the tree and the app agree."""
    app.select_job(job)
    await until(
        pilot,
        lambda: app.cursor is not None and app.cursor.job == job and app.selected_job == job,
        f"{job} selected",
    )


def screen_text(app):
    """The text of the screen as drawn now."""
    return app.export_screenshot().replace("&#160;", " ")


def lines(app, name):
    return list(app.query_one(f"#{name}", Log).lines)


def drive(app, scenario, *, notifications=False):
    async def main():
        async with app.run_test(size=SIZE, notifications=notifications) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def test_board_counts_and_navigation(lab):
    app = make_app(lab)
    seed3 = lab.seed_job(3)
    simulate = app.board.stage_row("sweep", "simulate").jobs  # pipeline order
    assert sorted(simulate) == sorted(lab.factory.stage_jobs[("sweep", "simulate")])

    async def scenario(pilot):
        # the failed job is selected first, its parameters shown
        await until(
            pilot,
            lambda: app.cursor is not None and app.cursor.job == seed3 == app.selected_job,
            "seed 3 selected",
        )
        assert str(app.run_nodes["sweep"].label) == "sweep ✓4 ✗1 ⊘1"
        assert str(app.stage_nodes[("sweep", "simulate")].label) == "simulate ✓2 ✗1"
        assert str(app.stage_nodes[("sweep", "stats")].label) == "stats ✓2 ⊘1"
        assert str(app.run_nodes["hold"].label) == "hold ○1"
        label = str(app.nodes[seed3][0].label)
        assert label == f"✗ {app.board.short(seed3)}  seed=3"  # swept parameters only
        await until(pilot, lambda: "exit status 3" in screen_text(app), "its details drawn")
        assert "fail_flag" in screen_text(app)  # every parameter in the details

        async def moves_to(ref, *keys):
            await pilot.press(*keys)
            await until(pilot, lambda: app.selected == ref == app.cursor, f"{keys} -> {ref}")

        # the top: run, then stage, then the stage's jobs in pipeline order
        await moves_to(Ref("run", "sweep"), "home")
        await moves_to(Ref("stage", "sweep", "simulate"), "down")
        await moves_to(Ref("job", "sweep", "simulate", simulate[0]), "down")
        await moves_to(Ref("job", "sweep", "simulate", simulate[2]), "down", "down")
        await moves_to(Ref("stage", "sweep", "simulate"), "shift+left")
        # folded, the next line is the next stage
        await moves_to(Ref("stage", "sweep", "stats"), "space", "down")
        # help, then back, then quit
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help screen")
        await pilot.press("x")
        await until(pilot, lambda: not isinstance(app.screen, HelpScreen), "help closed")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to quit")

    drive(app, scenario)


def test_log_panels_show_the_jobs_real_output(lab):
    app = make_app(lab)
    seed1, seed3 = lab.seed_job(1), lab.seed_job(3)

    async def scenario(pilot):
        await until(pilot, lambda: "simulating seed 3" in lines(app, "stdout"), "stdout")
        await until(pilot, lambda: "seed 3 is unlucky" in lines(app, "stderr"), "stderr")
        assert lines(app, "stderr")[:2] == ["seed 3 on stderr", "seed 3 is unlucky"]
        await select(pilot, app, seed1)
        await until(pilot, lambda: lines(app, "stdout") == ["simulating seed 1"], "seed 1 log")
        assert lines(app, "stderr") == ["seed 1 on stderr"]
        assert app.selected_job != seed3

    drive(app, scenario)


@pytest.fixture
def holding(lab):
    """``repx run hold`` in the background, its job blocked on the FIFO."""
    runner = lab.start("hold")
    job = lab.job("hold", "wait")
    store = Store.existing(lab.base)
    try:
        wait_until(lambda: store.is_locked(job) or runner.poll() is not None, "the wait job")
        assert runner.poll() is None, runner.communicate()
        yield runner, job
    finally:
        stop(runner)


def _hold_app(lab, holding):
    """The board of run 'hold' whose job is running: (app, runner, job, its lock file)."""
    runner, job = holding
    return make_app(lab, "hold"), runner, job, str(lab.base / "locks" / f"{job}.lock")


async def _select_when_running(pilot, app, job):
    await until(pilot, lambda: app.board.state(job) is JobState.RUNNING, "running")
    await select(pilot, app, job)


def test_cancel_a_running_job(lab, holding):
    from repx import process  # noqa: PLC0415

    app, runner, job, lock = _hold_app(lab, holding)

    async def scenario(pilot):
        await _select_when_running(pilot, app, job)
        await until(pilot, lambda: "waiting on the fifo" in lines(app, "stdout"), "its log")
        assert app.query_one("#stdout", Log).border_title == "stdout · following"
        await pilot.press("c")  # asks first: anything but y declines
        await until(pilot, lambda: isinstance(app.screen, Confirm), "the question")
        await pilot.press("n")
        await until(pilot, lambda: not isinstance(app.screen, Confirm), "declined")
        assert process.holders(lock, f"REPX_JOB_ID={job}")  # still running
        await pilot.press("c", "y")
        await until(pilot, lambda: app.board.state(job) is JobState.FAILED, "job failed")
        assert app.board.view.reason(job) == "killed by SIGTERM"
        assert str(app.run_nodes["hold"].label) == "hold ✗1"

    drive(app, scenario)
    assert runner.wait(timeout=PATIENCE) == 1  # the run saw its job fail


def test_cancel_a_run_stops_its_repx_run(lab, holding):
    runner, job = holding
    app = make_app(lab)

    async def scenario(pilot):
        await until(pilot, lambda: app.board.state(job) is JobState.RUNNING, "running")
        await select(pilot, app, job)
        await pilot.press("shift+left", "shift+left")  # the run node
        assert app.selected == Ref("run", "hold")
        await pilot.press("C", "y")
        await until(pilot, lambda: app.board.state(job) is JobState.FAILED, "interrupted")
        assert app.board.view.reason(job) == "interrupted"

    drive(app, scenario)
    assert runner.wait(timeout=PATIENCE) != 0


def test_cancel_refuses_a_job_that_is_not_running(lab):
    app = make_app(lab)
    seed1 = lab.seed_job(1)

    async def scenario(pilot):
        await select(pilot, app, seed1)
        await pilot.press("c")
        assert app.board.state(seed1) is JobState.SUCCEEDED

    drive(app, scenario)


def test_rerun_a_failed_job(lab):
    app = make_app(lab)
    seed3 = lab.seed_job(3)
    lab.fail_flag.unlink()  # seed 3 succeeds from now on

    async def scenario(pilot):
        await until(
            pilot,
            lambda: app.cursor is not None and app.cursor.job == seed3 == app.selected_job,
            "seed 3 selected",
        )
        await pilot.press("r")
        await until(pilot, lambda: app.board.state(seed3) is JobState.SUCCEEDED, "rerun")
        simulate = app.stage_nodes[("sweep", "simulate")]
        await until(pilot, lambda: str(simulate.label) == "simulate ✓3", "the counts")
        # its logs are the new attempt's
        await until(pilot, lambda: lines(app, "stderr") == ["seed 3 on stderr"], "new log")
        # the job blocked behind it can run now
        assert "○1" in str(app.stage_nodes[("sweep", "stats")].label)

    drive(app, scenario)
    assert Store.existing(lab.base).read_index().succeeded(seed3)


def test_screenshot_writes_an_svg_with_the_job_names(lab, tmp_path):
    shot = tmp_path / "board.svg"
    proc = subprocess.run(
        [*REPX, "tui", "-l", str(lab.root), "--base", str(lab.base), "--screenshot", str(shot)],
        capture_output=True,
        text=True,
        check=False,
        timeout=PATIENCE,
    )
    assert proc.returncode == 0, proc.stderr
    root = ET.fromstring(shot.read_text())  # well-formed SVG
    assert root.tag.endswith("svg")
    text = "".join(root.itertext()).replace("\xa0", " ")
    board = Board(Location(lab=lab.root, base=lab.base))
    for job in lab.factory.job_ids:
        assert board.short(job) in text
    for name in ("sweep", "simulate", "stats", "hold", "wait", "seed 3 is unlucky"):
        assert name in text
    assert list(tmp_path.glob(".board.svg.*")) == []  # written in one step


def test_screenshot_needs_an_svg_name(lab, tmp_path):
    proc = subprocess.run(
        [*REPX, "tui", "-l", str(lab.root), "--base", str(lab.base), "--screenshot", "x.png"],
        capture_output=True,
        text=True,
        check=False,
        timeout=PATIENCE,
    )
    assert proc.returncode == 2
    assert "SVG" in proc.stderr and "Traceback" not in proc.stderr


def test_without_textual_the_error_is_one_line(lab, monkeypatch):
    import sys  # noqa: PLC0415

    from typer.testing import CliRunner  # noqa: PLC0415

    from repx.cli import app as cli  # noqa: PLC0415

    monkeypatch.delitem(sys.modules, "repx.tui.app", raising=False)
    monkeypatch.setitem(sys.modules, "textual", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "textual.app", None)
    result = CliRunner().invoke(cli, ["tui", "-l", str(lab.root), "--base", str(lab.base)])
    assert result.exit_code == 1
    assert "needs the Python package textual" in result.stderr
    assert "Traceback" not in result.stderr


def test_log_records_become_notifications_not_screen_garbage(lab):
    import logging  # noqa: PLC0415

    logger = logging.getLogger("repx")
    before = list(logger.handlers)
    app = make_app(lab)

    async def scenario(pilot):
        await until(pilot, lambda: app.selected_job is not None, "the app started")
        assert [type(h).__name__ for h in logger.handlers] == ["_Notices"]
        logging.getLogger("repx.run").warning("the disk is nearly full")
        await until(pilot, lambda: "the disk is nearly full" in screen_text(app), "a toast")

    drive(app, scenario, notifications=True)
    assert logger.handlers == before


def test_quitting_stops_a_rerun_in_progress(lab, holding):
    from repx import process  # noqa: PLC0415

    app, runner, job, lock = _hold_app(lab, holding)

    async def scenario(pilot):
        await _select_when_running(pilot, app, job)
        await pilot.press("c", "y")
        await until(pilot, lambda: app.board.state(job) is JobState.FAILED, "job failed")
        await pilot.press("r")  # the rerun blocks on the FIFO again, in the TUI's thread
        await until(pilot, lambda: job in app.board.reruns, "the rerun started")
        await until(pilot, lambda: app.board.state(job) is JobState.RUNNING, "rerunning")
        await until(pilot, lambda: process.holders(lock, f"REPX_JOB_ID={job}"), "its process")
        await pilot.press("q")
        await until(pilot, lambda: not app.is_running, "the app to quit")

    drive(app, scenario)
    assert runner.wait(timeout=PATIENCE) == 1
    rerun = app.board.reruns[job]
    assert not rerun.running
    assert rerun.summary is not None and rerun.summary.interrupted
    assert process.holders(lock, f"REPX_JOB_ID={job}") == []  # nothing left running
    result = Store.existing(lab.base).read_result(job)
    assert result is not None and result.reason == "interrupted"
