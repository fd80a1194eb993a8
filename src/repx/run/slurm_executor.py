"""The SLURM executor: jobs go to a cluster as job arrays that SLURM orders itself.

Behind the same :class:`~repx.run.executor.Executor` interface as the local executor, with
``holds_dependencies``: the scheduler hands over every job at once; the first
:meth:`SlurmExecutor.poll` (or :meth:`SlurmExecutor.flush`) submits them
(:mod:`repx.run.slurm_submit`), and every poll reports what the output store and
``squeue`` say of them (:mod:`repx.run.slurm_follow`).
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from repx.run.events import Event
from repx.run.executor import ExecutorEvent
from repx.run.graph import JobGraph
from repx.run.runtime import Runtime
from repx.run.slurm_follow import SlurmFollower
from repx.run.slurm_resources import SlurmResources
from repx.run.slurm_submit import SlurmSubmitter, SubmittedGroup
from repx.run.spec import JobSpec, NodeLocalLab
from repx.run.store import Store


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
    #: tasks of one plain job run the light task (repx.run.light_task)
    light_tasks: bool = True


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
        node_local: NodeLocalLab | None = None,
        wake_fd: int | None = None,
        emit: Callable[[Event], None] | None = None,
    ) -> None:
        self.settings = settings
        self.wake_fd = wake_fd
        self.follower = SlurmFollower(
            store, runtime_kind=runtime.kind.value, lab_id=lab_id, lost_grace=settings.lost_grace
        )
        self.submitter = SlurmSubmitter(
            store,
            runtime,
            graph,
            resources,
            self.follower,
            target=settings.target,
            python=settings.python,
            lab_id=lab_id,
            store_probe=store_probe,
            lab_store=lab_store,
            emit=emit or (lambda event: None),
            node_local=node_local,
            light_tasks=settings.light_tasks,
        )
        self._pending: list[JobSpec] = []
        self._next_queue = 0.0

    @property
    def submitted(self) -> list[SubmittedGroup]:
        """Every sbatch call made, in order."""
        return self.submitter.submitted

    @property
    def adopted(self) -> dict[str, str]:
        """Jobs found queued or running from an earlier submission (job -> SLURM id)."""
        return self.submitter.adopted

    @property
    def sbatch_calls(self) -> int:
        """How many times ``sbatch`` was called."""
        return self.submitter.sbatch_calls

    # -- the Executor interface ------------------------------------------------------------

    @property
    def active(self) -> int:
        """Jobs handed over and not reported finished."""
        return len(self._pending) + self.follower.active

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
        now = time.monotonic()
        ask_queue = now >= self._next_queue
        if ask_queue:
            self._next_queue = now + self.settings.queue_interval
        self.follower.check(events, ask_queue=ask_queue)
        return events

    def cancel(self, *, force: bool = False) -> list[str]:
        """Stop following (jobs stay in SLURM; ``repx cancel`` cancels them).

        Every job not reported yet is returned as dropped.
        """
        dropped = [spec.job for spec in self._pending] + self.follower.jobs()
        self._pending.clear()
        self.follower.clear()
        return dropped

    def close(self) -> None:
        """Nothing to release: jobs live in SLURM."""

    def flush(self) -> list[SubmittedGroup]:
        """Submit every job handed over since the last flush; return the sbatch calls made.

        On a refusal by SLURM, what this flush submitted is cancelled again and the error
        names the target, the stage and a job.
        """
        pending, self._pending = self._pending, []
        return self.submitter.flush(pending) if pending else []

    def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        if self.wake_fd is not None:
            select.select([self.wake_fd], [], [], seconds)
        else:
            time.sleep(seconds)
