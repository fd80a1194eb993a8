"""`repx status` with SLURM's states merged in, and `repx cancel` (stand-in SLURM commands;
the real cluster runs the same paths in tests/integration/test_run_slurm.py)."""

from __future__ import annotations

import pytest

from fakeslurm import install
from labfactory import pipeline_runs, write_lab
from repx.config import RuntimeKind
from repx.inspect.status import JobState
from repx.run.reporter import RecordingReporter
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab
from repx.services.slurm import cancel_submitted
from repx.services.status import lab_status


@pytest.fixture
def submitted(tmp_path, monkeypatch):
    fake = install(tmp_path / "fake")
    monkeypatch.setenv("PATH", f"{fake.bin}:/usr/bin:/bin")
    config = tmp_path / "config"
    config.mkdir()
    base = tmp_path / "base"
    (config / "config.toml").write_text(
        f'default_target = "hpc"\n[targets.hpc]\nscheduler = "slurm"\nbase = "{base}"\n'
    )
    monkeypatch.setenv("REPX_CONFIG_DIR", str(config))
    lab = write_lab(tmp_path / "lab", pipeline_runs(2)).root
    where = Location(lab=lab)
    summary = run_lab(RunOptions(where=where, runtime=RuntimeKind.NATIVE), RecordingReporter())
    assert summary.submitted_only and summary.slurm_ids == ("1001", "1002", "1003")
    assert summary.exit_code == 0
    return fake, where, base


def test_status_shows_queued_and_running(submitted):
    fake, where, _ = submitted
    fake.set_queue(
        [
            "1001_0|1001|0|RUNNING|None",
            "1001_1|1001|1|PENDING|Resources",
            "1002_0|1002|0|PENDING|Dependency",
            "1002_1|1002|1|PENDING|Dependency",
            "1003|1003|N/A|PENDING|Dependency",
        ]
    )
    report = lab_status(where)
    by_state = {}
    for entry in report.jobs:
        by_state.setdefault(entry.status, []).append(entry)
    assert len(by_state[JobState.RUNNING]) == 1 and len(by_state[JobState.QUEUED]) == 4
    assert report.totals()[JobState.QUEUED] == 4
    resources = next(e for e in by_state[JobState.QUEUED] if e.slurm_id == "1001_1")
    assert resources.reason == "Resources"


def test_status_after_cancel_and_failures(submitted):
    fake, where, _ = submitted
    fake.set_queue(
        [
            "1001_0|1001|0|CANCELLED|None",
            "1001_1|1001|1|NODE_FAIL|None",
            "1002_0|1002|0|CANCELLED|DependencyNeverSatisfied",
            "1002_1|1002|1|PENDING|Dependency",
            "1003|1003|N/A|PENDING|Dependency",
        ]
    )
    report = lab_status(where)
    got = {e.slurm_id: (e.status, e.reason) for e in report.jobs}
    assert got["1001_0"] == (JobState.CANCELLED, None)
    assert got["1001_1"][0] is JobState.FAILED and got["1001_1"][1].startswith("SLURM: NODE_FAIL")
    assert got["1002_0"] == (JobState.BLOCKED, "a job it needs did not succeed")
    # queued behind a failure: SLURM drops it soon
    assert got["1002_1"][0] is JobState.BLOCKED and got["1003"][0] is JobState.BLOCKED


def test_status_without_slurm_keeps_the_store_states(submitted, monkeypatch, tmp_path):
    _, where, _ = submitted
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    report = lab_status(where)  # a warning, not an error
    assert {e.status for e in report.jobs} == {JobState.PENDING, JobState.WAITING}


def test_cancel_whole_arrays_or_single_tasks(submitted):
    fake, _, base = submitted
    fake.set_queue(
        [
            "1001_0|1001|0|COMPLETED|None",
            "1001_1|1001|1|RUNNING|None",
            "1002_0|1002|0|PENDING|Dependency",
            "1002_1|1002|1|PENDING|Dependency",
            "1003|1003|N/A|PENDING|Dependency",
        ]
    )
    report = cancel_submitted(base, None)
    assert report.slurm_ids == ("1001", "1002", "1003")  # every live task of each array
    assert [c.slurm_id for c in report.cancelled] == ["1001_1", "1002_0", "1002_1", "1003"]
    assert fake.calls("scancel")[-1]["argv"] == ["scancel", "1001", "1002", "1003"]
    stats = next(c for c in report.cancelled if c.stage == "stats").jobs
    partial = cancel_submitted(base, stats)
    assert partial.slurm_ids == ("1002_0",)
    fake.set_queue([])
    assert cancel_submitted(base, None).cancelled == ()
