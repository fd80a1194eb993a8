"""Node-local lab copies: unpacked once per node under a lock, by real racing processes.

The racers are separate Python processes (``CHILD``) calling
:func:`repx.run.node_local.ensure_copy`; each logs every unpack it starts into a shared
file, so "exactly one unpack" is counted, not inferred. A killed unpacker is stopped at a
known point (it tells the test, then waits on its stdin) and killed with SIGKILL.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx.config import ArtifactStore, RuntimeKind
from repx.errors import UsageError
from repx.lab import archive
from repx.lab.loader import LAB_METADATA, open_lab
from repx.lab.models import ScatterGather
from repx.run import node_local, scatter, slurm_task
from repx.run.events import RunPlanned
from repx.run.node_local import (
    MARKER_SUFFIX,
    NodeLocalError,
    ensure_copy,
    node_local_lab,
    read_marker,
    relocate_runtime,
    relocate_spec,
    stage_archive,
)
from repx.run.reporter import RecordingReporter
from repx.run.runtime import Runtime
from repx.run.scatter_slurm import on_slurm
from repx.run.slurm_models import TaskManifest, manifest_json
from repx.run.slurm_resources import SlurmResources
from repx.run.spec import JobSpec, Pieces, make_spec
from repx.run.store import Store
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab

#: One racer: ``CHILD ARCHIVE ROOT LAB_ID LOG MODE``. MODE ``race``: say "ready", unpack
#: if needed, print the result; ``kill-extract`` / ``kill-marker``: stop (tell the test,
#: then block on stdin) after the archive is extracted into the temporary directory /
#: after the copy is renamed into place but before its marker is written.
CHILD = r"""
import json, os, sys
from pathlib import Path
from repx.lab import archive
from repx.run import node_local

archive_path, root, lab_id, log, mode = sys.argv[1:6]
real_unpack, real_extract, real_write = archive.unpack_to, archive._extract, node_local._write_atomic

def counted_unpack(path, final):
    with open(log, "a") as f:
        f.write(f"{os.getpid()}\n")
    return real_unpack(path, final)

def stopped(what):
    print(what, flush=True)
    sys.stdin.read()

def extract_then_stop(path, dest):
    real_extract(path, dest)
    stopped(f"extracted {dest}")

def write_then_stop(path, text):
    stopped("renamed")
    real_write(path, text)

archive.unpack_to = counted_unpack
if mode == "kill-extract":
    archive._extract = extract_then_stop
elif mode == "kill-marker":
    node_local._write_atomic = write_then_stop
