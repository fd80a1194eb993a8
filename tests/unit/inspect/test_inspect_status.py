"""Job states read from the output store (through repx.run.store), and where it is."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

import json
import logging

import pytest
from inspect_fixtures import base, view  # noqa: F401

from repx.errors import UsageError
from repx.inspect.status import JobState, find_base, read_status
from repx.run.store import Store
from storefake import hold_attempt, record_attempt


def jobs_of(factory_lab, stage, run="simulation"):
    return factory_lab.stage_jobs[(run, stage)]


def test_without_a_store_jobs_are_pending_or_waiting(view, factory_lab, base):
    assert not base.exists()
    status = read_status(view.lab, base)
    assert not status.executed
    assert status.records == {}
    assert status.attempt(jobs_of(factory_lab, "simulate")[0]) is None
    for job in jobs_of(factory_lab, "simulate"):
        assert status.state(job) is JobState.PENDING
    for job in jobs_of(factory_lab, "stats") + jobs_of(factory_lab, "plot", "report"):
        assert status.state(job) is JobState.WAITING
    assert read_status(view.lab, None).states == status.states
    assert status.log_paths(jobs_of(factory_lab, "simulate")[0]) == {}


def test_states_follow_the_store(view, factory_lab, base):
    lab_id = view.lab.meta.lab_id
    simulate = jobs_of(factory_lab, "simulate")
    stats = jobs_of(factory_lab, "stats")
    # stats[i] reads the simulate job of the same parameters, not simulate[i]
    reads = {s: view.lab.jobs[s].inputs[0].job for s in stats}
    for job in simulate[:-1]:
        record_attempt(base, lab_id, job, outputs={"samples.csv": "x\n"}, stdout="hello\n")
    record_attempt(base, lab_id, simulate[-1], status="failed", exit_code=3, reason="exit 3")
    done_stats = next(s for s in stats if reads[s] != simulate[-1])
    record_attempt(base, lab_id, done_stats, outputs={"stats.json": "{}"})
    status = read_status(view.lab, base)
    assert status.executed
    for job in simulate[:-1]:
        assert status.state(job) is JobState.SUCCEEDED
    assert status.state(simulate[-1]) is JobState.FAILED
    for job in stats:
        if job == done_stats:
            expected = JobState.SUCCEEDED
        elif reads[job] == simulate[-1]:
            expected = JobState.BLOCKED
        else:
            expected = JobState.PENDING
        assert status.state(job) is expected, job
    aggregate = jobs_of(factory_lab, "aggregate")[0]
    assert status.state(aggregate) is JobState.BLOCKED
    failed = status.attempt(simulate[-1])
    assert failed is not None
    assert status.attempts[simulate[-1]] == failed
    assert set(status.attempts) == {*simulate, done_stats}
    assert (failed.status, failed.exit_code, failed.reason, failed.host) == (
        "failed",
        3,
        "exit 3",
        "testhost",
    )
    assert failed.duration == pytest.approx(1.5)
    logs = status.log_paths(simulate[0])
    assert set(logs) == {"stdout", "stderr"}
    assert logs["stdout"].read_text() == "hello\n"
    counts = status.counts(simulate)
    assert (counts[JobState.SUCCEEDED], counts[JobState.FAILED]) == (5, 1)


@pytest.mark.parametrize("indexed", ["no index", "index and a tail", "index of all"])
def test_a_snapshot_of_some_jobs_agrees_with_the_whole_one(view, factory_lab, base, indexed):
    """``read_status(only=...)`` (``show job``) reads the same facts for fewer jobs: every
    job's state and reason are those of the snapshot of every job, run dependencies
    included — with no ``completions.index``, with one that covers part of the log (records
    appended since), and with one that covers all of it."""
    lab_id = view.lab.meta.lab_id
    simulate = jobs_of(factory_lab, "simulate")
    for job in simulate[:-2]:
        record_attempt(base, lab_id, job, outputs={"samples.csv": "x\n"})
    if indexed == "index and a tail":
        Store.existing(base).index_completions()
    record_attempt(base, lab_id, simulate[-2], status="failed", exit_code=3, reason="exit 3")
    record_attempt(base, lab_id, simulate[1], outputs={"samples.csv": "x\n"})
    (base / "outputs" / simulate[1] / "out" / "samples.csv").unlink()  # damaged
    stats = jobs_of(factory_lab, "stats")
    record_attempt(base, lab_id, stats[0], outputs={"stats.json": "{}"})
    if indexed == "index of all":
        Store.existing(base).index_completions()
    assert (base / "completions.index").exists() == (indexed != "no index")
    with hold_attempt(base, simulate[-1]):
        whole = read_status(view.lab, base)
        for job in view.lab.jobs:
            part = read_status(view.lab, base, only=[job])
            assert part.state(job) is whole.state(job), job
            assert part.reason(job) == whole.reason(job), job
            assert part.attempt(job) == whole.attempt(job), job
            assert part.executed
    assert len({whole.state(job) for job in view.lab.jobs}) >= 5
    assert set(read_status(view.lab, base, only=[simulate[0]]).states) == {simulate[0]}


def test_running_job(view, factory_lab, base):
    job = jobs_of(factory_lab, "simulate")[0]
    with hold_attempt(base, job):
        assert read_status(view.lab, base).state(job) is JobState.RUNNING
    assert read_status(view.lab, base).state(job) is JobState.PENDING


def test_jobs_of_other_labs_are_ignored(view, base):
    record_attempt(base, "otherlab", "0" * 32 + "-elsewhere")
    status = read_status(view.lab, base)
    assert not status.executed
    assert "0" * 32 + "-elsewhere" not in status.states


def test_a_damaged_store_is_a_warning_not_an_error(view, factory_lab, base, caplog):
    job = jobs_of(factory_lab, "simulate")[0]
    record_attempt(base, view.lab.meta.lab_id, job, outputs={"samples.csv": "x\n"})
    with (base / "completions.jsonl").open("a") as f:
        f.write('{"job": "torn')
    assert read_status(view.lab, base).state(job) is JobState.SUCCEEDED
    (base / "repx-store.json").write_text(json.dumps({"format": "repx-store/99"}))
    with caplog.at_level(logging.WARNING, logger="repx"):
        status = read_status(view.lab, base)
    assert status.state(job) is JobState.PENDING
    assert "cannot read the output store" in caplog.text


def test_find_base(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_base(None, None) == tmp_path / "repx-runs"
    assert find_base(tmp_path / "b", None) == tmp_path / "b"
    config = tmp_path / "config"
    monkeypatch.setenv("REPX_CONFIG_DIR", str(config))
    config.mkdir()
    (config / "config.toml").write_text(
        'default_target = "t"\n[targets.t]\nbase = "/srv/t"\n[targets.u]\nbase = "/srv/u"\n'
    )
    assert str(find_base(None, None)) == "/srv/t"
    assert str(find_base(None, "u")) == "/srv/u"
    with pytest.raises(UsageError, match="unknown target 'v'"):
        find_base(None, "v")
    (config / "config.toml").write_text("not toml [")
    assert find_base(None, None) == tmp_path / "repx-runs"  # a warning, not an error
    with pytest.raises(UsageError, match="invalid TOML"):
        find_base(None, "t")
