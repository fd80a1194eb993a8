"""``repx status --watch``: a live status until every selected job is finished."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time

import pytest

from repx.run.store import Store
from repx.services import status as status_service
from repx.services.location import Location
from tuilab import PATIENCE, REPX, end_jobs, stop, wait_until, write_tiny_lab


@pytest.fixture
def lab(tmp_path):
    tiny = write_tiny_lab(tmp_path)
    yield tiny
    end_jobs(tiny)


def watch(lab, *args):
    return subprocess.Popen(
        [*REPX, "status", "-l", str(lab.root), "--base", str(lab.base), "--watch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc):
    """Wait for ``proc`` to end; the rest of its stdout and its stderr (read through the
    file objects: ``communicate`` would miss what they buffered)."""
    proc.wait(timeout=PATIENCE)
    return proc.stdout.read(), proc.stderr.read()


def read_line_with(proc, text):
    """Lines of ``proc``'s stdout up to the first one containing ``text``."""
    deadline = time.monotonic() + PATIENCE
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            if text in line:
                return seen
    raise AssertionError(f"no line with {text!r} in {seen!r}")


def test_watch_ends_when_the_run_ends(lab):
    Store.open(lab.base).close()  # status refuses a base that is not a store yet
    wait_job = lab.job("hold", "wait")
    runner = lab.start("hold")
    watcher = watch(lab, "hold", "--interval", "0.1")
    try:
        # piped: one line per change of the counts
        read_line_with(watcher, "running 1")
        wait_until(lab.release, "the wait job to read its fifo")
        out, err = finish(watcher)
        assert watcher.returncode == 0, err
        assert "succeeded 1" in out.splitlines()[-1] or "succeeded 1" in out
        # then the final table
        assert "wait" in out and "total" in out
        assert runner.wait(timeout=PATIENCE) == 0
        assert Store.existing(lab.base).read_index().succeeded(wait_job)
    finally:
        stop(watcher)
        stop(runner)


def test_watch_of_finished_jobs_returns_at_once(lab):
    assert lab.run("sweep", "--continue-on-failure").returncode == 1
    proc = subprocess.run(
        [*REPX, "status", "sweep", "-l", str(lab.root), "--base", str(lab.base), "-w"],
        capture_output=True,
        text=True,
        check=False,
        timeout=PATIENCE,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "succeeded 4, failed 1, blocked 1" in lines[0]
    assert any(line.startswith("total") for line in lines)
    assert f"failed: {lab.seed_job(3)}" in proc.stderr


def test_ctrl_c_stops_watching_without_a_traceback(lab):
    Store.open(lab.base).close()
    watcher = watch(lab, "hold", "--interval", "0.1")  # nothing runs it: never finished
    try:
        read_line_with(watcher, "pending 1")
        os.kill(watcher.pid, signal.SIGINT)
        out, err = finish(watcher)
        assert watcher.returncode == 0
        assert "Traceback" not in err and "interrupted" not in err
        assert "total" in out, (out, err)
    finally:
        stop(watcher)


def test_watch_and_json_are_refused(lab):
    Store.open(lab.base).close()
    proc = subprocess.run(
        [*REPX, "status", "-l", str(lab.root), "--base", str(lab.base), "-w", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=PATIENCE,
    )
    assert proc.returncode == 2
    assert "--watch and --json" in proc.stderr


def test_the_lab_is_read_once_and_states_come_from_the_owner(lab, monkeypatch):
    Store.open(lab.base).close()
    opened, snapshots = [], []
    real_open, real_read = status_service.open_lab, status_service.read_status
    monkeypatch.setattr(
        status_service, "open_lab", lambda p, **k: opened.append(p) or real_open(p, **k)
    )
    monkeypatch.setattr(
        status_service, "read_status", lambda *a, **k: snapshots.append(a) or real_read(*a, **k)
    )
    source = status_service.StatusSource(Location(lab=lab.root, base=lab.base), "hold")
    reports = status_service.watch_status(source, 0.0)
    for _ in range(3):
        report = next(reports)
        assert not report.finished
        assert [e.status.value for e in report.jobs] == ["pending"]
    assert len(opened) == 1
    assert len(snapshots) == 3
