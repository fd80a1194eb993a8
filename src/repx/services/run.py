"""``repx run``, ``repx status`` and ``repx log``: orchestration of the run pieces."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from repx.config import RuntimeKind, SchedulerKind, resolve_base
from repx.errors import UsageError
from repx.inspect.resolve import JobIndex, StoreJobs, resolve_job
from repx.inspect.status import JobState, intact_successes, read_status
from repx.inspect.view import LabView
from repx.lab.loader import LoadedLab, open_lab
from repx.lab.validate import validate_lab
from repx.run.events import FailedJob, Notice, RunPlanned, RunSummary
from repx.run.graph import build_graph
from repx.run.job import STDERR_LOG, STDOUT_LOG
from repx.run.lab_records import record_use
from repx.run.pieces import Progress
from repx.run.reporter import Reporter
from repx.run.runtime import impure_mounts, impure_warning, resolve_runtime
from repx.run.scheduler import Interrupts, Limits, NodeState, Scheduler
from repx.run.selection import lab_order, select
from repx.run.spec import effective_params, make_spec
from repx.run.store import REPX, Store
from repx.run.store_models import JobResult
from repx.run.store_usage import shared_use
from repx.services.backend import check_backend_options, choose_backend
from repx.services.freshness import stale_warning
from repx.services.location import Location, named_target, target_of

#: Lines of a failed job's stderr shown in the summary.
STDERR_TAIL: Final = 10


@dataclass(frozen=True)
class RunOptions:
    """Everything ``repx run`` needs, as typed values."""

    where: Location = field(default_factory=Location)
    selectors: tuple[str, ...] = ()
    jobs: int | None = None
    runtime: RuntimeKind | None = None
    continue_on_failure: bool = False
    dry_run: bool = False
    verify: bool = True
    #: SLURM targets: follow the jobs until they end (default: return after submitting)
    wait: bool = False
    #: SLURM targets: a resources.toml overriding the target's (docs/slurm.md)
    resources: Path | None = None
    #: impure (NOT reproducible): host paths jobs see, beside the target's
    mount_host_paths: bool = False
    mount_paths: tuple[str, ...] = ()
    #: rerun the selected jobs although their outputs are intact (upstream jobs are not)
    force: bool = False


def run_lab(options: RunOptions, reporter: Reporter) -> RunSummary:
    """Run the selected jobs of a lab that are not done yet; report progress; summarise."""
    started = time.monotonic()
    target_name, target = named_target(options.where)
    check_backend_options(target_name, target, options.resources)
    if options.force and target.scheduler is SchedulerKind.SLURM:
        raise UsageError(
            "--force runs jobs on a local target only for now (a SLURM task would find the"
            " job done); rerun it with --scheduler local, or delete its outputs"
        )
    base = resolve_base(options.where.base, target)
    lab = open_lab(options.where.lab)
    if (stale := stale_warning(options.where.lab)) is not None:
        reporter.handle(Notice(message=stale))
    if options.verify:
        validate_lab(lab)
    selection = select(lab, options.selectors)
    graph = build_graph(lab, selection)
    store = Store.existing(base) if options.dry_run else Store.open(base)
    in_use = contextlib.ExitStack()
    try:
        if not options.dry_run:
            # Before pruning: gc must not remove what this run decides to reuse.
            in_use.enter_context(shared_use(store.root))
            record_use(
                store.root,
                lab_id=lab.meta.lab_id,
                path=lab.root,
                lab_version=lab.meta.lab_version,
                job_count=len(lab.jobs),
            )
        index = store.read_index()
        if not options.dry_run:
            store.recover(index.recovered)
        # The state owner's notion of done: a success whose outputs were damaged is rerun.
        done, damaged = intact_successes(lab, store, index)
        store.distrust(damaged)
        forced = frozenset(selection.targets) if options.force else frozenset()
        store.rerun(forced)
        plan = graph.prune(lambda job: job in done and job not in forced, selection.targets)
        to_run = plan.jobs
        cached = len(selection.jobs) - len(to_run)
        common = {
            "lab": os.fspath(lab.root),
            "base": os.fspath(base),
            "outputs": os.fspath(store.outputs),
            "selected": len(selection.jobs),
            "cached": cached,
        }
        if options.dry_run:
            summary = RunSummary(**common, succeeded=0, dry_run=True, would_run=tuple(to_run))
            reporter.handle(summary)
            return summary
        # SLURM: every job's resources are checked and SLURM asked before anything is done.
        backend = choose_backend(target_name, target, lab, to_run, options.resources)
        limits = Limits.of_machine(options.jobs or target.concurrency)
        host_paths, mount_paths = impure_mounts(
            target_name, target, options.mount_host_paths, options.mount_paths
        )
        runtime = (
            resolve_runtime(
                lab,
                options.runtime or target.runtime,
                store.outputs,
                mount_host_paths=host_paths,
                mount_paths=mount_paths,
            )
            if to_run
            else None
        )
        if runtime is not None and (warning := impure_warning(runtime)) is not None:
            reporter.handle(Notice(message=warning))
        store.clean_stale()
        reporter.handle(
            RunPlanned(
                lab=common["lab"],
                lab_id=lab.meta.lab_id,
                base=common["base"],
                runtime=runtime.kind.value if runtime else (options.runtime or "-"),
                concurrency=limits.max_jobs,
                selected=len(selection.jobs),
                cached=cached,
                to_run=len(to_run),
                slurm_target=backend.target,
            )
        )
        if runtime is None:
            summary = RunSummary(
                **common, succeeded=0, seconds=round(time.monotonic() - started, 3)
            )
            reporter.handle(summary)
            return summary
        with _interrupts() as interrupts:
            wake_fd = interrupts.fd if interrupts else None
            executor = backend.executor(
                store, runtime, plan, lab, wake_fd=wake_fd, emit=reporter.handle
            )
            try:
                if backend.detached and not options.wait:
                    ids = backend.submit_all([make_spec(lab, j, store.outputs) for j in to_run])
                    summary = RunSummary(
                        **common,
                        succeeded=0,
                        slurm_ids=ids,
                        submitted_only=True,
                        seconds=round(time.monotonic() - started, 3),
                    )
                    reporter.handle(summary)
                    return summary
                scheduler = Scheduler(
                    plan,
                    executor,
                    lambda job: make_spec(lab, job, store.outputs),
                    reporter.handle,
                    limits,
                    continue_on_failure=options.continue_on_failure,
                    interrupts=interrupts,
                )
                outcome = scheduler.run()
            finally:
                executor.close()
        failed = [
            _failed_job(lab, store, result)
            for job in to_run
            if (result := outcome.results.get(job)) is not None and not result.succeeded
        ]
        notice = backend.stopped_notice(outcome.count(NodeState.SKIPPED))
        if outcome.interrupted and notice is not None:
            reporter.handle(Notice(message=notice))
        summary = RunSummary(
            **common,
            succeeded=outcome.count(NodeState.SUCCEEDED),
            failed=tuple(failed),
            blocked=outcome.count(NodeState.BLOCKED),
            not_started=outcome.count(NodeState.SKIPPED),
            interrupted=outcome.interrupted,
            seconds=round(time.monotonic() - started, 3),
            slurm_ids=backend.submitted_ids(),
        )
        reporter.handle(summary)
        return summary
    finally:
        in_use.close()
        store.close()
        reporter.close()


@contextlib.contextmanager
def _interrupts() -> Iterator[Interrupts | None]:
    """Ctrl-C handling when we are in the main thread (tests may call from others)."""
    if threading.current_thread() is not threading.main_thread():
        yield None  # signal handlers can only be set from the main thread
        return
    with Interrupts().installed() as interrupts:
        yield interrupts


def _failed_job(lab: LoadedLab, store: Store, result: JobResult) -> FailedJob:
    log = (
        store.attempt_repx_dir(result.job, result.attempt) / STDERR_LOG if result.attempt else None
    )
    return FailedJob(
        job=result.job,
        stage=result.job.split("-", 1)[-1],
        params=effective_params(lab, result.job),
        status=result.status,
        exit_code=result.exit_code,
        reason=result.reason,
        log=os.fspath(log) if log else None,
        stderr_tail=tuple(tail_lines(log, STDERR_TAIL)) if log else (),
    )


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file (empty when it cannot be read)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read()
    except OSError:
        return []
    lines: deque[str] = deque(data.decode("utf-8", "replace").splitlines(), maxlen=count)
    return list(lines)


# -- status -------------------------------------------------------------------------


class JobStatusEntry(BaseModel):
    """One job in ``repx status --json`` (the fields of ``repx list jobs --json``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    run: str
    stage: str
    status: JobState
    exit_code: int | None = None
    reason: str | None = None
    #: the SLURM job (``123_4``) when SLURM decided the state
    slurm_id: str | None = None
    #: host paths the last attempt saw (an impure run: NOT reproducible)
    impure: tuple[str, ...] = ()
    #: a scatter-gather job: branches complete out of its work items (once it scattered)
    branches: Progress | None = None


class StageStatus(BaseModel):
    """Counts of one stage of a run."""

    model_config = ConfigDict(frozen=True)

    run: str
    stage: str
    counts: dict[JobState, int]


class StatusReport(BaseModel):
    """``repx status``: job states of a lab in an output store."""

    model_config = ConfigDict(frozen=True)

    lab: str
    base: str
    stages: tuple[StageStatus, ...]
    jobs: tuple[JobStatusEntry, ...]

    def totals(self) -> dict[JobState, int]:
        """Counts over every job listed."""
        totals = dict.fromkeys(JobState, 0)
        for entry in self.jobs:
            totals[entry.status] += 1
        return totals


def lab_status(where: Location, run: str | None = None) -> StatusReport:
    """The state of every job of the lab (or of one run) in the output store.

    The states are one snapshot of :func:`repx.inspect.status.read_status` (the one owner:
    ``repx list jobs --status``, ``repx show job`` and ``repx.Lab`` read the same), SLURM's
    view included for jobs submitted from this base. A base directory that is not an output
    store is an error.
    """
    base = resolve_base(where.base, target_of(where))
    lab = open_lab(where.lab)
    if run is not None and run not in lab.runs:
        known = ", ".join(lab.revision.run_order or sorted(lab.runs))
        raise UsageError(f"unknown run '{run}' (runs: {known})")
    Store.existing(base, strict=True)  # refuses a non-store and an unknown format
    view = read_status(lab, base)
    runs = [run] if run is not None else list(lab.revision.run_order or lab.runs)
    entries: list[JobStatusEntry] = []
    stages: dict[tuple[str, str], dict[JobState, int]] = {}
    order = lab_order(lab)
    for name in runs:
        for job_id in sorted(lab.runs[name].jobs, key=order.__getitem__):
            stage = lab.jobs[job_id].stage
            state = view.state(job_id)
            entries.append(
                JobStatusEntry(
                    id=job_id,
                    run=name,
                    stage=stage,
                    status=state,
                    exit_code=view.exit_code(job_id),
                    reason=view.reason(job_id),
                    slurm_id=view.slurm_id(job_id),
                    impure=view.impure(job_id),
                    branches=view.branches(job_id, lab.jobs[job_id].scatter_gather),
                )
            )
            counts = stages.setdefault((name, stage), dict.fromkeys(JobState, 0))
            counts[state] += 1
    return StatusReport(
        lab=os.fspath(lab.root),
        base=os.fspath(base),
        stages=tuple(StageStatus(run=r, stage=s, counts=c) for (r, s), c in stages.items()),
        jobs=tuple(entries),
    )


# -- logs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LogFile:
    """A job's log and whether the job is running right now."""

    job: str
    path: Path
    running: bool


def find_log(where: Location, token: str, *, stderr: bool = False) -> LogFile:
    """The stdout (or stderr) log of a job's running or last attempt.

    ``token`` is resolved like every job id (:func:`repx.inspect.resolve.resolve_job`):
    against the lab's jobs when the lab is there, else against the jobs in the store.
    """
    base = resolve_base(where.base, target_of(where))
    store = Store.existing(base)
    in_progress = store.attempts_in_progress()
    try:
        committed = os.listdir(store.outputs)  # noqa: PTH208 (names only)
    except FileNotFoundError:
        committed = []
    known = set(committed) | set(in_progress)
    index: JobIndex = (
        LabView(open_lab(where.lab)) if os.path.lexists(where.lab) else StoreJobs(known)
    )
    job = resolve_job(index, token)
    if job not in known:
        raise UsageError(f"job {job} has not run in {base} (states: repx status)")
    name = STDERR_LOG if stderr else STDOUT_LOG
    if job in in_progress and store.is_locked(job):
        return LogFile(job, in_progress[job] / REPX / name, running=True)
    path = store.repx_dir(job) / name
    if not path.exists():
        raise UsageError(f"job {job} has no {name} in {base}")
    return LogFile(job, path, running=False)


def job_is_running(where: Location, job: str) -> bool:
    """True while some process holds the job's lock."""
    base = resolve_base(where.base, target_of(where))
    return Store.existing(base).is_locked(job)
