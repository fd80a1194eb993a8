"""SLURM targets: the SLURM backend and ``repx cancel``.

:class:`SlurmBackend` is the :class:`~repx.services.backend.Backend` of a SLURM target: it
checks resources and that SLURM answers before anything is submitted, then hands jobs to
:class:`repx.run.slurm_executor.SlurmExecutor`. SLURM's view of job states is merged by the
state owner (:mod:`repx.inspect.status`, through :mod:`repx.inspect.scheduler`), for every
command.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import slurm
from repx.config import Target, config_dir, resolve_base
from repx.lab.loader import LoadedLab, open_lab
from repx.run.events import Event
from repx.run.graph import JobGraph
from repx.run.runtime import Runtime
from repx.run.selection import select
from repx.run.slurm_executor import SlurmExecutor, SlurmSettings
from repx.run.slurm_models import JobRef, job_refs, read_submissions
from repx.run.slurm_resources import (
    RESOURCES_FILE,
    ResourcePolicy,
    ResourcesFile,
    SlurmResources,
    check_target,
    load_resources,
)
from repx.run.spec import JobSpec, NodeLocalLab
from repx.run.store import Store
from repx.services.location import Location, target_of

logger = logging.getLogger(__name__)

#: how long ``repx cancel`` waits for cancelled tasks to leave SLURM's running states
CANCEL_SETTLE_SECONDS = 30.0

#: The target name used in messages when the default (unnamed) target is a SLURM one.
UNNAMED: Final = "(default)"


class SlurmBackend:
    """A SLURM target ready to submit: its name, settings and checked resources.

    It creates one :class:`SlurmExecutor` per run (:meth:`executor`) and answers the
    backend calls about it.
    """

    detached = True

    def __init__(
        self, name: str, settings: SlurmSettings, resources: Mapping[str, SlurmResources]
    ) -> None:
        self.name = name
        self.settings = settings
        self.resources = resources
        self._executor: SlurmExecutor | None = None

    @property
    def target(self) -> str:
        """The target's name (for the plan line)."""
        return self.name

    @classmethod
    def prepare(
        cls,
        name: str | None,
        target: Target,
        lab: LoadedLab,
        jobs: Sequence[str],
        resources_file: Path | None,
    ) -> SlurmBackend:
        """Check every job's resources, then that SLURM answers; nothing is submitted."""
        label = name or UNNAMED
        policy = resource_policy(resources_file, label, target)
        resolved = {
            job: policy.resolve(job, lab.jobs[job], lab.job_runs.get(job, [])) for job in jobs
        }
        if jobs:
            check_reachable(label)
        settings = SlurmSettings(
            target=label,
            python=target.slurm.python or sys.executable,
            light_tasks=target.slurm.light_tasks,
        )
        return cls(label, settings, resolved)

    def executor(
        self,
        store: Store,
        runtime: Runtime,
        plan: JobGraph,
        lab: LoadedLab,
        *,
        wake_fd: int | None = None,
        emit: Callable[[Event], None] | None = None,
        node_local: NodeLocalLab | None = None,
    ) -> SlurmExecutor:
        """The executor that submits ``plan``'s jobs (``emit`` receives its submissions);
        with ``node_local`` its tasks run the jobs from node-local copies of the lab."""
        probe, lab_store = node_store_info(lab)
        self._executor = SlurmExecutor(
            store,
            runtime,
            plan,
            self.resources,
            self.settings,
            lab_id=lab.meta.lab_id,
            store_probe=probe,
            lab_store=lab_store,
            node_local=node_local,
            wake_fd=wake_fd,
            emit=emit,
        )
        return self._executor

    def submit_all(self, specs: Sequence[JobSpec]) -> tuple[str, ...]:
        """Submit ``specs`` (a pruned plan, in order) without following; return the SLURM ids."""
        executor = self._require_executor()
        for spec in specs:
            executor.submit(spec)
        return tuple(group.slurm_id for group in executor.flush())

    def submitted_ids(self) -> tuple[str, ...]:
        """Every sbatch call's SLURM id, in order."""
        if self._executor is None:
            return ()
        return tuple(g.slurm_id for g in self._executor.submitted)

    def stopped_notice(self, not_started: int) -> str | None:
        """Jobs stay in SLURM when following stops: say how to see or cancel them."""
        return stopped_following(not_started) if not_started else None

    def _require_executor(self) -> SlurmExecutor:
        if self._executor is None:
            raise RuntimeError("SlurmBackend.executor() must be called first")
        return self._executor


def stopped_following(count: int) -> str:
    """The notice when ``repx run --wait`` stops following (Ctrl-C)."""
    return (
        f"stopped following; {count} job(s) stay queued or running in SLURM"
        " (`repx status` shows them, `repx cancel` cancels them)"
    )


