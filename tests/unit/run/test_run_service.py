"""`run_lab` in-process on hand-written labs: planning, resume, waiting on another run."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx.config import RuntimeKind
from repx.run.events import JobFinished, JobStarted, JobWaiting, Notice, RunPlanned, RunSummary
from repx.run.reporter import RecordingReporter
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab
from repx.services.status import lab_status
from repx.slurm import SlurmUnavailableError


def options(lab, base, **kwargs):
    return RunOptions(
        where=Location(lab=lab, base=base), runtime=RuntimeKind.NATIVE, jobs=2, **kwargs
    )


def test_run_then_resume(factory_lab, tmp_path):
    base = tmp_path / "base"
    reporter = RecordingReporter()
    summary = run_lab(options(factory_lab.root, base), reporter)
    assert summary.exit_code == 0 and summary.succeeded == 14
    assert reporter.closed
    assert isinstance(reporter.events[0], RunPlanned)
    assert isinstance(reporter.events[-1], RunSummary)
    assert len(reporter.of_type(JobStarted)) == 14
    again = RecordingReporter()
    summary = run_lab(options(factory_lab.root, base), again)
    assert summary.cached == 14 and summary.succeeded == 0
    assert not again.of_type(JobStarted)
    status = lab_status(Location(lab=factory_lab.root, base=base))
    assert {e.status.value for e in status.jobs} == {"succeeded"}


def test_dry_run_creates_nothing(factory_lab, tmp_path):
    summary = run_lab(options(factory_lab.root, tmp_path / "b", dry_run=True), RecordingReporter())
    assert len(summary.would_run) == 14
    assert not (tmp_path / "b").exists()


def test_oversized_job_warns(tmp_path):
    runs = (RunSpec("big", stages=(StageSpec("huge", resources={"cpus": 4096}),)),)
    lab = write_lab(tmp_path / "lab", runs).root
    reporter = RecordingReporter()
    summary = run_lab(options(lab, tmp_path / "base"), reporter)
    assert summary.exit_code == 0
    [notice] = reporter.of_type(Notice)
    assert "4096 CPU(s)" in notice.message


def test_slurm_target_without_slurm_names_the_target(factory_lab, tmp_path, monkeypatch):
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "config.toml").write_text('[targets.hpc]\nscheduler = "slurm"\n')
    monkeypatch.setenv("REPX_CONFIG_DIR", str(config))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    where = Location(lab=factory_lab.root, base=tmp_path / "b", target="hpc")
    with pytest.raises(SlurmUnavailableError, match="target 'hpc': 'sbatch' was not found"):
        run_lab(RunOptions(where=where), RecordingReporter())
    assert not (tmp_path / "b" / "slurm").exists()


HOLD = """
import fcntl, os, struct, sys
os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
fd = open(sys.argv[1], "a")
# the store's lock: an OFD write lock on the whole file (no owner line written)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("@hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
print("held", flush=True)
sys.stdin.read()
"""


def test_waits_for_a_job_held_by_another_process(factory_lab, tmp_path):
    """The policy: a job locked by another run is waited for, then its result is used."""
    base = tmp_path / "base"
    run_lab(options(factory_lab.root, base, selectors=("simulation",)), RecordingReporter())
    [plot] = factory_lab.run_jobs["report"]
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(base / "locks" / f"{plot}.lock")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    reporter = RecordingReporter()
    done = threading.Event()

    def release_when_waiting(event):
        reporter.handle(event)
        if isinstance(event, JobWaiting) and not done.is_set():
            done.set()
            holder.stdin.close()  # the "other run" ends without committing anything

    class Tap(RecordingReporter):
        def handle(self, event):
            release_when_waiting(event)

    summary = run_lab(options(factory_lab.root, base), Tap())
    holder.wait()
    assert [e.job for e in reporter.of_type(JobWaiting)] == [plot]
    [finished] = reporter.of_type(JobFinished)
    assert finished.job == plot and not finished.adopted  # nothing to adopt: we ran it
    assert summary.exit_code == 0


def test_a_no_op_run_reads_no_whole_record_and_builds_no_graph(factory_lab, tmp_path, monkeypatch):
    """At 10^5 jobs a no-op run is bounded by whole records and the graph: neither is needed
    when every selected job is done; a damaged success still runs again."""
    import repx.services.run as service  # noqa: PLC0415
    from repx.lab.job_index import ManifestJobs  # noqa: PLC0415
    from repx.run.graph import build_graph  # noqa: PLC0415

    base = tmp_path / "base"
    assert run_lab(options(factory_lab.root, base), RecordingReporter()).succeeded == 14
    reads: list[str] = []
    graphs: list[object] = []
    read = ManifestJobs._read
    monkeypatch.setattr(
        ManifestJobs, "_read", lambda self, job: reads.append(job) or read(self, job)
    )
    monkeypatch.setattr(service, "build_graph", lambda *a: graphs.append(a) or build_graph(*a))
    # verify=False: as for a store lab whose verdict is cached (a directory lab is read whole)
    summary = run_lab(options(factory_lab.root, base, verify=False), RecordingReporter())
    assert (summary.cached, summary.succeeded) == (14, 0)
    assert reads == [] and graphs == []
    job = next(j for j in factory_lab.job_ids if j.endswith("-simulate"))
    (base / "outputs" / job / "out" / "samples.csv").unlink()
    summary = run_lab(options(factory_lab.root, base, verify=False), RecordingReporter())
    assert (summary.cached, summary.succeeded) == (13, 1)
    assert len(graphs) == 1 and job in reads
