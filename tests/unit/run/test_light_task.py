"""Light SLURM tasks: one precomputed job run without pydantic (repx.run.light_task).

The same lifecycle as the full task (repx.run.slurm_task -> repx.run.job.run_job): the
records it writes validate as the store's JobResult and match the full lifecycle's, every
REPX_TEST_SIGNAL_AT phase ends as it does there, and what it does not cover is handed to
the full task.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx import process
from repx.config import RuntimeKind
from repx.lab.loader import open_lab
from repx.run import slurm_light, slurm_task
from repx.run.runtime import Runtime
from repx.run.slurm_models import TaskManifest, manifest_json
from repx.run.spec import make_spec
from repx.run.store import Store
from repx.run.store_models import JobResult

LONG = ': > "$out/ran"\nexec /bin/sleep 30'
QUICK_OK = ': > "$out/ran"\ncat "$params" > "$out/result.json"'
QUICK_FAIL = ': > "$out/ran"\necho oops >&2\nexit 3'
NO_OUTPUT = ': > "$out/ran"'


def _setup(tmp_path, script, *, base="base"):
    stage = StageSpec("s", params=("seed",), script=script)  # declares $out/result.json
    runs = (RunSpec("one", parameters={"seed": [1]}, stages=(stage,)),)
    root = tmp_path / "lab"
    lab = open_lab(root if root.exists() else write_lab(root, runs).root)
    store = Store.open(tmp_path / base)
    runtime = Runtime(
        kind=RuntimeKind.NATIVE,
        path=str(lab.root / lab.meta.host_tools / "bin"),
        outputs=str(store.outputs),
    )
    [spec] = [make_spec(lab, job, store.outputs) for job in lab.jobs]
    manifest = tmp_path / f"{base}.json"
    manifest.write_text(
        manifest_json(TaskManifest(base=str(store.root), runtime=runtime, tasks={"0": (spec,)}))
    )
    tasks = tmp_path / f"{base}.tasks"
    tasks.write_bytes(
        slurm_light.tasks_file(
            {0: spec},
            runtime,
            base=str(store.root),
            python=sys.executable,
            manifest=str(manifest),
            store_probe=None,
        )
    )
    return store, runtime, spec, tasks, manifest


def _light(tasks, phase="", pass_fds=()):
    env = dict(os.environ, REPX_TEST_SIGNAL_AT=phase)
    return subprocess.run(
        [*slurm_light.batch_line(sys.executable, tasks), "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        pass_fds=pass_fds,
    )


def _records(store):
    return [json.loads(x) for x in store.completions.read_text().splitlines()]


def _tree(store, job):
    """Every file of the committed attempt -> its content (result.json parsed)."""
    root = store.output_dir(job)
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            rel = os.fspath(path.relative_to(root))
            text = path.read_text()
            found[rel] = (
                json.loads(text) if rel.endswith("result.json") and "repx/" in rel else text
            )
    return found


_VARYING = ("start", "end", "attempt", "cpu_seconds", "max_rss_kib")


@pytest.mark.parametrize(
    ("script", "code", "status"),
    [(QUICK_OK, 0, "succeeded"), (QUICK_FAIL, 1, "failed"), (NO_OUTPUT, 1, "failed")],
)
def test_records_what_the_full_lifecycle_records(tmp_path, script, code, status):
    store, _, spec, tasks, _ = _setup(tmp_path, script)
    done = _light(tasks)
    assert done.returncode == code, done.stderr
    full_store, _, full_spec, _, full_manifest = _setup(tmp_path, script, base="full")
    assert slurm_task.main([str(full_manifest), "0"]) == code
    assert spec.job == full_spec.job
    [light], [full] = _records(store), _records(full_store)
    assert light["status"] == status
    # the same model, every field: only times, the nonce and the measured usage differ
    assert JobResult.model_validate(light).model_dump(exclude=set(_VARYING)) == (
        JobResult.model_validate(full).model_dump(exclude=set(_VARYING))
    )
    assert light["cpu_seconds"] is not None and light["max_rss_kib"] > 0
    assert JobResult.model_validate_json(
        (store.repx_dir(spec.job) / "result.json").read_bytes()
    ) == JobResult.model_validate(light)
    # the same files in the committed attempt (paths inside name each store)
    light_tree, full_tree = _tree(store, spec.job), _tree(full_store, spec.job)
    for tree in (light_tree, full_tree):
        result = tree.pop("repx/result.json")
        assert {k: result[k] for k in ("job", "status", "exit_code", "reason")} == {
            k: light[k] for k in ("job", "status", "exit_code", "reason")
        }
    assert light_tree == full_tree
    assert os.listdir(store.work) == []
    # run again: a success is found committed (not run), a failure runs again
    again = _light(tasks)
    assert again.returncode == code
    assert len(_records(store)) == (1 if code == 0 else 2)


def _assert_clean(store, job):
    assert os.listdir(store.work) == []
    assert not store.out_dir(job).exists()
    assert (store.repx_dir(job) / "FAIL").exists()
    assert process.holders(str(store.locks / f"{job}.lock"), f"REPX_JOB_ID={job}") == []
    [record] = _records(store)
    JobResult.model_validate(record)
    return record


@pytest.mark.parametrize("phase", ["waiting", "locked", "prepared"])
def test_stop_before_the_spawn_records_it_not_started(tmp_path, phase):
    store, _, spec, tasks, _ = _setup(tmp_path, LONG)
    done = _light(tasks, phase)
    assert done.returncode == 1, done.stderr
    record = _assert_clean(store, spec.job)
    assert record["status"] == "interrupted"
    assert record["reason"] == "interrupted before it started"
    assert record["exit_code"] is None
    assert not (store.output_dir(spec.job) / "failed-out" / "ran").exists()


@pytest.mark.parametrize("phase", ["spawned", "running"])
def test_stop_during_or_after_the_spawn_reaches_the_job(tmp_path, phase):
    store, _, spec, tasks, _ = _setup(tmp_path, LONG)
    done = _light(tasks, phase)
    assert done.returncode == 1, done.stderr
    record = _assert_clean(store, spec.job)
    assert record["status"] == "interrupted" and record["reason"] == "interrupted"
    assert record["exit_code"] == -signal.SIGTERM
    assert record["end"] - record["start"] < 30


@pytest.mark.parametrize("phase", ["exited", "committing"])
def test_stop_after_the_job_exited(tmp_path, phase):
    store, _, spec, tasks, _ = _setup(tmp_path, QUICK_OK)
    done = _light(tasks, phase)
    assert done.returncode == 0, done.stderr
    assert store.read_index().succeeded(spec.job)
    assert os.listdir(store.work) == []
    store, _, spec, tasks, _ = _setup(tmp_path / "2", QUICK_FAIL)
    done = _light(tasks, phase)
    assert done.returncode == 1, done.stderr
    record = _assert_clean(store, spec.job)
    expected = {"exited": "interrupted", "committing": "failed"}[phase]
    assert record["status"] == expected and record["exit_code"] == 3


def test_the_job_holds_its_lock(tmp_path):
    store, _, spec, tasks, _ = _setup(tmp_path, LONG)
    proc = subprocess.Popen(
        [*slurm_light.batch_line(sys.executable, tasks), "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        while not (store.work.exists() and any(store.work.glob("*/out/ran"))):
            assert proc.poll() is None
            time.sleep(0.01)
        holders = process.holders(str(store.locks / f"{spec.job}.lock"), f"REPX_JOB_ID={spec.job}")
        assert holders  # the job's own process has the lock's file open
        assert store.is_locked(spec.job)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert _records(store)[0]["status"] == "interrupted"


def test_hands_over_to_the_full_task(tmp_path):
    # another process holds the job: the full task waits for it (here: stopped while waiting)
    store, _, spec, tasks, _ = _setup(tmp_path, QUICK_OK)
    lock = store.try_lock(spec.job)
    assert lock is not None
    try:
        done = _light(tasks, "waiting")
    finally:
        lock.release()
    assert done.returncode == 1, done.stderr
    assert not store.completions.exists()
    # a node without the lab: the full task says so
    header, _, rest = tasks.read_bytes().partition(b"\n")
    data = json.loads(header)
    data["need"]["dirs"] = [str(tmp_path / "elsewhere")]
    tasks.write_bytes(json.dumps(data).encode() + b"\n" + rest)
    done = _light(tasks)
    assert done.returncode == 0, done.stderr  # the full task ran it (the lab is there)
    assert _records(store)[0]["status"] == "succeeded"


def test_a_bwrap_command_line_is_the_runtime_s(tmp_path):
    store, _, spec, _, _ = _setup(tmp_path, QUICK_OK)
    bwrap = Runtime(kind=RuntimeKind.BWRAP, path="/tools", outputs=str(store.outputs), bwrap="/b")
    token = "/.repx-attempt-0123"
    entry = slurm_light.entry(spec, bwrap, token)
    work = Path(store.work / f"{spec.job}.abc")
    argv, env, cwd = bwrap.command(spec, work)
    assert [a.replace(token, os.fspath(work)) for a in entry["argv"]] == argv
    assert {k: v.replace(token, os.fspath(work)) for k, v in entry["env"].items()} == env
    assert entry["cwd"].replace(token, os.fspath(work)) == cwd


def test_which_jobs_run_light(tmp_path):
    _store, runtime, spec, _, _ = _setup(tmp_path, QUICK_OK)
    assert slurm_light.why_not_light(spec, runtime, None) is None
    podman = runtime.model_copy(update={"kind": RuntimeKind.PODMAN})
    assert slurm_light.why_not_light(spec, podman, None) == "runtime podman"
    gathered = spec.model_copy(update={"gathers": {"x": ()}})
    assert slurm_light.why_not_light(gathered, runtime, None) == "a gathered input"


def test_imports_the_standard_library_only():
    src = os.path.dirname(os.path.dirname(os.path.dirname(slurm_light.PROGRAM)))
    code = (
        f"import sys; sys.path.insert(0, {src!r}); import repx.run.light_task\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('pydantic', 'typing', 'subprocess')]\n"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-I", "-S", "-c", code], check=True, timeout=60)


def test_the_job_gets_its_streams_and_the_lock_only_and_default_sigpipe(tmp_path):
    script = (
        '/bin/ls /proc/self/fd > "$out/fds"\n'
        '/bin/grep SigIgn /proc/self/status > "$out/ignored"\n'
        'cat "$params" > "$out/result.json"'
    )
    store, _, spec, tasks, _ = _setup(tmp_path, script)
    stray = os.open(os.devnull, os.O_RDONLY)  # inherited by the task, as from slurmstepd
    try:
        done = _light(tasks, pass_fds=(stray,))
    finally:
        os.close(stray)
    assert done.returncode == 0, done.stderr
    fds = (store.out_dir(spec.job) / "fds").read_text().split()
    assert str(stray) not in fds  # (the task keeps it open: it is the same number there)
    assert len(fds) <= 5  # 0-2, the lock, ls's own directory
    mask = int((store.out_dir(spec.job) / "ignored").read_text().split()[1], 16)
    assert not mask & (1 << (signal.SIGPIPE - 1))
