"""The SLURM executor: jobs go to a cluster as job arrays that SLURM orders itself.

Behind the same :class:`~repx.run.executor.Executor` interface as the local executor, with
``holds_dependencies``: the scheduler hands over every job at once; the first
:meth:`SlurmExecutor.poll` (or :meth:`SlurmExecutor.flush`) groups them
(:mod:`repx.run.slurm_plan`), writes each group's manifest and batch script under
``<base>/slurm/<batch>/`` and calls ``sbatch`` once per group, with ``--dependency`` on the
groups it waits for. Each task runs ``python -m repx.run.slurm_task``, i.e. the local job
lifecycle, on the node. Jobs already queued or running from an earlier submission are
followed, not submitted again.

Following: results come from the output store (new lines of ``completions.jsonl``, else
``result.json``) — the markers are the truth; ``squeue`` only adds "started" and notices
tasks that ended without a result (cancelled before they started, killed, a node lost),
which are reported after a grace period.
"""

# ruff: noqa: PTH118, PTH123

from __future__ import annotations

import logging
import os
import re
import select
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from repx import slurm
from repx.run.events import Event, JobsSubmitted, Notice
from repx.run.executor import ExecutorEvent, Finished, Started
from repx.run.graph import JobGraph
from repx.run.job import STDERR_LOG
from repx.run.runtime import Runtime
from repx.run.slurm_models import (
    SLURM_DIR,
    Submission,
    TaskManifest,
    append_submission,
    job_refs,
    manifest_json,
    read_submissions,
)
from repx.run.slurm_plan import (
    DependencyMap,
    PlannedGroup,
    array_spec,
    held_dependencies,
    plan_groups,
)
from repx.run.slurm_resources import SlurmResources, auto_bundle, parse_time
from repx.run.spec import JobSpec
from repx.run.store import REPX, Store
from repx.run.store_models import JobResult, JobStatus

logger = logging.getLogger(__name__)

#: The module every task runs (see repx.run.slurm_task).
TASK_MODULE: Final = "repx.run.slurm_task"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")
#: Lines of a task's SLURM log copied into a lost job's stderr.log.
_LOG_TAIL: Final = 20


@dataclass(frozen=True)
class SlurmSettings:
    """How to submit and follow (from the target)."""

    #: the target's name, for messages
    target: str
    #: the Python that runs tasks on the nodes (with repx installed)
    python: str
    #: seconds between looks at the output store while following
    poll_interval: float = 0.25
    #: seconds between ``squeue`` calls while following
    queue_interval: float = 0.5
    #: seconds a task may be gone from SLURM without a result before its jobs count as lost
    lost_grace: float = 3.0


@dataclass(frozen=True)
class SubmittedGroup:
    """One sbatch call made (for the report of ``repx run``)."""

    slurm_id: str
    stage: str
    jobs: tuple[str, ...]
    array: str | None
    dependency: str | None
    bundle: int


@dataclass
class _Tracked:
    job: str
    ref: str
    array_job: str
    submitted: float
    log: str
    started: bool = False
    #: when SLURM was first seen without this task active (monotonic), and its last entry
    gone_since: float | None = None
    last_entry: slurm.QueueEntry | None = None


@dataclass
class _Followed:
    """Jobs of one task (a ref), in the order the task runs them."""

    jobs: list[str] = field(default_factory=list)


