"""Executors: where and how submitted jobs run. The scheduler talks to this interface only.

An executor accepts jobs (:meth:`Executor.submit`), reports what happened to them
(:meth:`Executor.poll`) and stops them (:meth:`Executor.cancel`). The local executor runs
ready jobs as child processes of this process. A cluster executor (SLURM) submits jobs
that wrap :func:`repx.run.job.run_job` and may accept jobs whose dependencies are still
running, holding them itself (``holds_dependencies``); the output store, the locks and
the commit protocol are the same for both.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from repx import process
from repx.run import job as lifecycle
from repx.run.job import LOCK_RETRY
from repx.run.orphans import end_orphans
from repx.run.runtime import Runtime
from repx.run.spec import JobSpec
from repx.run.store import JobLock, Store
from repx.run.store_models import JobResult


@dataclass(frozen=True)
class Started:
    """A job started running."""

    job: str


@dataclass(frozen=True)
class Waiting:
    """A job is held by another process (another ``repx run``); we wait for it."""

    job: str
    holder: str


@dataclass(frozen=True)
class Finished:
    """A job ended. ``adopted``: it was run (or committed) by another process."""

    job: str
    result: JobResult
    adopted: bool = False


ExecutorEvent = Started | Waiting | Finished


class Executor(Protocol):
    """What the scheduler needs from a backend."""

    #: True when jobs may be submitted before their dependencies are complete (the backend
    #: orders them itself, e.g. SLURM ``--dependency``); False: only ready jobs are submitted.
    holds_dependencies: bool

    def submit(self, spec: JobSpec) -> None:
        """Accept a job; its fate is reported by :meth:`poll`."""

    def poll(self, timeout: float | None) -> list[ExecutorEvent]:
        """Wait up to ``timeout`` seconds (None: until something happens) and report."""

    def cancel(self, *, force: bool = False) -> list[str]:
        """Stop every job (SIGTERM, or SIGKILL with ``force``); return the jobs dropped
        before they started. Stopped jobs are still reported by :meth:`poll`."""

    @property
    def active(self) -> int:
        """Jobs accepted and not yet reported finished."""

    def close(self) -> None:
        """Release resources (the executor must be idle)."""


@dataclass
class _Waiter:
    spec: JobSpec
    #: attempt nonce of the job's committed result when we started waiting
    seen_attempt: str | None


class LocalExecutor:
    """Runs jobs as child processes, each in its own attempt directory.

    Each job goes through the one lifecycle of :mod:`repx.run.job` (launch, then finish
    when its process exits); this class only multiplexes many of them and waits for
    jobs that another process holds (ending the orphans of a dead run on the way).
    """

    holds_dependencies = False

    def __init__(self, store: Store, runtime: Runtime, *, wake_fd: int | None = None) -> None:
        self.store = store
        self.runtime = runtime
        self.wake_fd = wake_fd
        self._running: dict[int, lifecycle.Attempt] = {}  # pid -> attempt
        self._waiting: dict[str, _Waiter] = {}
        self._events: list[ExecutorEvent] = []
        self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self._next_lock_retry = 0.0

    @property
    def active(self) -> int:
        """Running and waiting jobs."""
        return len(self._running) + len(self._waiting)

    def submit(self, spec: JobSpec) -> None:
        """Start ``spec`` now, or wait for it if another process holds its lock."""
        lock = self.store.try_lock(spec.job)
        if lock is None:
            end_orphans(self.store, spec.job)
            previous = self.store.read_result(spec.job)
            self._waiting[spec.job] = _Waiter(spec, previous.attempt if previous else None)
            self._events.append(Waiting(spec.job, self.store.lock_holder(spec.job)))
            return
        self._launch(spec, lock, waited=None)

    def poll(self, timeout: float | None) -> list[ExecutorEvent]:
        """Reap finished children, retry held jobs, and return what happened."""
        if self._events:
            timeout = 0
        if self._waiting:
            timeout = LOCK_RETRY if timeout is None else min(timeout, LOCK_RETRY)
        children = [a.child for a in self._running.values() if a.child is not None]
        if children or self.wake_fd is not None:
            exited = process.wait_any(children, timeout, self.wake_fd)
        else:
            exited = []
            if timeout:
                time.sleep(timeout)
        for child in exited:
            attempt = self._running.pop(child.pid)
            self._finish(attempt, process.reap(child))
        if self._waiting and time.monotonic() >= self._next_lock_retry:
            self._retry_waiting()
        events, self._events = self._events, []
        return events

    def cancel(self, *, force: bool = False) -> list[str]:
        """Signal every running job's process group; drop the waiting ones."""
        sig = signal.SIGKILL if force else signal.SIGTERM
        for attempt in self._running.values():
            lifecycle.stop_attempt(attempt, sig)
        dropped = list(self._waiting)
        self._waiting.clear()
        return dropped

    def close(self) -> None:
        """Kill and reap any job still running (only after an error), release resources.

        Their attempts stay in ``.work`` and are discarded by the next run.
        """
        for attempt in self._running.values():
            if attempt.child is not None:
                process.signal_group(attempt.child, signal.SIGKILL)
                process.reap(attempt.child)
            lifecycle.release(attempt)
        self._running.clear()
        if self._devnull >= 0:
            os.close(self._devnull)
            self._devnull = -1

    def running_jobs(self) -> Iterator[str]:
        """Jobs whose process is running."""
        return (a.spec.job for a in self._running.values())

    # -- internals ------------------------------------------------------------------

    def _launch(self, spec: JobSpec, lock: JobLock, waited: _Waiter | None) -> None:
        store = self.store
        if store.committed_success(spec.job, spec.outputs) or (
            waited is not None and self._has_new_result(spec.job, waited)
        ):
            # Another run committed it (while we waited, or since we read the index).
            lock.release()
            found = store.read_result(spec.job)
            if found is not None:
                self._events.append(Finished(spec.job, found, adopted=True))
                return
            lock = store.lock(spec.job)
        started = lifecycle.launch(store, spec, lock, self.runtime, self._devnull)
        if isinstance(started, JobResult):
            self._events.append(Finished(spec.job, started))
            return
        assert started.child is not None
        self._running[started.child.pid] = started
        self._events.append(Started(spec.job))

    def _has_new_result(self, job: str, waited: _Waiter) -> bool:
        found = self.store.read_result(job)
        return found is not None and found.attempt != waited.seen_attempt

    def _finish(self, attempt: lifecycle.Attempt, exit: process.Exit) -> None:
        result = lifecycle.finish(self.store, attempt, exit)
        self._events.append(Finished(attempt.spec.job, result))

    def _retry_waiting(self) -> None:
        self._next_lock_retry = time.monotonic() + LOCK_RETRY
        for job, waiter in list(self._waiting.items()):
            lock = self.store.try_lock(job)
            if lock is None:
                end_orphans(self.store, job)
                continue
            del self._waiting[job]
            self._launch(waiter.spec, lock, waited=waiter)
