"""The dispatcher: starts ready jobs within the limits, follows them, applies the failure policy.

Lifecycle of a node: ``pending`` (waiting for predecessors) -> ``ready`` -> submitted
(``running``) -> ``succeeded`` / ``failed``; or ``blocked`` (a predecessor it needs did not
succeed) or ``skipped`` (never started: the run stopped). Barriers (run dependencies)
complete as soon as they are ready.

Admission: at most ``max_jobs`` at once, and the ``cpus``/``mem`` hints of running jobs
never exceed the machine; a job larger than the machine runs alone, with a warning.
Failure policy: a failure blocks what depends on it; without ``continue_on_failure`` no new
job starts after the first failure (running ones finish). A first SIGINT/SIGTERM stops
every running job (they are recorded as interrupted), a second one kills them.
"""

from __future__ import annotations

import heapq
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from types import FrameType
from typing import Final

from repx.run.events import Event, JobBlocked, JobFinished, JobStarted, JobWaiting, Notice
from repx.run.executor import Executor, Finished, Started, Waiting
from repx.run.graph import EdgeKind, JobGraph, is_barrier
from repx.run.spec import JobSpec
from repx.run.store_models import JobResult, JobStatus

#: Seconds running jobs get to exit after SIGTERM before they are killed.
STOP_GRACE: Final = 10.0
#: Ready jobs examined per dispatch when the first ones do not fit.
_SCAN_LIMIT: Final = 64


class NodeState(StrEnum):
    """Where a node is in its lifecycle."""

    PENDING = "pending"
    READY = "ready"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    SKIPPED = "skipped"

    @property
    def terminal(self) -> bool:
        """True once the node will not change any more."""
        return self in (NodeState.SUCCEEDED, NodeState.FAILED, NodeState.BLOCKED, NodeState.SKIPPED)


