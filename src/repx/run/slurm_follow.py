"""Following SLURM jobs: results from the output store, liveness from ``squeue``.

The markers are the truth: results come from new lines of ``completions.jsonl`` (else
``result.json``); ``squeue`` only adds "started" and notices tasks that ended without a
result (cancelled before they started, killed, a node lost), which are reported after a
grace period — as ``interrupted`` when SLURM cancelled them, else as a committed ``error``
carrying the tail of the task's SLURM log.
"""

# ruff: noqa: PTH118, PTH123

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from repx import slurm
from repx.run.executor import ExecutorEvent, Finished, Started
from repx.run.job import STDERR_LOG, make_result
from repx.run.store import REPX, Store
from repx.run.store_models import JobResult, JobStatus

logger = logging.getLogger(__name__)

#: Lines of a task's SLURM log copied into a lost job's stderr.log.
_LOG_TAIL: Final = 20


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


class SlurmFollower:
    """Tracks submitted jobs until the store (or SLURM) says how they ended."""

    def __init__(self, store: Store, *, runtime_kind: str, lab_id: str, lost_grace: float) -> None:
        self.store = store
        self.runtime_kind = runtime_kind
        self.lab_id = lab_id
        self.lost_grace = lost_grace
        self._tracked: dict[str, _Tracked] = {}
        self._tasks: dict[str, _Followed] = {}
        self._offset = _size(store.completions)
        self._partial = b""

    @property
    def active(self) -> int:
        """Jobs followed and not reported finished."""
        return len(self._tracked)

    def jobs(self) -> list[str]:
        """Every job followed."""
        return list(self._tracked)

    def follow(self, job: str, ref: str, array_job: str, submitted: float, log: str) -> None:
        """Follow ``job``, run by SLURM task ``ref`` (submitted at ``submitted``, epoch)."""
        self._tracked[job] = _Tracked(job, ref, array_job, submitted, log)
        self._tasks.setdefault(ref, _Followed()).jobs.append(job)

    def forget(self, jobs: Iterable[str]) -> None:
        """Stop following ``jobs`` (withdrawn submissions)."""
        for job in jobs:
            tracked = self._tracked.pop(job, None)
            if tracked is None:
                continue
            followed = self._tasks.get(tracked.ref)
            if followed is not None and job in followed.jobs:
                followed.jobs.remove(job)
                if not followed.jobs:
                    del self._tasks[tracked.ref]

    def clear(self) -> None:
        """Stop following everything."""
        self._tracked.clear()
        self._tasks.clear()

    def check(self, events: list[ExecutorEvent], *, ask_queue: bool) -> None:
        """Report new results (and, with ``ask_queue``, starts and lost tasks)."""
        self._read_completions(events)
        if self._tracked and ask_queue:
            self._check_queue(events, time.monotonic())

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
                elif now - tracked.gone_since >= self.lost_grace:
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
        if entry is not None and entry.reason == "DependencyNeverSatisfied":
            reason = f"not run: a job it needs did not succeed (SLURM {tracked.ref})"
            return self._result(tracked, JobStatus.INTERRUPTED, reason)
        if state is slurm.JobState.CANCELLED:
            reason = f"cancelled in SLURM ({tracked.ref}) before it ran"
            return self._result(tracked, JobStatus.INTERRUPTED, reason)
        what = state.value if state is not None else "no longer known to SLURM"
        reason = f"SLURM task {tracked.ref} ended ({what}) without a result; its log: {tracked.log}"
        return self._record_error(tracked, reason)

    def _result(
        self, tracked: _Tracked, status: JobStatus, reason: str, attempt: str = ""
    ) -> JobResult:
        return make_result(
            tracked.job,
            self.lab_id,
            status=status,
            reason=reason,
            host="",
            runtime=self.runtime_kind,
            attempt=attempt,
        )

    def _record_error(self, tracked: _Tracked, reason: str) -> JobResult | None:
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
            result = self._result(tracked, JobStatus.ERROR, reason, nonce)
            self.store.commit(tracked.job, work, result)
            return result
        except OSError as exc:
            logger.warning("cannot record the failure of %s: %s", tracked.job, exc)
            return self._result(tracked, JobStatus.ERROR, reason)
        finally:
            lock.release()


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
