"""The job-state owner (repx.inspect.status): one snapshot that every command reads.

Each test here failed before the owner existed: a status read torn by a commit, blocked
propagation in job-id order, lock probes that wrote, damaged successes counted as done,
SLURM's CANCELLED taken over a task still committing under its lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repx
from fakeslurm import install
from labfactory import FactoryLab, RunSpec, StageSpec, write_lab
from repx.cli import app
from repx.config import RuntimeKind
from repx.inspect.status import JobState, read_status
from repx.lab.loader import open_lab
from repx.run.events import JobStarted
from repx.run.reporter import RecordingReporter
from repx.run.slurm_models import Submission, append_submission
from repx.run.store import Store
from repx.run.store_models import JobResult, JobStatus
from repx.services.run import Location, RunOptions, run_lab
from repx.services.status import lab_status
from storefake import hold_attempt, record_attempt

runner = CliRunner()


def chain_lab(root: Path) -> tuple[FactoryLab, str, str, str]:
    """a -> b -> c, written so that the manifest lists c, b, a (not topological)."""
    runs = (
        RunSpec(
            "chain",
            stages=(
                StageSpec("a", outputs=("a.txt",), script='echo a > "$out/a.txt"'),
                StageSpec("b", after=("a",), outputs=("b.txt",), script='echo b > "$out/b.txt"'),
                StageSpec("c", after=("b",), outputs=("c.txt",), script='echo c > "$out/c.txt"'),
            ),
        ),
    )
    factory = write_lab(root, runs)
    [a], [b], [c] = (factory.stage_jobs[("chain", s)] for s in "abc")
    path = factory.manifest_path("chain")
    manifest = json.loads(path.read_text())
    manifest["jobs"] = dict(reversed(list(manifest["jobs"].items())))
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    assert list(open_lab(root).runs["chain"].jobs) == [c, b, a]
    return factory, a, b, c


def fake_slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = install(tmp_path / "fake")
    monkeypatch.setenv("PATH", f"{fake.bin}:/usr/bin:/bin")
    return fake


def submit(base: Path, slurm_id: str, stage: str, job: str, submitted: float) -> None:
    Store.open(base).close()  # as `repx run` does before it submits
    append_submission(
        base,
        Submission(
            slurm_id=slurm_id, array=False, stage=stage, submitted=submitted, tasks={"0": (job,)}
        ),
    )


# -- blocked propagation ------------------------------------------------------------------


def test_blocked_follows_the_graph_not_the_job_order(tmp_path, monkeypatch):
    factory, a, b, c = chain_lab(tmp_path / "lab")
    base = tmp_path / "base"
    record_attempt(base, factory.lab_id, a, status="failed", exit_code=1, reason="exit 1")
    fake = fake_slurm(tmp_path, monkeypatch)
    now = time.time()
    submit(base, "2001", "b", b, now)
    submit(base, "2002", "c", c, now)
    fake.set_queue(["2001|2001|N/A|PENDING|Dependency", "2002|2002|N/A|PENDING|Dependency"])
    report = lab_status(Location(lab=factory.root, base=base))
    got = {e.id: e.status for e in report.jobs}
    assert got == {a: JobState.FAILED, b: JobState.BLOCKED, c: JobState.BLOCKED}
    view = read_status(open_lab(factory.root), base)  # what list/show/the API read
    assert {j: view.state(j) for j in (a, b, c)} == got


def test_run_dependencies_propagate(tmp_path):
    runs = (
        RunSpec("first", stages=(StageSpec("x"),)),
        RunSpec("hard", stages=(StageSpec("h"),), depends_on={"first": "hard"}),
        RunSpec("soft", stages=(StageSpec("s"),), depends_on={"first": "soft"}),
    )
    factory = write_lab(tmp_path / "lab", runs)
    lab = open_lab(factory.root)
    base = tmp_path / "base"
    [x], [h], [s] = factory.run_jobs["first"], factory.run_jobs["hard"], factory.run_jobs["soft"]
    view = read_status(lab, base)
    assert (view.state(x), view.state(h), view.state(s)) == (
        JobState.PENDING,
        JobState.WAITING,
        JobState.WAITING,
    )
    record_attempt(base, factory.lab_id, x, status="failed", exit_code=1)
    view = read_status(lab, base)
    # the runner blocks a hard dependent of a failed run; a soft one runs
    assert (view.state(h), view.state(s)) == (JobState.BLOCKED, JobState.PENDING)
    assert view.reason(h) == "run 'first' it depends on did not succeed"


# -- the torn read ------------------------------------------------------------------------


RANK = {
    JobState.PENDING: 0,
    JobState.WAITING: 0,
    JobState.RUNNING: 1,
    JobState.SUCCEEDED: 2,
}


def test_no_job_goes_backwards_while_a_run_commits(tmp_path):
    width = 150
    runs = (
        RunSpec(
            "sweep",
            parameters={"seed": list(range(width))},
            stages=(StageSpec("s", params=("seed",)),),
        ),
    )
    factory = write_lab(tmp_path / "lab", runs)
    lab = open_lab(factory.root)
    base = tmp_path / "base"
    Store.open(base).close()
    argv = [sys.executable, "-m", "repx", "run", "--lab", str(factory.root), "--base", str(base)]
    argv += ["--runtime", "native", "-j", "4", "--json"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    seen: dict[str, JobState] = {}
    backwards: list[str] = []
    snapshots = 0
    try:
        while True:
            ended = proc.poll() is not None
            view = read_status(lab, base)
            snapshots += 1
            for job in factory.job_ids:
                now = view.state(job)
                before = seen.get(job)
                if before is not None and RANK[now] < RANK[before]:
                    backwards.append(f"{job}: {before} -> {now}")
                seen[job] = now
            if ended:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert not backwards, f"{len(backwards)} of {width} jobs went backwards: {backwards[:5]}"
    assert set(seen.values()) == {JobState.SUCCEEDED}
    assert snapshots > 1


# -- inspection never writes --------------------------------------------------------------


def test_inspection_leaves_lock_files_untouched(factory_lab, tmp_path):
    base = tmp_path / "runs"
    held, stale, free = factory_lab.stage_jobs[("simulation", "simulate")][:3]
    store = Store.open(base)
    store.new_attempt(stale)  # left by a dead run: its lock is free
    (base / "locks" / f"{stale}.lock").write_text("pid 1 on elsewhere\n")
    lab = ["--lab", str(factory_lab.root), "--base", str(base)]
    with hold_attempt(base, held):
        locks = [base / "locks" / f"{job}.lock" for job in (held, stale)]
        before = [(lock.read_bytes(), lock.stat().st_mtime_ns) for lock in locks]
        for argv in (
            ["status", "--json"],
            ["list", "jobs", "--status", "running"],
            ["show", "job", held],
            ["show", "job", stale],
        ):
            result = runner.invoke(app, [*argv, *lab])
            assert result.exit_code == 0, result.output
        assert "running" in runner.invoke(app, ["show", "job", held, *lab]).output
        assert [(lock.read_bytes(), lock.stat().st_mtime_ns) for lock in locks] == before
    assert not (base / "locks" / f"{free}.lock").exists()  # a probe creates nothing
    store.close()


CONTEND = """
import sys
from pathlib import Path
from repx.run.store import Store
store = Store(Path(sys.argv[1]))
failed = 0
for _ in range(int(sys.argv[3])):
    lock = store.try_lock(sys.argv[2])
    if lock is None:
        failed += 1
    else:
        lock.release()
