"""`repx cancel` on a local run: the `repx run` of this host running the selected jobs
stops as on Ctrl-C (its running job recorded interrupted); nothing running: one line."""

from __future__ import annotations

import subprocess

import pytest

from repx.inspect.status import read_status
from repx.lab.loader import open_lab
from repx.run.store import Store
from tuilab import PATIENCE, REPX, end_jobs, stop, wait_until, write_tiny_lab


@pytest.fixture
def lab(tmp_path):
    tiny = write_tiny_lab(tmp_path)
    assert tiny.run("sweep", "--continue-on-failure").returncode == 1  # seed 3 fails
    yield tiny
    end_jobs(tiny)


def _cancel(lab, *selectors: str) -> subprocess.CompletedProcess[str]:
    argv = [*REPX, "cancel", *selectors, "--lab", str(lab.root), "--base", str(lab.base)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=PATIENCE, check=False)


def test_cancel_stops_the_local_run_of_the_selected_run(lab):
    store = Store.existing(lab.base)
    job = lab.job("hold", "wait")
    runner = lab.start("hold")
    try:
        wait_until(lambda: store.is_locked(job) or runner.poll() is not None, "the wait job")
        assert runner.poll() is None, runner.communicate()
        # a run with nothing running: nothing is stopped
        untouched = _cancel(lab, "sweep")
        assert untouched.returncode == 0, untouched.stderr
        assert "nothing to cancel" in untouched.stderr and runner.poll() is None
        done = _cancel(lab, "hold")
        assert done.returncode == 0, done.stderr
        assert f"stopped repx run (pid {runner.pid}) as Ctrl-C does" in done.stderr
        assert runner.wait(timeout=PATIENCE) == 130
    finally:
        stop(runner)
    assert read_status(open_lab(lab.root), lab.base).reason(job) == "interrupted"