@dataclass(frozen=True)
class Limits:
    """What the machine (and the user) allow at once."""

    max_jobs: int
    cpus: int
    mem_bytes: int

    @classmethod
    def of_machine(cls, max_jobs: int | None = None) -> Limits:
        """The CPUs usable by this process and the physical memory."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            cpus = os.cpu_count() or 1
        try:
            mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError):
            mem = 0
        return cls(max_jobs=max_jobs or cpus, cpus=cpus, mem_bytes=mem)


@dataclass
class Outcome:
    """The end state of every node the scheduler was given."""

    states: dict[str, NodeState]
    results: dict[str, JobResult] = field(default_factory=dict)
    blocked_by: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False

    def count(self, state: NodeState) -> int:
        """Jobs (not barriers) in ``state``."""
        return sum(1 for n, s in self.states.items() if s is state and not is_barrier(n))


class Interrupts:
    """SIGINT/SIGTERM turned into a counter and a readable fd (to wake a waiting poll)."""

    def __init__(self) -> None:
        self.count = 0
        self.fd = -1
        self._write_fd = -1

    @contextmanager
    def installed(self) -> Iterator[Interrupts]:
        """Install the handlers (main thread only) for the duration of the block."""
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.fd, self._write_fd = read_fd, write_fd
        previous_wakeup = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            os.close(read_fd)
            os.close(write_fd)
            self.fd = self._write_fd = -1

    @contextmanager
    def opened(self) -> Iterator[Interrupts]:
        """The wake-up pipe without signal handlers: stops come from :meth:`request` (a
        run in a thread, e.g. ``repx tui``'s rerun, stopped when the TUI quits)."""
        read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.fd, self._write_fd = read_fd, write_fd
        try:
            yield self
        finally:
            os.close(read_fd)
            os.close(write_fd)
            self.fd = self._write_fd = -1

    def request(self) -> None:
        """Stop the run as one Ctrl-C does (callable from any thread)."""
        self.count += 1
        if self._write_fd >= 0:
            with suppress(OSError):
                os.write(self._write_fd, b"x")

    def drain(self) -> None:
        """Empty the wake-up pipe."""
        try:
            while os.read(self.fd, 512):
                pass
        except (BlockingIOError, OSError):
            pass

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1


class Scheduler:
    """Runs a pruned :class:`JobGraph` through an :class:`Executor`."""

    def __init__(
        self,
        graph: JobGraph,
        executor: Executor,
        spec_for: Callable[[str], JobSpec],
        emit: Callable[[Event], None],
        limits: Limits,
        *,
        continue_on_failure: bool = False,
        interrupts: Interrupts | None = None,
    ) -> None:
        self.graph = graph
        self.executor = executor
        self.spec_for = spec_for
        self.emit = emit
        self.limits = limits
        self.continue_on_failure = continue_on_failure
        self.interrupts = interrupts
        self.rank = {node: i for i, node in enumerate(graph.order)}
        self.succ: dict[str, list[tuple[str, EdgeKind]]] = {
            n: list(graph.successors(n)) for n in graph.order
        }
        self.waiting_on = {n: graph.graph.in_degree(n) for n in graph.order}
        self.state = dict.fromkeys(graph.order, NodeState.PENDING)
        self.stage = {n: n.split("-", 1)[-1] for n in graph.order}
        self.outcome = Outcome(self.state)
        self._ready: list[tuple[int, str]] = []
        self._specs: dict[str, JobSpec] = {}
        self._used_cpus = 0
        self._used_mem = 0
        self._running: dict[str, JobSpec] = {}
        self._stopping = False
        self._stop_deadline: float | None = None
        self._interrupts_seen = 0

    def run(self) -> Outcome:
        """Run until nothing more can start and nothing is running."""
        if self.executor.holds_dependencies:
            self._submit_held()
        else:
            for node in self.graph.order:
                if self.waiting_on[node] == 0:
                    self._make_ready(node)
        while True:
            if not self._stopping:
                self._dispatch()
            if not self._running:
                break
            events = self.executor.poll(self._poll_timeout())
            for event in events:
                self._on_event(event)
            self._check_interrupts()
        for node, state in self.state.items():
            if not state.terminal:
                self.state[node] = NodeState.SKIPPED
        return self.outcome

    # -- readiness and dispatch --------------------------------------------------------

    def _make_ready(self, node: str) -> None:
        if is_barrier(node):
            self._complete(node, success=True)
            return
        self.state[node] = NodeState.READY
        heapq.heappush(self._ready, (self.rank[node], node))

    def _submit_held(self) -> None:
        """Hand every job to an executor that orders them itself (SLURM: ``--dependency``).

        They count as running from now on; barriers stay here and complete as their jobs
        are reported; a failure blocks (and withdraws) the held jobs that need it.
        """
        for node in self.graph.order:
            if not is_barrier(node):
                self._submit(node, self.spec_for(node))

    def _dispatch(self) -> None:
        ready = self._ready
        deferred: list[tuple[int, str]] = []
        scanned = 0
        limits = self.limits
        while ready and len(self._running) < limits.max_jobs and scanned < _SCAN_LIMIT:
            item = heapq.heappop(ready)
            node = item[1]
            spec = self._specs.get(node)
            if spec is None:
                spec = self._specs[node] = self.spec_for(node)
            oversized = spec.cpus > limits.cpus or (
                limits.mem_bytes > 0 and spec.mem_bytes > limits.mem_bytes
            )
            if oversized:
                if self._running:
                    deferred.append(item)
                    scanned += 1
                    continue
                self.emit(
                    Notice(
                        message=f"{node} asks for {spec.cpus} CPU(s) and "
                        f"{spec.mem_bytes // 2**20} MiB, more than this machine has "
                        f"({limits.cpus} CPUs, {limits.mem_bytes // 2**20} MiB): running it alone"
                    )
                )
            elif self._used_cpus + spec.cpus > limits.cpus or (
                limits.mem_bytes > 0 and self._used_mem + spec.mem_bytes > limits.mem_bytes
            ):
                deferred.append(item)
                scanned += 1
                if self._used_cpus >= limits.cpus:
                    break  # nothing else can fit either
                continue
            self._submit(node, spec)
        for item in deferred:
            heapq.heappush(ready, item)

    def _submit(self, node: str, spec: JobSpec) -> None:
        self.state[node] = NodeState.RUNNING
        self._running[node] = spec
        self._used_cpus += spec.cpus
        self._used_mem += spec.mem_bytes
        self.executor.submit(spec)

    # -- events ------------------------------------------------------------------------

    def _on_event(self, event: Started | Waiting | Finished) -> None:
        if isinstance(event, Started):
            spec = self._running.get(event.job)
            params = spec.params if spec is not None else {}
            self.emit(JobStarted(job=event.job, stage=self.stage[event.job], params=params))
        elif isinstance(event, Waiting):
            self.emit(JobWaiting(job=event.job, stage=self.stage[event.job], holder=event.holder))
        else:
            self._on_finished(event)

    def _on_finished(self, event: Finished) -> None:
        node = event.job
        spec = self._running.pop(node, None)
        if spec is None:
            return  # a held job blocked meanwhile (its executor drops it on its own)
        self._used_cpus -= spec.cpus
        self._used_mem -= spec.mem_bytes
        result = event.result
        self.outcome.results[node] = result
        self.emit(
            JobFinished(
                job=node,
                stage=self.stage[node],
                params=spec.params,
                status=result.status,
                exit_code=result.exit_code,
                reason=result.reason,
                seconds=round(result.duration, 3),
                adopted=event.adopted,
            )
        )
        success = result.status is JobStatus.SUCCEEDED
        if not success and not self.continue_on_failure and not self._stopping:
            self._stopping = True
        self._complete(node, success=success)

    def _complete(self, node: str, *, success: bool) -> None:
        """Record the end of ``node`` and release (or block) what depends on it."""
        self.state[node] = NodeState.SUCCEEDED if success else NodeState.FAILED
        stack = [(node, success)]
        while stack:
            current, ok = stack.pop()
            for succ, kind in self.succ[current]:
                if self.state[succ].terminal:
                    continue
                if ok or not kind.needs_success:
                    self.waiting_on[succ] -= 1
                    if self.waiting_on[succ] == 0 and self.state[succ] is NodeState.PENDING:
                        if is_barrier(succ):
                            self.state[succ] = NodeState.SUCCEEDED
                            stack.append((succ, True))
                        else:
                            self._make_ready(succ)
                else:
                    self._block(succ, cause=current)
                    stack.append((succ, False))

    def _block(self, node: str, cause: str) -> None:
        held = self._running.pop(node, None)  # submitted to an executor holding it
        if held is not None:
            self._used_cpus -= held.cpus
            self._used_mem -= held.mem_bytes
        self.state[node] = NodeState.BLOCKED
        origin = self.outcome.blocked_by.get(cause, cause)
        self.outcome.blocked_by[node] = origin
        if not is_barrier(node):
            self.emit(
                JobBlocked(
                    job=node,
                    stage=self.stage[node],
                    params=self.spec_for(node).params,
                    cause=f"{origin} did not succeed",
                )
            )

    # -- interrupts --------------------------------------------------------------------

    def _poll_timeout(self) -> float | None:
        if self._stop_deadline is not None:
            return max(0.0, self._stop_deadline - time.monotonic())
        return None

    def _check_interrupts(self) -> None:
        interrupts = self.interrupts
        if interrupts is not None and interrupts.count > self._interrupts_seen:
            interrupts.drain()
            first = self._interrupts_seen == 0
            self._interrupts_seen = interrupts.count
            self.outcome.interrupted = True
            self._stopping = True
            self._drop(self.executor.cancel(force=not first))
            if first:
                self._stop_deadline = time.monotonic() + STOP_GRACE
                return
        if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
            self._drop(self.executor.cancel(force=True))
            self._stop_deadline = None

    def _drop(self, jobs: list[str]) -> None:
        """Jobs the executor dropped before they started: back to not-started."""
        for node in jobs:
            spec = self._running.pop(node, None)
            if spec is not None:
                self._used_cpus -= spec.cpus
                self._used_mem -= spec.mem_bytes
            self.state[node] = NodeState.SKIPPED
