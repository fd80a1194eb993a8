"""``repx run``, ``repx status`` and ``repx log``: orchestration of the run pieces."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from repx.build_history import previous_build, read_history
from repx.config import ArtifactStore, RuntimeKind, SchedulerKind, Target, resolve_base
from repx.errors import RepxError, UsageError
from repx.inspect.explain import explain_plan
from repx.inspect.params import swept_by_stage
from repx.inspect.resolve import JobIndex, StoreJobs, resolve_job
from repx.inspect.status import (
    intact_successes,
)
from repx.inspect.view import LabView
from repx.lab.loader import LoadedLab, open_lab
from repx.lab.validate import validate_lab
from repx.run.events import FailedJob, Notice, RunPlanned, RunSummary
from repx.run.graph import JobGraph, build_graph
from repx.run.job import STDERR_LOG, STDOUT_LOG
from repx.run.lab_records import lab_records, record_use
from repx.run.node_local import ensure_copy, node_local_lab, stage_archive
from repx.run.reporter import Reporter
from repx.run.runtime import impure_mounts, impure_warning, resolve_runtime
from repx.run.scheduler import Interrupts, Limits, NodeState, Scheduler
from repx.run.selection import select
from repx.run.spec import NodeLocalLab, effective_params, make_spec, param_index
from repx.run.store import REPX, Store
from repx.run.store_models import JobResult
from repx.run.store_usage import shared_use
from repx.services.backend import check_backend_options, choose_backend
from repx.services.freshness import stale_warning
from repx.services.location import Location, named_target, target_of

logger = logging.getLogger(__name__)

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
    #: ``--artifact-store``: overrides the target's (node-local needs its node_local_path)
    artifact_store: ArtifactStore | None = None


def run_lab(
    options: RunOptions, reporter: Reporter, *, interrupts: Interrupts | None = None
) -> RunSummary:
    """Run the selected jobs of a lab that are not done yet; report progress; summarise.

    ``interrupts``: stop requests from the caller (opened by it, see
    :meth:`Interrupts.opened`) instead of SIGINT/SIGTERM handlers.
    """
    started = time.monotonic()
    target_name, target = named_target(options.where)
    target = _with_artifact_store(target_name, target, options.artifact_store)
    check_backend_options(target_name, target, options.resources)
    if options.force and target.scheduler is SchedulerKind.SLURM:
        raise UsageError(
            "--force runs jobs on a local target only for now (a SLURM task would find the"
            " job done); rerun it with --scheduler local, or delete its outputs"
        )
    base = resolve_base(options.where.base, target)
    # Lazily: the check below reads every record unless a verdict on this (immutable)
    # store lab is cached; then only the jobs to run are read (a no-op over 10^5 needs none).
    lab = open_lab(options.where.lab, lazy=True)
    if (stale := stale_warning(options.where.lab)) is not None:
        reporter.handle(Notice(message=stale))
    if options.verify:
        validate_lab(lab)
    selection = select(lab, options.selectors)
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
        if forced or not done.issuperset(selection.jobs):
            graph = build_graph(lab, selection)
            plan = graph.prune(lambda job: job in done and job not in forced, selection.targets)
        else:
            plan = JobGraph.empty()  # all done: no graph to build (10^5 jobs: seconds)
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
            plan_info = explain_plan(
                lab,
                selected=selection.jobs,
                runs=selection.runs,
                to_run=to_run,
                forced=forced,
                index=index,
                damaged=damaged,
                previous=earlier_lab(options.where.lab, lab, store.root),
            )
            summary = RunSummary(
                **common,
                succeeded=0,
                dry_run=True,
                would_run=tuple(to_run),
                stages=plan_info.stages,
                plan=plan_info.jobs,
            )
            reporter.handle(summary)
            return summary
        # SLURM: every job's resources are checked and SLURM asked before anything is done.
        backend = choose_backend(target_name, target, lab, to_run, options.resources)
        node_local: NodeLocalLab | None = None
        node_local_path: str | None = None
        if to_run and target.artifact_store is ArtifactStore.NODE_LOCAL:
            lab, node_local = _node_local(options.where.lab, lab, target, store, to_run)
            node_local_path = node_local.path if node_local else os.fspath(lab.root)
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
                swept=swept_by_stage(lab, to_run, param_index(lab)),
                node_local=node_local_path,
            )
        )
        if runtime is None:
            summary = RunSummary(
                **common, succeeded=0, seconds=round(time.monotonic() - started, 3)
            )
            reporter.handle(summary)
            return summary
        with _interrupts(interrupts) as stops:
            wake_fd = stops.fd if stops else None
            executor = backend.executor(
                store,
                runtime,
                plan,
                lab,
                wake_fd=wake_fd,
                emit=reporter.handle,
                node_local=node_local,
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
                    interrupts=stops,
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
        store.index_completions()  # what this run committed, for readers of a few jobs
        reporter.close()


def earlier_lab(link: Path, lab: LoadedLab, store_root: Path) -> LoadedLab | None:
    """The lab to explain new job ids with: the newest earlier build of ``link`` that ran
    into the store (its outputs are the ones there), else the previous build; None when no
    earlier build is recorded or it is gone (collected)."""
    current = lab.meta.lab_id
    ran = {record.lab_id for record in lab_records(store_root)}
    builds = [b for b in reversed(read_history(link).builds) if b.lab_id != current]
    ordered = [b for b in builds if b.lab_id in ran]
    entry = previous_build(link, current)
    if entry is not None:
        ordered.append(entry)
    for build in ordered:
        try:
            return open_lab(Path(build.lab))
        except RepxError as exc:
            logger.debug("earlier lab %s cannot be read: %s", build.lab, exc.message)
    return None


def _with_artifact_store(name: str | None, target: Target, store: ArtifactStore | None) -> Target:
    """The target with ``--artifact-store`` applied (node-local needs a node_local_path)."""
    if store is None:
        return target
    if store is ArtifactStore.NODE_LOCAL and target.node_local_path is None:
        label = f"target '{name}'" if name else "the default target"
        raise UsageError(
            f"--artifact-store node-local: {label} has no node_local_path"
            " (set it in config.toml: a directory on each node's local disk)"
        )
    return target.model_copy(update={"artifact_store": store})


def _node_local(
    given: Path, lab: LoadedLab, target: Target, store: Store, to_run: Sequence[str]
) -> tuple[LoadedLab, NodeLocalLab | None]:
    """``artifact_store = "node-local"``: the lab's archive (written into the store for a
    directory lab); SLURM tasks unpack it on their nodes (the manifest entry returned), a
    local run here, now (the lab opened from the copy returned)."""
    root = target.node_local_path
    assert root is not None  # Target refuses node-local without it
    archive_path = stage_archive(lab, given, store.root)
    if target.scheduler is SchedulerKind.SLURM:
        return lab, node_local_lab(lab, archive_path, root)
    expect = sorted({e.path for job in to_run for e in lab.jobs[job].executables.values()})
    return open_lab(ensure_copy(archive_path, root, lab.meta.lab_id, expect).path), None


@contextlib.contextmanager
def _interrupts(given: Interrupts | None) -> Iterator[Interrupts | None]:
    """Ctrl-C handling when we are in the main thread (tests may call from others)."""
    if given is not None:
        yield given
        return
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
    found = current_log(store, job, stderr=stderr, in_progress=in_progress)
    if found is None:
        name = STDERR_LOG if stderr else STDOUT_LOG
        raise UsageError(f"job {job} has no {name} in {base}")
    return found


def current_log(
    store: Store,
    job: str,
    *,
    stderr: bool = False,
    in_progress: dict[str, Path] | None = None,
) -> LogFile | None:
    """The stdout (or stderr) log of ``job``'s running attempt, else of its committed one
    (None: it has none). ``in_progress``: :meth:`Store.attempts_in_progress`, when read."""
    name = STDERR_LOG if stderr else STDOUT_LOG
    attempts = store.attempts_in_progress() if in_progress is None else in_progress
    if job in attempts and store.is_locked(job):
        return LogFile(job, attempts[job] / REPX / name, running=True)
    path = store.repx_dir(job) / name
    if not path.exists():
        return None
    return LogFile(job, path, running=False)


def job_is_running(where: Location, job: str) -> bool:
    """True while some process holds the job's lock."""
    base = resolve_base(where.base, target_of(where))
    return Store.existing(base).is_locked(job)