print("ready", flush=True)
copy = node_local.ensure_copy(Path(archive_path), Path(root), lab_id)
print(json.dumps({"pid": os.getpid(), "path": str(copy.path), "unpacked": copy.unpacked}))
"""


def _child(archive_path: Path, root: Path, lab_id: str, log: Path, mode: str) -> subprocess.Popen:
    argv = [sys.executable, "-c", CHILD, str(archive_path), str(root), lab_id, str(log), mode]
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


@pytest.fixture
def lab_archive(tmp_path):
    """A factory lab, its archive and its lab id."""
    lab = open_lab(write_lab(tmp_path / "lab").root)
    out = tmp_path / "shared" / "lab.tar"
    archive.write(lab.root, out)
    return lab, out


def _listing(root: Path) -> list[tuple[str, str, int]]:
    return [(m.name, m.kind, m.size) for m in archive.members(root)]


def _blocked_waiters(lock: Path) -> int:
    """flock(2) requests waiting on ``lock`` (``->`` lines of /proc/locks)."""
    inode = f":{os.stat(lock).st_ino} "
    lines = Path("/proc/locks").read_text().splitlines()
    return sum(1 for line in lines if "->" in line and "FLOCK" in line and inode in line)


def test_six_racing_processes_unpack_once(tmp_path, lab_archive):
    lab, out = lab_archive
    lab_id = lab.meta.lab_id
    root, log = tmp_path / "scratch", tmp_path / "unpacks.log"
    root.mkdir()
    lock = root / f"{lab_id}.lock"
    holder = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(holder, fcntl.LOCK_EX)  # the racers all queue behind this
    racers = [_child(out, root, lab_id, log, "race") for _ in range(6)]
    try:
        for racer in racers:
            assert racer.stdout is not None and racer.stdout.readline() == "ready\n"
        # every racer is blocked in flock on the lock file before any may go (bounded wait
        # for a state /proc/locks shows, not a timing assumption)
        deadline = time.monotonic() + 60
        while _blocked_waiters(lock) < len(racers) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert _blocked_waiters(lock) == len(racers)
        assert not (root / lab_id).exists()
    finally:
        os.close(holder)  # releases the lock: the race starts
    results = []
    for racer in racers:
        stdout, _ = racer.communicate(timeout=120)
        assert racer.returncode == 0
        results.append(json.loads(stdout.splitlines()[-1]))
    unpackers = [r["pid"] for r in results if r["unpacked"]]
    assert len(unpackers) == 1
    assert log.read_text().split() == [str(unpackers[0])]  # one unpack started, no other
    marker = read_marker(root / f"{lab_id}{MARKER_SUFFIX}")
    assert marker is not None and marker.pid == unpackers[0] and marker.lab_id == lab_id
    assert {r["path"] for r in results} == {str(root / lab_id)}
    assert _listing(root / lab_id) == _listing(lab.root)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [lab_id, f"{lab_id}.lock", f"{lab_id}{MARKER_SUFFIX}"]
    )
    # a later task only looks
    assert ensure_copy(out, root, lab_id).unpacked is False


def _killed_at(tmp_path: Path, out: Path, root: Path, lab_id: str, mode: str) -> str:
    """Start a racer in ``mode``, wait for it to stop where it says, SIGKILL it."""
    racer = _child(out, root, lab_id, tmp_path / "unpacks.log", mode)
    assert racer.stdout is not None
    assert racer.stdout.readline() == "ready\n"
    said = racer.stdout.readline().strip()
    lock = os.open(root / f"{lab_id}.lock", os.O_RDWR)
    try:
        with pytest.raises(BlockingIOError):  # it holds the lock while it unpacks
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(lock)
    racer.send_signal(signal.SIGKILL)
    racer.wait(timeout=60)
    assert racer.stdin is not None and racer.stdout is not None
    racer.stdin.close()
    racer.stdout.close()
    return said


def test_a_killed_unpack_leaves_a_temporary_directory_the_next_one_removes(tmp_path, lab_archive):
    lab, out = lab_archive
    lab_id = lab.meta.lab_id
    root = tmp_path / "scratch"
    said = _killed_at(tmp_path, out, root, lab_id, "kill-extract")
    temporary = Path(said.removeprefix("extracted "))
    assert temporary.parent == root and temporary.name.startswith(".")
    assert (temporary / LAB_METADATA).is_file()  # extracted, never renamed
    assert not (root / lab_id).exists()
    copy = ensure_copy(out, root, lab_id)
    assert copy.unpacked
    assert not temporary.exists()
    assert _listing(copy.path) == _listing(lab.root)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [lab_id, f"{lab_id}.lock", f"{lab_id}{MARKER_SUFFIX}"]
    )


def test_a_copy_without_its_marker_is_unpacked_again(tmp_path, lab_archive):
    lab, out = lab_archive
    lab_id = lab.meta.lab_id
    root = tmp_path / "scratch"
    assert _killed_at(tmp_path, out, root, lab_id, "kill-marker") == "renamed"
    assert (root / lab_id / LAB_METADATA).is_file()
    assert not (root / f"{lab_id}{MARKER_SUFFIX}").exists()
    (root / lab_id / "leftover").write_text("from the killed task")
    copy = ensure_copy(out, root, lab_id)
    assert copy.unpacked and not (copy.path / "leftover").exists()
    assert _listing(copy.path) == _listing(lab.root)
    assert [p.name for p in root.iterdir() if p.name.startswith(".")] == []


def test_a_marker_of_another_lab_or_a_missing_lab_file_counts_as_incomplete(tmp_path, lab_archive):
    lab, out = lab_archive
    lab_id = lab.meta.lab_id
    root = tmp_path / "scratch"
    assert ensure_copy(out, root, lab_id).unpacked
    marker = root / f"{lab_id}{MARKER_SUFFIX}"
    data = json.loads(marker.read_text())
    marker.write_text(json.dumps({**data, "lab_id": "other"}))
    assert ensure_copy(out, root, lab_id).unpacked
    (root / lab_id / LAB_METADATA).unlink()
    assert ensure_copy(out, root, lab_id).unpacked
    marker.write_text("{torn")
    assert ensure_copy(out, root, lab_id).unpacked
    assert not ensure_copy(out, root, lab_id).unpacked


def test_a_thinned_out_copy_is_unpacked_again_when_a_file_to_run_is_gone(tmp_path, lab_archive):
    lab, out = lab_archive
    lab_id = lab.meta.lab_id
    root = tmp_path / "scratch"
    store = Store.open(tmp_path / "base")
    specs = [make_spec(lab, job, store.outputs) for job in lab.jobs]
    expect = node_local.lab_paths(specs, str(lab.root))
    assert expect and all(rel.startswith("jobs/") for rel in expect)
    assert ensure_copy(out, root, lab_id, expect).unpacked
    assert not ensure_copy(out, root, lab_id, expect).unpacked
    (root / lab_id / expect[0]).unlink()  # e.g. a scratch cleaner (the marker stays)
    assert not ensure_copy(out, root, lab_id).unpacked  # not asked for: not looked at
    assert ensure_copy(out, root, lab_id, expect).unpacked
    assert (root / lab_id / expect[0]).exists()


def test_errors_are_one_line(tmp_path, lab_archive):
    lab, out = lab_archive
    with pytest.raises(NodeLocalError, match="is not readable on this node"):
        ensure_copy(tmp_path / "absent.tar", tmp_path / "scratch", lab.meta.lab_id)
    (tmp_path / "file").write_text("")
    with pytest.raises(NodeLocalError, match="cannot create it"):
        ensure_copy(out, tmp_path / "file" / "scratch", lab.meta.lab_id)
    with pytest.raises(NodeLocalError, match="not a lab id"):
        ensure_copy(out, tmp_path / "scratch", "../x")
    with pytest.raises(NodeLocalError, match="lacks jobs/none: rebuild it"):
        ensure_copy(out, tmp_path / "scratch", lab.meta.lab_id, ["jobs/none"])
    assert not (tmp_path / "scratch" / f"{lab.meta.lab_id}{MARKER_SUFFIX}").exists()


def test_stage_archive_writes_a_directory_lab_once(tmp_path, lab_archive):
    lab, out = lab_archive
    base = tmp_path / "base"
    staged = stage_archive(lab, lab.root, base)
    assert staged == base / "archives" / f"{lab.meta.lab_id}.tar"
    first = staged.stat()
    assert stage_archive(lab, lab.root, base).stat().st_mtime_ns == first.st_mtime_ns
    assert stage_archive(lab, out, base) == out  # an archive lab is read where it is


def test_relocation_moves_lab_paths_only(tmp_path):
    lab = open_lab(write_lab(tmp_path / "lab").root)
    store = Store.open(tmp_path / "base")
    job = next(j for j in lab.jobs if lab.jobs[j].inputs)
    spec = make_spec(lab, job, store.outputs)
    old, new = str(lab.root), "/scratch/copy"
    moved = relocate_spec(spec, old, new)
    assert moved.lab_root == new
    assert moved.executable == new + spec.executable[len(old) :]
    assert moved.parameters_file.startswith(new + "/")
    assert moved.inputs == spec.inputs  # outputs stay in the output store
    runtime = Runtime(
        kind=RuntimeKind.BWRAP,
        path=f"{old}/host-tools/x/bin",
        outputs=str(store.outputs),
        bwrap="/usr/bin/bwrap",
        store=f"{old}/store",
    )
    assert relocate_runtime(runtime, old, new).model_dump() == {
        **runtime.model_dump(),
        "path": f"{new}/host-tools/x/bin",
        "store": f"{new}/store",
    }
    # a sibling whose name starts like the lab's is not the lab
    assert node_local.relocate_path(old + "-other/x", old, new) == old + "-other/x"


def test_slurm_task_runs_jobs_from_the_node_local_copy(tmp_path, capsys):
    # each job writes the path it was started as: the copy's, not the lab's
    script = 'printf %s "$0" > "$out/result.json"'
    runs = (
        RunSpec("s", parameters={"i": [1, 2]}, stages=(StageSpec("w", ("i",), script=script),)),
    )
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    base = tmp_path / "base"
    store = Store.open(base)
    archive_path = stage_archive(lab, lab.root, base)
    scratch = tmp_path / "scratch"
    where = node_local_lab(lab, archive_path, scratch)
    specs = {lab.jobs[j].params["i"]: make_spec(lab, j, store.outputs) for j in lab.jobs}
    host_bin = lab.root / lab.meta.host_tools / "bin"
    runtime = Runtime(kind=RuntimeKind.NATIVE, path=str(host_bin), outputs=str(store.outputs))
    manifest = tmp_path / "m.json"
    manifest.write_text(
        manifest_json(
            TaskManifest(
                base=str(base),
                runtime=runtime,
                node_local=where,
                tasks={"0": (specs[1],), "1": (specs[2],)},
            )
        )
    )
    lab.root.rename(tmp_path / "moved-away")  # the nodes need only the archive
    assert slurm_task.main([str(manifest), "0"]) == 0
    assert slurm_task.main([str(manifest), "1"]) == 0
    err = capsys.readouterr().err
    copy = scratch / lab.meta.lab_id
    assert f"node-local copy {copy}, unpacked" in err
    assert f"node-local copy {copy}, reused" in err
    for spec in specs.values():
        ran = (store.out_dir(spec.job) / "result.json").read_text()
        assert ran == str(copy) + spec.executable[len(str(lab.root)) :]


def test_a_local_run_reads_the_lab_from_its_node_local_copy(tmp_path, monkeypatch):
    script = 'printf %s "$0" > "$out/result.json"'
    runs = (
        RunSpec("s", parameters={"i": [1, 2]}, stages=(StageSpec("w", ("i",), script=script),)),
    )
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    scratch, base = tmp_path / "scratch", tmp_path / "base"
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text(
        f'default_target = "ws"\n[targets.ws]\nnode_local_path = "{scratch}"\n'
    )
    monkeypatch.setenv("REPX_CONFIG_DIR", str(config))
    where = Location(lab=lab.root, base=base)
    # shared (the target's default): nothing is copied
    shared = RunOptions(
        where=Location(lab=lab.root, base=tmp_path / "shared"), runtime=RuntimeKind.NATIVE
    )
    assert run_lab(shared, RecordingReporter()).succeeded == 2
    assert not scratch.exists()
    reporter = RecordingReporter()
    options = RunOptions(
        where=where, runtime=RuntimeKind.NATIVE, artifact_store=ArtifactStore.NODE_LOCAL
    )
    summary = run_lab(options, reporter)
    assert summary.exit_code == 0 and summary.succeeded == 2
    copy = scratch / lab.meta.lab_id
    [plan] = reporter.of_type(RunPlanned)
    assert plan.node_local == str(copy) and plan.lab == str(lab.root)
    for job in lab.jobs:
        started_as = (base / "outputs" / job / "out" / "result.json").read_text()
        assert started_as == str(copy / lab.jobs[job].executables["main"].path)
    assert (base / "archives" / f"{lab.meta.lab_id}.tar").is_file()


def test_artifact_store_option_needs_a_node_local_path(tmp_path, monkeypatch):
    monkeypatch.setenv("REPX_CONFIG_DIR", str(tmp_path))
    lab = write_lab(tmp_path / "lab").root
    options = RunOptions(
        where=Location(lab=lab, base=tmp_path / "base"), artifact_store=ArtifactStore.NODE_LOCAL
    )
    with pytest.raises(UsageError, match="the default target has no node_local_path"):
        run_lab(options, RecordingReporter())


def test_scatter_step_tasks_make_sure_their_node_has_the_copy(tmp_path, lab_archive):
    lab, out = lab_archive
    layout = {
        "work_items": "items.json",
        "scatter": {"inputs": [], "outputs": {"work__items": "$out/items.json"}},
        "steps": {"one": {"inputs": {}, "outputs": {"v": "$out/v"}}},
        "step_order": ["one"],
        "sink": "one",
        "gather": {"inputs": {}},
    }
    exes = {"scatter": "/lab/s", "step-one": "/lab/one", "gather": "/lab/g"}
    spec = JobSpec(
        job="j",
        stage="s",
        lab_root="/lab",
        lab_id=lab.meta.lab_id,
        executable="/lab/s",
        parameters_file="/lab/p.json",
        pieces=Pieces(layout=ScatterGather.model_validate(layout), executables=exes),
    )
    where = node_local_lab(lab, out, tmp_path / "scratch")
    assert scatter._node_copy(on_slurm(spec, "python3", SlurmResources())) is None
    assert not (tmp_path / "scratch").exists()  # not asked for
    on_node = on_slurm(spec, "python3", SlurmResources(), where)
    assert on_node.pieces is not None and on_node.pieces.slurm is not None
    assert on_node.pieces.slurm.node_local == where
    assert scatter._node_copy(on_node) is None
    assert (tmp_path / "scratch" / lab.meta.lab_id / LAB_METADATA).is_file()
    gone = where.model_copy(update={"archive": str(tmp_path / "gone.tar"), "lab_id": "other"})
    broken = on_node.pieces.slurm.model_copy(update={"node_local": gone})
    problem = scatter._node_copy(
        on_node.model_copy(update={"pieces": on_node.pieces.model_copy(update={"slurm": broken})})
    )
    assert problem is not None and "not readable on this node" in problem
