"""``repx status --watch`` and ``repx tui`` on a lab built by real Nix (``pipeline``)."""

from __future__ import annotations

import asyncio
import select
import subprocess
import sys
import time

import pytest
from runlab import build_lab, lab_jobs, repx, run_jobs

pytestmark = pytest.mark.slow

PATIENCE = 300.0
REPX = [sys.executable, "-m", "repx"]


@pytest.fixture(scope="module")
def lab():
    return build_lab("pipeline")


def _lines_until(proc, text):
    deadline = time.monotonic() + PATIENCE
    seen = []
    while time.monotonic() < deadline:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in line:
                return seen
    raise AssertionError(f"no line with {text!r} in {seen!r}")


def test_watch_follows_a_run_to_its_end(lab, tmp_path):
    base = tmp_path / "base"
    watch = subprocess.Popen(
        [*REPX, "status", "sweep", "-l", str(lab), "--base", str(base), "-w", "--interval", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    run = None
    try:
        _lines_until(watch, "pending 8")  # nothing has run: it would watch forever
        run = subprocess.Popen(
            [*REPX, "run", "sweep", "-l", str(lab), "--base", str(base), "-j", "1"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        seen = _lines_until(watch, "succeeded 9")
        assert watch.wait(timeout=PATIENCE) == 0
        assert run.wait(timeout=PATIENCE) == 0, run.stderr.read()
        assert any("running 1" in line for line in seen)  # it saw the run progress
        rest = watch.stdout.read()
        assert "total" in rest and "work" in rest  # then the final table
    finally:
        for proc in (watch, run):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_tui_shows_the_failed_jobs_log_and_screenshots(lab, tmp_path):
    from repx.services.location import Location  # noqa: PLC0415
    from repx.tui.app import RepxTui  # noqa: PLC0415
    from repx.tui.board import Board  # noqa: PLC0415

    base = tmp_path / "base"
    assert repx("run", "broken", "-l", lab, "--base", base, "--continue-on-failure").returncode == 1
    jobs = lab_jobs(lab)
    failing = next(
        j for j in run_jobs(lab, "broken") if j.endswith("-work") and jobs[j]["params"]["i"] == 3
    )
    app = RepxTui(Board(Location(lab=lab, base=base), "broken"), interval=0.1)

    async def scenario():
        async with app.run_test(size=(120, 36)) as pilot:
            deadline = time.monotonic() + PATIENCE

            def log_shown():
                panel = app.query_one("#stderr")
                return "work 3: failing on purpose" in list(panel.lines)

            while not (app.selected_job == failing and log_shown()):
                assert time.monotonic() < deadline, "the failed job's stderr never showed"
                await pilot.pause(0.05)
            assert str(app.run_nodes["broken"].label) == "broken ✓3 ✗1 ⊘1"

    asyncio.run(scenario())

    shot = tmp_path / "tui.svg"
    done = repx("tui", "broken", "-l", lab, "--base", base, "--screenshot", shot)
    assert done.returncode == 0, done.stderr
    svg = shot.read_text().replace("&#160;", " ")
    assert svg.startswith("<svg") and "work" in svg and "total" in svg
    assert failing[:8] in svg and "i=3" in svg
