"""SIGTERM at every phase of a job run to completion (`python -m repx.run.job`, SLURM tasks).

The signal is landed deterministically: ``REPX_TEST_SIGNAL_AT=<phase>`` makes the wrapper
send itself SIGTERM at exactly that point of the lifecycle (a real signal to a real
process). Whatever the phase, the job ends recorded -- interrupted, unless it had
succeeded or its commit had begun -- and nothing half-done stays behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx import process
from repx.config import RuntimeKind
from repx.lab.loader import open_lab
from repx.run.job import JobTask
from repx.run.runtime import Runtime
from repx.run.slurm_models import TaskManifest, manifest_json
from repx.run.spec import make_spec
from repx.run.store import Store

LONG = ': > "$out/ran"\nexec /bin/sleep 30'
QUICK_OK = ': > "$out/ran"\ncat "$params" > "$out/result.json"'
QUICK_FAIL = ': > "$out/ran"\nexit 3'


def _setup(tmp_path, script, seeds=(1,)):
    runs = (
        RunSpec(
            "one",
            parameters={"seed": list(seeds)},
            stages=(StageSpec("s", params=("seed",), script=script),),
        ),
    )
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    store = Store.open(tmp_path / "base")
    runtime = Runtime(
        kind=RuntimeKind.NATIVE,
        path=str(lab.root / lab.meta.host_tools / "bin"),
        outputs=str(store.outputs),
    )
    specs = [make_spec(lab, job, store.outputs) for job in lab.jobs]
    return store, runtime, specs


def _run_job(tmp_path, store, runtime, spec, phase):
    task = tmp_path / "task.json"
    task.write_text(JobTask(spec=spec, runtime=runtime, base=str(store.root)).model_dump_json())
    env = dict(os.environ, REPX_TEST_SIGNAL_AT=phase)
    return subprocess.run(
        [sys.executable, "-m", "repx.run.job", str(task)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _assert_clean(store, job):
    """Committed whole: no attempt left in .work, no out/ of a failure, no process left."""
    assert os.listdir(store.work) == []
    assert not store.out_dir(job).exists()
    assert (store.repx_dir(job) / "FAIL").exists()
    assert process.holders(str(store.locks / f"{job}.lock"), f"REPX_JOB_ID={job}") == []
    [record] = [json.loads(x) for x in store.completions.read_text().splitlines()]
    return record


@pytest.mark.parametrize("phase", ["waiting", "locked", "prepared"])
def test_stop_before_the_spawn_records_it_not_started(tmp_path, phase):
    store, runtime, [spec] = _setup(tmp_path, LONG)
    done = _run_job(tmp_path, store, runtime, spec, phase)
    assert done.returncode == 1, done.stderr
    record = _assert_clean(store, spec.job)
    assert record["status"] == "interrupted"
    assert record["reason"] == "interrupted before it started"
    assert record["exit_code"] is None
    assert json.loads(done.stdout)["attempt"] == record["attempt"]
    assert not (store.output_dir(spec.job) / "failed-out" / "ran").exists()  # never ran


@pytest.mark.parametrize("phase", ["spawned", "running"])
def test_stop_during_or_after_the_spawn_reaches_the_job(tmp_path, phase):
    store, runtime, [spec] = _setup(tmp_path, LONG)
    done = _run_job(tmp_path, store, runtime, spec, phase)
    assert done.returncode == 1, done.stderr
    record = _assert_clean(store, spec.job)
    # the job's 30 s sleep was ended by our SIGTERM, not waited for
    assert record["status"] == "interrupted" and record["reason"] == "interrupted"
    assert record["exit_code"] == -signal.SIGTERM
    assert record["end"] - record["start"] < 30


@pytest.mark.parametrize("phase", ["exited", "committing"])
def test_stop_after_the_job_exited(tmp_path, phase):
    """A job that succeeded keeps its result. One that failed is interrupted when the stop
    came before its outcome was settled (the same scancel may have ended it); once the
    commit has begun, the outcome stands and the commit completes."""
    store, runtime, [spec] = _setup(tmp_path, QUICK_OK)
    done = _run_job(tmp_path, store, runtime, spec, phase)
    assert done.returncode == 0, done.stderr
    assert store.read_index().succeeded(spec.job)
    assert (store.out_dir(spec.job) / "result.json").exists()
    assert os.listdir(store.work) == []

    store, runtime, [spec] = _setup(tmp_path / "2", QUICK_FAIL)
    done = _run_job(tmp_path, store, runtime, spec, phase)
    assert done.returncode == 1, done.stderr
    record = _assert_clean(store, spec.job)
    expected = {"exited": "interrupted", "committing": "failed"}[phase]
    assert record["status"] == expected and record["exit_code"] == 3


def test_stop_while_another_process_holds_the_job(tmp_path):
    """A stop while waiting for the lock: nothing recorded (the holder runs the job), no
    traceback, exit 1 -- the handler is in place before the first lock is tried."""
    store, runtime, [spec] = _setup(tmp_path, QUICK_OK)
    lock = store.try_lock(spec.job)
    assert lock is not None
    try:
        done = _run_job(tmp_path, store, runtime, spec, "waiting")
    finally:
        lock.release()
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "interrupted" and result["attempt"] == ""
    assert not store.completions.exists()
    assert os.listdir(store.work) == []


def test_scancel_of_a_bundle_records_every_job(tmp_path):
    """A SLURM task running a bundle of two jobs is stopped while the first runs: the first
    is interrupted, the second recorded as interrupted before it started."""
    store, runtime, specs = _setup(tmp_path, LONG, seeds=(1, 2))
    manifest = tmp_path / "m.json"
    manifest.write_text(
        manifest_json(
            TaskManifest(base=str(store.root), runtime=runtime, tasks={"0": tuple(specs)})
        )
    )
    done = subprocess.run(
        [sys.executable, "-m", "repx.run.slurm_task", str(manifest), "0"],
        capture_output=True,
        text=True,
        env=dict(os.environ, REPX_TEST_SIGNAL_AT="running"),
        timeout=60,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    records = [json.loads(x) for x in store.completions.read_text().splitlines()]
    assert [(r["job"], r["status"], r["reason"]) for r in records] == [
        (specs[0].job, "interrupted", "interrupted"),
        (specs[1].job, "interrupted", "interrupted before it started"),
    ]
    assert os.listdir(store.work) == []
