"""Backends: where the jobs of ``repx run`` execute, behind one protocol.

``repx run`` (:func:`repx.services.run.run_lab`) picks a backend from the target
(:func:`choose_backend`) and never asks which one it got. The local backend runs jobs as
child processes of this process; the SLURM backend (:mod:`repx.services.slurm`) hands them
to a cluster, where they outlive ``repx run`` unless it is asked to ``--wait``. Both use
the same output store, locks and commit protocol, so ``repx status`` reads them alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from repx.config import SchedulerKind, Target
from repx.errors import UsageError
from repx.lab.loader import LoadedLab
from repx.run.events import Event
from repx.run.executor import Executor, LocalExecutor
from repx.run.graph import JobGraph
from repx.run.runtime import Runtime
from repx.run.spec import JobSpec, NodeLocalLab
from repx.run.store import Store


class Backend(Protocol):
    """What ``repx run`` needs from a place that runs jobs."""

    #: shown in the run's plan line ("on SLURM target X"); None for this machine
    @property
    def target(self) -> str | None: ...

    #: True when submitted jobs run on without this process (a cluster): ``repx run``
    #: then returns after :meth:`submit_all` unless it is asked to follow (``--wait``)
    @property
    def detached(self) -> bool: ...

    def executor(
        self,
        store: Store,
        runtime: Runtime,
        plan: JobGraph,
        lab: LoadedLab,
        *,
        wake_fd: int | None,
        emit: Callable[[Event], None],
        node_local: NodeLocalLab | None = None,
    ) -> Executor:
        """The executor the scheduler drives (the backend keeps it for the calls below);
        ``node_local``: jobs on other hosts read the lab from copies made there."""

    def submit_all(self, specs: Sequence[JobSpec]) -> tuple[str, ...]:
        """Hand every job over without following it (only when :attr:`detached`);
        return the backend's ids of what was submitted."""

    def submitted_ids(self) -> tuple[str, ...]:
        """The backend's ids of everything submitted so far (empty locally)."""

    def stopped_notice(self, not_started: int) -> str | None:
        """What to tell when following stops with ``not_started`` jobs left (None: nothing)."""


@dataclass
class LocalBackend:
    """Jobs run here, as child processes of ``repx run``."""

    target: str | None = None
    detached: bool = False

    def executor(
        self,
        store: Store,
        runtime: Runtime,
        plan: JobGraph,
        lab: LoadedLab,
        *,
        wake_fd: int | None,
        emit: Callable[[Event], None],
        node_local: NodeLocalLab | None = None,
    ) -> Executor:
        """A :class:`~repx.run.executor.LocalExecutor` (the plan is the scheduler's; a
        local run with a node-local copy has opened the lab there already)."""
        return LocalExecutor(store, runtime, wake_fd=wake_fd)

    def submit_all(self, specs: Sequence[JobSpec]) -> tuple[str, ...]:
        """Never called: local jobs only run while ``repx run`` follows them."""
        raise RuntimeError("the local backend runs jobs only while it follows them")

    def submitted_ids(self) -> tuple[str, ...]:
        """Local jobs have no backend ids."""
        return ()

    def stopped_notice(self, not_started: int) -> str | None:
        """Jobs not started locally simply wait for the next run: the summary says so."""
        return None


def check_backend_options(name: str | None, target: Target, resources_file: Path | None) -> None:
    """Refuse options the target's backend does not take, before anything is touched.

    ``--resources`` only means something to a SLURM target.
    """
    if resources_file is not None and target.scheduler is not SchedulerKind.SLURM:
        label = f"target '{name}'" if name else "the default target"
        raise UsageError(
            f"--resources applies to SLURM targets only; {label} runs jobs locally",
            "drop --resources, or pick a SLURM target with --target",
        )


def choose_backend(
    name: str | None,
    target: Target,
    lab: LoadedLab,
    jobs: Sequence[str],
    resources_file: Path | None,
) -> Backend:
    """The backend of ``target``, checked before anything runs.

    SLURM: every job's resources are resolved and SLURM is asked whether it answers.
    """
    check_backend_options(name, target, resources_file)
    if target.scheduler is SchedulerKind.SLURM:
        from repx.services.slurm import SlurmBackend  # noqa: PLC0415 (SLURM only)

        return SlurmBackend.prepare(name, target, lab, jobs, resources_file)
    return LocalBackend()