class SlurmExecutor:
    """Submits jobs to SLURM as arrays with dependencies, and follows them."""

    holds_dependencies = True

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        graph: JobGraph,
        resources: Mapping[str, SlurmResources],
        settings: SlurmSettings,
        *,
        lab_id: str,
        store_probe: str | None = None,
        lab_store: str | None = None,
        wake_fd: int | None = None,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.graph = graph
        self.resources = resources
        self.settings = settings
        self.lab_id = lab_id
        self.store_probe = store_probe
        self.lab_store = lab_store
        self.wake_fd = wake_fd
        self.emit = emit or (lambda event: None)
        self.submitted: list[SubmittedGroup] = []
        #: jobs found queued or running from an earlier submission (job -> SLURM id)
        self.adopted: dict[str, str] = {}
        self.sbatch_calls = 0
        self._pending: list[JobSpec] = []
        self._tracked: dict[str, _Tracked] = {}
        self._tasks: dict[str, _Followed] = {}
        self._offset = _size(store.completions)
        self._partial = b""
        self._next_queue = 0.0

    # -- the Executor interface ------------------------------------------------------------

    @property
    def active(self) -> int:
        """Jobs handed over and not reported finished."""
        return len(self._pending) + len(self._tracked)

    def submit(self, spec: JobSpec) -> None:
        """Take a job; it is submitted with the others by the next poll (or flush)."""
        self._pending.append(spec)

    def poll(self, timeout: float | None) -> list[ExecutorEvent]:
        """Submit what was handed over, then report results and starts."""
        if self._pending:
            self.flush()
        wait = self.settings.poll_interval if timeout is None else min(timeout, 1.0)
        self._sleep(wait)
        events: list[ExecutorEvent] = []
        self._read_completions(events)
        now = time.monotonic()
        if self._tracked and now >= self._next_queue:
            self._next_queue = now + self.settings.queue_interval
            self._check_queue(events, now)
        return events

    def cancel(self, *, force: bool = False) -> list[str]:
        """Stop following (jobs stay in SLURM; ``repx cancel`` cancels them).

        Every job not reported yet is returned as dropped.
        """
        dropped = [spec.job for spec in self._pending] + list(self._tracked)
        self._pending.clear()
        self._tracked.clear()
        self._tasks.clear()
        return dropped

    def close(self) -> None:
        """Nothing to release: jobs live in SLURM."""

    # -- submission ------------------------------------------------------------------------

    def flush(self) -> list[SubmittedGroup]:
        """Submit every job handed over since the last flush; return the sbatch calls made.

        On a refusal by SLURM, what this flush submitted is cancelled again and the error
        names the target, the stage and a job.
        """
        specs = {spec.job: spec for spec in self._pending}
        self._pending.clear()
        if not specs:
            return []
        order = list(specs)
        deps = held_dependencies(self.graph)
        adopted = self._find_active(order, deps)
        self.adopted.update(adopted)
        for job, ref in adopted.items():
            self._follow(job, ref, ref.split("_", 1)[0], time.time(), "")
        if adopted:
            self.emit(
                Notice(
                    message=f"{len(adopted)} job(s) are already queued or running in SLURM"
                    " (an earlier submission): followed, not submitted again"
                )
            )
        todo = [job for job in order if job not in adopted]
        groups = plan_groups(
            todo,
            stage_of={job: specs[job].stage for job in todo},
            deps={job: deps.get(job, {}) for job in todo},
            resources={job: self.resources[job] for job in todo},
            adopted=adopted,
            max_array_size=slurm.max_array_size() if len(todo) > 1 else 2,
            bundle_size=_AutoBundle(),
        )
        batch = self._batch_dir()
        ids: dict[int, str] = {}
        arrays: dict[int, bool] = {}
        made: list[Submission] = []
        try:
            for group in groups:
                record = self._submit_group(group, specs, batch, ids, arrays)
                made.append(record)
        except slurm.SlurmError as exc:
            self._withdraw(made)
            job = group.jobs[0]
            count = len(group.jobs)
            undone = f" ({len(made)} earlier sbatch call(s) of this run cancelled)" if made else ""
            raise slurm.SlurmError(
                f"target '{self.settings.target}': SLURM refused the {count} job(s) of stage"
                f" '{group.stage}' (e.g. {job}): {exc.message}",
                f"nothing of this run stays submitted{undone}",
            ) from None
        return self.submitted[-len(made) :] if made else []

    def _submit_group(
        self,
        group: PlannedGroup,
        specs: Mapping[str, JobSpec],
        batch: Path,
        ids: dict[int, str],
        arrays: dict[int, bool],
    ) -> Submission:
        name = f"{group.number:03d}-{_UNSAFE.sub('_', group.stage)}"
        manifest = batch / f"{name}.json"
        script = batch / f"{name}.sh"
        log = batch / "logs" / (f"{name}-%A_%a.log" if group.array else f"{name}-%j.log")
        content = TaskManifest(
            base=os.fspath(self.store.root),
            runtime=self.runtime,
            store_probe=self.store_probe,
            lab_store=self.lab_store,
            tasks={str(i): tuple(specs[j] for j in jobs) for i, jobs in group.tasks.items()},
        )
        _write(manifest, manifest_json(content))
        _write(script, batch_script(self.settings.python, manifest, group))
        dependency = group.dependency(ids, arrays)
        options = sbatch_options(group, batch, log, dependency)
        self.sbatch_calls += 1
        slurm_id = slurm.sbatch(script, options)
        ids[group.number] = slurm_id
        arrays[group.number] = group.array
        log_text = os.fspath(log).replace("%A", slurm_id).replace("%j", slurm_id)
        record = Submission(
            slurm_id=slurm_id,
            array=group.array,
            stage=group.stage,
            target=self.settings.target,
            submitted=time.time(),
            tasks={str(i): tuple(jobs) for i, jobs in group.tasks.items()},
            manifest=os.fspath(manifest),
            log=log_text,
            dependency=dependency,
            lab_id=self.lab_id,
        )
        append_submission(self.store.root, record)
        for index, jobs in group.tasks.items():
            ref = record.ref(str(index))
            for job in jobs:
                self._follow(job, ref, slurm_id, record.submitted, record.log_of(str(index)))
        submitted = SubmittedGroup(
            slurm_id=slurm_id,
            stage=group.stage,
            jobs=tuple(group.jobs),
            array=array_spec(list(group.tasks)) if group.array else None,
            dependency=dependency,
            bundle=group.bundle,
        )
        self.submitted.append(submitted)
        self.emit(
            JobsSubmitted(
                slurm_id=slurm_id,
                stage=group.stage,
                jobs=len(submitted.jobs),
                array=submitted.array,
                dependency=dependency,
                bundle=submitted.bundle,
            )
        )
        return record

    def _withdraw(self, made: Sequence[Submission]) -> None:
        if not made:
            return
        try:
            slurm.scancel(record.slurm_id for record in made)
        except slurm.SlurmError as exc:
            logger.warning("cannot cancel the jobs just submitted: %s", exc.message)
        for record in made:
            append_submission(self.store.root, record.model_copy(update={"kind": "withdrawn"}))
            for jobs in record.tasks.values():
                for job in jobs:
                    self._tracked.pop(job, None)
        self.submitted = self.submitted[: len(self.submitted) - len(made)]

    def _find_active(self, jobs: Sequence[str], deps: DependencyMap) -> dict[str, str]:
        """Jobs of ``jobs`` (in order) that an earlier submission has queued or running and
        that can still run as submitted (-> SLURM id): every job they wait for is adopted too.

        The other tasks of earlier submissions are cancelled (their jobs are submitted again).
        """
        refs = job_refs(read_submissions(self.store.root))
        mine = {job: refs[job] for job in jobs if job in refs}
        if not mine:
            return {}
        entries = {e.job_id: e for e in slurm.squeue({r.array_job for r in mine.values()})}
        active: dict[str, str] = {}
        stale: set[str] = set()
        for job in jobs:
            ref = mine.get(job)
            entry = entries.get(ref.ref) if ref is not None else None
            if ref is None or entry is None or not entry.state.active:
                continue
            waits_for_new = any(pred not in active for pred in deps.get(job, {}))
            if entry.never_runs or (entry.state.queued and waits_for_new):
                stale.add(ref.ref)  # it waits for an old attempt: submitted again
                continue
            active[job] = ref.ref
        if stale:
            slurm.scancel(stale)
        return active

    def _batch_dir(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = self.store.root / SLURM_DIR
        for n in range(1000):
            path = root / f"{stamp}-{os.getpid()}-{n}"
            try:
                (path / "logs").mkdir(parents=True)
            except FileExistsError:
                continue
            return path
        raise OSError(f"cannot create a batch directory under {root}")

    # -- following -------------------------------------------------------------------------

    def _follow(self, job: str, ref: str, array_job: str, submitted: float, log: str) -> None:
        self._tracked[job] = _Tracked(job, ref, array_job, submitted, log)
        self._tasks.setdefault(ref, _Followed()).jobs.append(job)

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.wake_fd is not None:
            select.select([self.wake_fd], [], [], seconds)
        else:
            time.sleep(seconds)

    def _read_completions(self, events: list[ExecutorEvent]) -> None:
        """New lines of completions.jsonl that concern followed jobs -> Finished."""
        path = self.store.completions
        size = _size(path)
        if size <= self._offset:
            return
        with open(path, "rb") as f:
            f.seek(self._offset)
            data = f.read(size - self._offset)
        self._offset += len(data)
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if not line.strip():
                continue
            try:
                result = JobResult.model_validate_json(line)
            except ValueError:
                continue
            if result.job in self._tracked:
                self._finish(result.job, result, events)

    def _finish(self, job: str, result: JobResult, events: list[ExecutorEvent]) -> None:
        tracked = self._tracked.pop(job)
        followed = self._tasks.get(tracked.ref)
        if followed is not None:
            if job in followed.jobs:
                followed.jobs.remove(job)
            if not followed.jobs:
                del self._tasks[tracked.ref]
        events.append(Finished(job, result))

    def _check_queue(self, events: list[ExecutorEvent], now: float) -> None:
        units = {t.array_job for t in self._tracked.values()}
        entries = {e.job_id: e for e in slurm.squeue(units)}
        for ref, followed in list(self._tasks.items()):
            live = [job for job in followed.jobs if job in self._tracked]
            if not live:
                continue
            entry = entries.get(ref)
            if entry is not None and entry.state.active:
                for job in live:
                    self._tracked[job].gone_since = None
                first = self._tracked[live[0]]
                if entry.state.running and not first.started:
                    first.started = True
                    events.append(Started(first.job))
                continue
            for job in live:
                tracked = self._tracked[job]
                tracked.last_entry = entry
                if tracked.gone_since is None:
                    tracked.gone_since = now
                elif now - tracked.gone_since >= self.settings.lost_grace:
                    self._settle(tracked, events)

    def _settle(self, tracked: _Tracked, events: list[ExecutorEvent]) -> None:
        """A task ended long ago and no result line came: look on disk, else it is lost."""
        found = self.store.read_result(tracked.job)
        if found is not None and found.end >= tracked.submitted:
            self._finish(tracked.job, found, events)  # its completions line was lost
            return
        result = self._lost(tracked)
        if result is not None:
            self._finish(tracked.job, result, events)

    def _lost(self, tracked: _Tracked) -> JobResult | None:
        """The result of a job whose task ended without one (None: try again later)."""
        entry = tracked.last_entry
        state = entry.state if entry is not None else None
        now = time.time()
        common: dict[str, object] = {
            "job": tracked.job,
            "start": now,
            "end": now,
            "host": "",
            "runtime": self.runtime.kind.value,
            "lab_id": self.lab_id,
        }
        if entry is not None and entry.reason == "DependencyNeverSatisfied":
            reason = f"not run: a job it needs did not succeed (SLURM {tracked.ref})"
            return _result(common, JobStatus.INTERRUPTED, reason, "")
        if state is slurm.JobState.CANCELLED:
            reason = f"cancelled in SLURM ({tracked.ref}) before it ran"
            return _result(common, JobStatus.INTERRUPTED, reason, "")
        what = state.value if state is not None else "no longer known to SLURM"
        reason = f"SLURM task {tracked.ref} ended ({what}) without a result; its log: {tracked.log}"
        return self._record_error(tracked, reason, common)

    def _record_error(
        self, tracked: _Tracked, reason: str, common: Mapping[str, object]
    ) -> JobResult | None:
        """Commit an ERROR result (with the task's log) so that status shows why."""
        lock = self.store.try_lock(tracked.job)
        if lock is None:
            tracked.gone_since = None  # someone is running it after all
            return None
        try:
            work, nonce = self.store.new_attempt(tracked.job)
            tail = _tail(tracked.log)
            with open(os.path.join(work, REPX, STDERR_LOG), "w", encoding="utf-8") as f:
                f.write("".join(f"{line}\n" for line in tail) + f"repx: {reason}\n")
            result = _result(common, JobStatus.ERROR, reason, nonce)
            self.store.commit(tracked.job, work, result)
            return result
        except OSError as exc:
            logger.warning("cannot record the failure of %s: %s", tracked.job, exc)
            return _result(common, JobStatus.ERROR, reason, "")
        finally:
            lock.release()


class _AutoBundle:
    """Jobs per task: the resources' ``jobs_per_task``, else :func:`auto_bundle` with the
    partition's CPUs and MaxTime (``sinfo``, asked once and only when needed)."""

    def __init__(self) -> None:
        self._partitions: dict[str, slurm.Partition] | None = None

    def __call__(self, resources: SlurmResources, jobs: int) -> int:
        if resources.jobs_per_task is not None:
            return resources.jobs_per_task
        if resources.time_seconds is None or jobs <= 1:
            return 1
        if self._partitions is None:
            try:
                self._partitions = slurm.partitions()
            except slurm.SlurmError as exc:
                logger.warning("no automatic bundles (sinfo: %s)", exc.message)
                self._partitions = {}
        name = (resources.partition or "").split(",")[0]
        partition = self._partitions.get(name)
        if partition is None:
            return 1
        try:
            max_time: int | None = parse_time(partition.max_time)
        except ValueError:
            max_time = None  # "infinite"
        return auto_bundle(resources, jobs, partition.cpus, max_time)


def batch_script(python: str, manifest: Path, group: PlannedGroup) -> str:
    """The batch script of a group: exec the task wrapper for this array index."""
    jobs = len(group.jobs)
    return (
        "#!/bin/sh\n"
        f"# repx: stage {group.stage}, {jobs} job(s) in {len(group.tasks)} task(s)\n"
        f"exec {shlex.quote(python)} -m {TASK_MODULE} {shlex.quote(os.fspath(manifest))}"
        ' "${SLURM_ARRAY_TASK_ID:-0}"\n'
    )


def sbatch_options(
    group: PlannedGroup, batch: Path, log: Path, dependency: str | None
) -> list[str]:
    """Every sbatch option of a group (``--parsable`` and the script are added by slurm)."""
    options = [
        f"--job-name=repx-{group.stage}",
        f"--chdir={os.fspath(batch)}",
        f"--output={os.fspath(log)}",
    ]
    if group.array:
        options.append(f"--array={array_spec(list(group.tasks))}")
    if dependency is not None:
        options += [f"--dependency={dependency}", "--kill-on-invalid-dep=yes"]
    options += group.resources.sbatch_args(bundle=group.bundle)
    return options


def _result(
    common: Mapping[str, object], status: JobStatus, reason: str, attempt: str
) -> JobResult:
    return JobResult.model_validate(
        {**common, "status": status, "reason": reason, "attempt": attempt}
    )


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: str) -> list[str]:
    if not path:
        return []
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return lines[-_LOG_TAIL:]