def resource_policy(cli_file: Path | None, name: str, target: Target) -> ResourcePolicy:
    """``--resources FILE``, else the target's ``slurm.resources``, else
    ``resources.toml`` next to config.toml (optional), on top of the target's settings."""
    if cli_file is not None:
        path, required = cli_file.expanduser(), True
    elif target.slurm.resources is not None:
        path, required = target.slurm.resources.expanduser(), True
    else:
        path, required = config_dir() / RESOURCES_FILE, False
    file = load_resources(path, required=required) if required or path.exists() else ResourcesFile()
    check_target(name, target.slurm.partition, target.slurm.sbatch_options)
    return ResourcePolicy(
        file,
        source=os.fspath(path),
        target_partition=target.slurm.partition,
        target_options=target.slurm.sbatch_options,
        target=name,
    )


def check_reachable(name: str) -> None:
    """Raise :class:`~repx.slurm.SlurmUnavailableError`, naming the target, if SLURM is unusable."""
    try:
        slurm.ping()
    except slurm.SlurmUnavailableError as exc:
        raise slurm.SlurmUnavailableError(f"target '{name}': {exc.message}") from None


def node_store_info(lab: LoadedLab) -> tuple[str | None, str | None]:
    """A store path of the lab (nodes without it bind the lab's store/ copy) and that copy."""
    probe = lab.meta.store_paths[0] if lab.meta.store_paths else None
    copy = lab.root / lab.meta.store
    return probe, os.fspath(copy) if copy.is_dir() else None


# -- cancel -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cancelled:
    """One SLURM job or array task cancelled, and the repx jobs it was running or holding."""

    slurm_id: str
    stage: str
    jobs: tuple[str, ...]


@dataclass(frozen=True)
class CancelReport:
    """What ``repx cancel`` did."""

    base: Path
    cancelled: tuple[Cancelled, ...]
    #: what was given to scancel (whole arrays as one id)
    slurm_ids: tuple[str, ...] = ()

    @property
    def job_count(self) -> int:
        """repx jobs concerned."""
        return sum(len(c.jobs) for c in self.cancelled)


def cancel_submitted(
    base: Path, jobs: Iterable[str] | None, *, settle: float = CANCEL_SETTLE_SECONDS
) -> CancelReport:
    """Cancel the queued or running SLURM tasks of ``jobs`` (None: everything submitted
    from ``base``). A task that runs several jobs (a bundle) is cancelled whole.

    scancel only asks: a running task goes through COMPLETING while its processes stop.
    This returns once SLURM shows none of them queued or running (at most ``settle``
    seconds), so a ``repx run`` right after a cancel submits them again instead of
    following a task that is about to end cancelled.
    """
    refs = job_refs(read_submissions(base))
    wanted = refs if jobs is None else {j: refs[j] for j in jobs if j in refs}
    if not wanted:
        return CancelReport(base, ())
    entries = slurm.squeue({r.array_job for r in wanted.values()})
    active = {e.job_id for e in entries if e.state.active}
    by_task: dict[str, JobRef] = {}
    for job_ref in wanted.values():
        if job_ref.ref in active:
            by_task.setdefault(job_ref.ref, job_ref)
    if not by_task:
        return CancelReport(base, ())
    # A whole array whose every live task is cancelled goes as one id.
    tasks_of: dict[str, set[str]] = {}
    for entry in entries:
        if entry.state.active:
            tasks_of.setdefault(entry.array_job_id, set()).add(entry.job_id)
    chosen: dict[str, set[str]] = {}
    for task, job_ref in by_task.items():
        chosen.setdefault(job_ref.array_job, set()).add(task)
    ids: list[str] = []
    for array_job, task_refs in chosen.items():
        if task_refs == tasks_of.get(array_job, set()):
            ids.append(array_job)
        else:
            ids.extend(sorted(task_refs))
    slurm.scancel(ids)
    _await_end(ids, settle)
    cancelled = tuple(
        Cancelled(ref, by_task[ref].stage, by_task[ref].task_jobs) for ref in sorted(by_task)
    )
    return CancelReport(base, cancelled, tuple(ids))


def _await_end(ids: Sequence[str], settle: float) -> None:
    deadline = time.monotonic() + settle
    pause = 0.1
    while True:
        live = [e.job_id for e in slurm.squeue(ids) if e.state.active]
        if not live:
            return
        if time.monotonic() >= deadline:
            logger.warning(
                "SLURM still shows %s queued or running %.0f s after scancel",
                ", ".join(live[:5]),
                settle,
            )
            return
        time.sleep(pause)
        pause = min(pause * 2, 1.0)


def cancel_jobs(where: Location, selectors: Sequence[str]) -> CancelReport:
    """``repx cancel [SELECTOR]…``: selectors name runs, @groups or job ids of the lab
    (without their upstream); none cancels everything submitted from the base."""
    base = resolve_base(where.base, target_of(where))
    return cancel_submitted(base, selected_jobs(where, selectors))


def selected_jobs(where: Location, selectors: Sequence[str]) -> list[str] | None:
    """The jobs ``repx cancel`` selectors name (without their upstream); None: all."""
    if not selectors:
        return None
    return list(select(open_lab(where.lab), selectors).targets)
