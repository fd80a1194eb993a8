"""The per-job lifecycle, in-process and through `python -m repx.run.job`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from labfactory import RunSpec, StageSpec, write_lab
from repx.config import RuntimeKind
from repx.lab.loader import open_lab
from repx.run.job import JobTask, run_job
from repx.run.runtime import Runtime
from repx.run.spec import make_spec
from repx.run.store import Store
from repx.run.store_models import JobStatus


def _lab(tmp_path, script=None, outputs=("result.json",)):
    runs = (
        RunSpec(
            "one",
            parameters={"value": ["a b 'c' \"d\" $(e) `f`\nnext line"]},
            stages=(StageSpec("echo", params=("value",), outputs=outputs, script=script),),
        ),
    )
    factory = write_lab(tmp_path / "lab", runs)
    return open_lab(factory.root), factory.job_ids[0]


def _native(lab, store):
    return Runtime(
        kind=RuntimeKind.NATIVE,
        path=str(lab.root / lab.meta.host_tools / "bin"),
        outputs=str(store.outputs),
    )


def test_success_with_environment_and_parameters(tmp_path):
    script = (
        'cat "$params" > "$out/result.json"\n'
        'env > "$out/env.txt"\n'
        'pwd > "$out/pwd.txt"\n'
        "echo to-stdout; echo to-stderr >&2"
    )
    lab, job = _lab(tmp_path, script)
    store = Store.open(tmp_path / "base")
    result = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert result.status is JobStatus.SUCCEEDED and result.exit_code == 0
    out = store.out_dir(job)
    params = (lab.root / lab.jobs[job].parameters_file).read_bytes()
    assert (out / "result.json").read_bytes() == params
    env = dict(line.split("=", 1) for line in (out / "env.txt").read_text().splitlines())
    assert env["PATH"] == str(lab.root / lab.meta.host_tools / "bin")
    assert env["HOME"] == "/homeless-shelter" and env["TMPDIR"] == "/tmp"
    assert env["REPX_JOB_ID"] == job
    assert "PYTEST_CURRENT_TEST" not in env  # nothing of our environment leaks in
    assert (out / "pwd.txt").read_text().strip().endswith("/out")
    repx_dir = store.repx_dir(job)
    assert (repx_dir / "stdout.log").read_text() == "to-stdout\n"
    assert (repx_dir / "stderr.log").read_text() == "to-stderr\n"
    assert json.loads((repx_dir / "inputs.json").read_text()) == {}
    # run again: already committed, not executed again
    again = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert again.attempt == result.attempt


def test_nonzero_exit_and_missing_output(tmp_path):
    lab, job = _lab(tmp_path, "echo boom >&2; exit 7")
    store = Store.open(tmp_path / "base")
    result = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert result.status is JobStatus.FAILED and result.exit_code == 7
    assert result.reason == "exit status 7"
    assert not store.out_dir(job).exists()
    assert (store.repx_dir(job) / "stderr.log").read_text() == "boom\n"

    lab, job = _lab(tmp_path / "2", "true", outputs=("a.txt", "sub/b.txt"))
    store = Store.open(tmp_path / "2" / "base")
    result = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert result.status is JobStatus.FAILED and result.exit_code == 0
    assert result.reason == "declared output(s) missing: a.txt, sub/b.txt"
    # parent directories of declared outputs were prepared
    assert (store.output_dir(job) / "failed-out" / "sub").is_dir()


def test_killed_job_and_unstartable_executable(tmp_path):
    lab, job = _lab(tmp_path, "kill -9 $$")
    store = Store.open(tmp_path / "base")
    result = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert result.status is JobStatus.FAILED and result.reason == "killed by SIGKILL"
    assert result.exit_code == -9

    lab, job = _lab(tmp_path / "2", "true")
    os.chmod(lab.root / lab.jobs[job].executables["main"].path, 0o644)
    store = Store.open(tmp_path / "2" / "base")
    result = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert result.status is JobStatus.ERROR and result.exit_code is None
    assert "cannot start" in result.reason
    assert "cannot start" in (store.repx_dir(job) / "stderr.log").read_text()


def test_module_entry_point_runs_a_task_file(tmp_path):
    lab, job = _lab(tmp_path)
    store = Store.open(tmp_path / "base")
    task = JobTask(
        spec=make_spec(lab, job, store.outputs), runtime=_native(lab, store), base=str(store.root)
    )
    task_file = tmp_path / "task.json"
    task_file.write_text(task.model_dump_json())
    proc = subprocess.run(
        [sys.executable, "-m", "repx.run.job", str(task_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "succeeded"
    assert store.read_index().succeeded(job)
    usage = subprocess.run(
        [sys.executable, "-m", "repx.run.job"], capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2


def test_lock_is_free_when_the_job_ends_despite_its_background_process(tmp_path):
    """Job processes inherit the job's lock (so orphans of a killed repx keep it); when
    repx itself ends the job, the lock is free at once, not when the killed background
    process is finally gone."""
    lab, job = _lab(tmp_path, '/bin/sleep 30 &\ncat "$params" > "$out/result.json"')
    store = Store.open(tmp_path / "base")
    result = run_job(store, make_spec(lab, job, store.outputs), _native(lab, store))
    assert result.succeeded
    assert not store.is_locked(job)