print(failed)
"""


def test_probes_never_make_a_try_lock_fail(tmp_path):
    store = Store.open(tmp_path / "base")
    job = "0" * 32 + "-s"
    store.try_lock(job).release()  # the lock file exists
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            store.is_locked(job)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        result = subprocess.run(
            [sys.executable, "-c", CONTEND, str(store.root), job, "3000"],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        stop.set()
        prober.join()
    assert result.stdout.strip() == "0"


# -- damaged successes ----------------------------------------------------------------------


def damage_out_deleted(out: Path) -> None:
    for path in sorted(out.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    out.rmdir()


def damage_output_deleted(out: Path) -> None:
    (out / "a.txt").unlink()


def damage_out_symlink(out: Path) -> None:
    moved = out.with_name("elsewhere")
    out.rename(moved)
    out.symlink_to(moved)


def damage_out_file(out: Path) -> None:
    damage_out_deleted(out)
    out.write_text("not a directory\n")


def damage_fail_marker(out: Path) -> None:
    (out.parent / "repx" / "SUCCESS").rename(out.parent / "repx" / "FAIL")


DAMAGES = {
    "out deleted": (damage_out_deleted, "out/ is missing"),
    "output deleted": (damage_output_deleted, "missing output a.txt"),
    "out symlink": (damage_out_symlink, "out/ is a symlink"),
    "out file": (damage_out_file, "out/ is not a directory"),
    "FAIL marker": (damage_fail_marker, "its committed attempt is marked FAIL"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_success_is_not_done_and_runs_again(damage, tmp_path):
    factory, a, b, c = chain_lab(tmp_path / "lab")
    base = tmp_path / "base"
    where = Location(lab=factory.root, base=base)

    def run() -> RecordingReporter:
        reporter = RecordingReporter()
        # verify=False: chain_lab reordered a manifest behind the integrity list's back
        options = RunOptions(where=where, runtime=RuntimeKind.NATIVE, verify=False)
        summary = run_lab(options, reporter)
        assert summary.exit_code == 0
        return reporter

    run()
    out = base / "outputs" / a / "out"
    make_damage, why = DAMAGES[damage]
    make_damage(out)
    (base / "outputs" / c / "out" / "c.txt").unlink()  # downstream not done either
    report = {e.id: e for e in lab_status(where).jobs}
    assert (report[a].status, report[a].reason) == (JobState.PENDING, why)
    assert report[b].status is JobState.SUCCEEDED
    assert (report[c].status, report[c].reason) == (JobState.PENDING, "missing output c.txt")
    result = runner.invoke(app, ["status", "--lab", str(factory.root), "--base", str(base)])
    assert f"pending: {a} ({why})" in result.output
    listed = runner.invoke(
        app, ["list", "jobs", "--json", "--lab", str(factory.root), "--base", str(base)]
    )
    rows = {j["id"]: j for j in json.loads(listed.stdout)["jobs"]}
    assert (rows[a]["status"], rows[a]["reason"]) == ("pending", why)
    shown = runner.invoke(app, ["show", "job", a, "--lab", str(factory.root), "--base", str(base)])
    assert f"pending ({why})" in shown.output
    api_job = repx.Lab.open(factory.root, base=base).job(a)
    assert (api_job.status, api_job.reason, api_job.succeeded) == ("pending", why, False)
    reporter = run()
    started = {e.job for e in reporter.of_type(JobStarted)}
    assert a in started and c in started
    assert (out / "a.txt").read_text() == "a\n" and not out.is_symlink()
    assert (base / "outputs" / a / "repx" / "SUCCESS").exists()
    assert not (base / "outputs" / a / "repx" / "FAIL").exists()
    assert {e.status for e in lab_status(where).jobs} == {JobState.SUCCEEDED}


# -- SLURM: the store's facts win -----------------------------------------------------------


def test_a_task_committing_under_its_lock_is_running_not_cancelled(tmp_path, monkeypatch):
    factory, a, _b, _c = chain_lab(tmp_path / "lab")
    base = tmp_path / "base"
    fake = fake_slurm(tmp_path, monkeypatch)
    submit(base, "3001", "a", a, time.time() - 5)
    fake.set_queue(["3001|3001|N/A|CANCELLED|None"])  # scancel: SIGTERM is being handled
    where = Location(lab=factory.root, base=base)
    store = Store.open(base)
    lock = store.lock(a)
    work, nonce = store.new_attempt(a)

    def state() -> tuple[JobState, str | None]:
        entry = next(e for e in lab_status(where).jobs if e.id == a)
        return entry.status, entry.reason

    assert state() == (JobState.RUNNING, None)
    # committed (renamed) but its record not appended yet, lock still held
    result = JobResult(
        job=a,
        status=JobStatus.INTERRUPTED,
        reason="interrupted",
        exit_code=-15,
        start=time.time() - 1,
        end=time.time(),
        host="h",
        runtime="native",
        lab_id=factory.lab_id,
        attempt=nonce,
    )
    append = store.append_completion
    store.append_completion = lambda _result: None  # type: ignore[method-assign]
    store.commit(a, work, result)
    store.append_completion = append  # type: ignore[method-assign]
    # committed: result.json (newer than the submission) wins, though its record is missing
    assert state() == (JobState.FAILED, "interrupted")
    lock.release()
    assert state() == (JobState.FAILED, "interrupted")
    store.append_completion(result)
    assert state() == (JobState.FAILED, "interrupted")
    store.close()


def test_a_cancelled_task_that_never_started_is_cancelled(tmp_path, monkeypatch):
    factory, a, b, c = chain_lab(tmp_path / "lab")
    base = tmp_path / "base"
    fake = fake_slurm(tmp_path, monkeypatch)
    submit(base, "4001", "a", a, time.time())
    submit(base, "4002", "b", b, time.time())
    fake.set_queue(["4001|4001|N/A|CANCELLED|None", "4002|4002|N/A|PENDING|Dependency"])
    got = {
        e.id: (e.status, e.slurm_id) for e in lab_status(Location(lab=factory.root, base=base)).jobs
    }
    assert got[a] == (JobState.CANCELLED, "4001")
    assert got[b] == (JobState.BLOCKED, "4002")
    assert got[c] == (JobState.BLOCKED, None)


# -- smaller --------------------------------------------------------------------------------


def test_status_refuses_a_directory_that_is_not_a_store(factory_lab, tmp_path):
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff")
    result = runner.invoke(app, ["status", "--lab", str(factory_lab.root), "--base", str(other)])
    assert result.exit_code == 2
    assert "is not a repx output store" in result.output
    assert "Traceback" not in result.output
    assert os.listdir(other) == ["cat.jpg"]


def test_resources_on_a_local_target_is_a_usage_error(factory_lab, tmp_path):
    resources = tmp_path / "resources.toml"
    resources.write_text("[defaults]\n")
    result = runner.invoke(
        app,
        [
            "run",
            "--lab",
            str(factory_lab.root),
            "--base",
            str(tmp_path / "base"),
            "--resources",
            str(resources),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "--resources applies to SLURM targets only" in result.output
    assert not (tmp_path / "base").exists()  # nothing ran
