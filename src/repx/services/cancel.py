"""Stopping running jobs and runs, local or SLURM (``repx tui``'s cancel keys).

SLURM jobs go through :func:`repx.services.slurm.cancel_submitted`, as ``repx cancel``.
Local jobs of this host are found by their job lock (:mod:`repx.run.orphans`):

- one job: its processes get SIGTERM (their process groups); the run that started it
  records the attempt as failed (``killed by SIGTERM``) and goes on as after any failure;
- a run: each ``repx run`` process holding a lock of the run's running jobs gets SIGTERM,
  which it handles as Ctrl-C: nothing new starts, its running jobs are recorded
  ``interrupted``, and the next ``repx run`` does what is left.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from repx import process
from repx.run.orphans import job_processes, live_holder
from repx.run.slurm_models import job_refs, read_submissions
from repx.run.store import Store
from repx.services.slurm import cancel_submitted

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stopped:
    """What a cancel did."""

    #: local jobs whose processes were sent SIGTERM
    jobs: tuple[str, ...] = ()
    #: ``repx run`` processes sent SIGTERM (as Ctrl-C)
    runners: tuple[int, ...] = ()
    #: SLURM jobs or tasks cancelled (scancel)
    slurm_ids: tuple[str, ...] = ()
    #: jobs whose rerun in this process (``repx tui``) was stopped
    reruns: tuple[str, ...] = ()

    @property
    def nothing(self) -> bool:
        """True when nothing was running."""
        return not (self.jobs or self.runners or self.slurm_ids or self.reruns)

    def describe(self) -> str:
        """One line for the user."""
        parts = []
        if self.jobs:
            parts.append(f"sent SIGTERM to {len(self.jobs)} job(s)")
        if self.runners:
            pids = ", ".join(str(p) for p in self.runners)
            parts.append(f"stopped repx run (pid {pids}) as Ctrl-C does")
        if self.slurm_ids:
            parts.append(f"cancelled SLURM job(s) {', '.join(self.slurm_ids)}")
        if self.reruns:
            parts.append(f"stopped {len(self.reruns)} rerun(s) started here")
        return "; ".join(parts) or "nothing to cancel: no job of it is running"


def cancel_job(base: Path, job: str) -> Stopped:
    """Stop one running (or SLURM-queued) job."""
    slurm_ids = _cancel_slurm(base, [job])
    store = Store.existing(base)
    found = job_processes(store, job) if store.is_locked(job) else []
    if found:
        logger.info("%s: SIGTERM to %d process(es)", job, len(found))
        process.kill_groups(found, signal.SIGTERM)
    return Stopped(jobs=(job,) if found else (), slurm_ids=slurm_ids)


def cancel_run(base: Path, jobs: Iterable[str]) -> Stopped:
    """Stop what runs ``jobs`` (a run's jobs): their SLURM tasks, and the local ``repx run``
    processes running some of them."""
    wanted = list(jobs)
    slurm_ids = _cancel_slurm(base, wanted)
    return Stopped(runners=stop_local_runs(base, wanted), slurm_ids=slurm_ids)


def stop_local_runs(base: Path, jobs: Iterable[str] | None = None) -> tuple[int, ...]:
    """SIGTERM (handled as Ctrl-C) to each ``repx run`` of this host running one of ``jobs``
    (None: any job of the store); returns their pids. SLURM tasks are left to scancel."""
    store = Store.existing(base)
    in_progress = store.attempts_in_progress()
    wanted = in_progress if jobs is None else [j for j in jobs if j in in_progress]
    runners: set[int] = set()
    for job in wanted:
        # a SLURM task of this node holds its jobs' locks too: scancel stops those
        if (pid := live_holder(store, job)) is not None and not process.has_env(
            pid, "SLURM_JOB_ID"
        ):
            runners.add(pid)
    for pid in sorted(runners):
        logger.info("SIGTERM to repx run pid %d", pid)
        os.kill(pid, signal.SIGTERM)
    return tuple(sorted(runners))


def _cancel_slurm(base: Path, jobs: list[str]) -> tuple[str, ...]:
    refs = job_refs(read_submissions(base))
    if not any(job in refs for job in jobs):
        return ()  # never submitted to SLURM: no squeue call
    return cancel_submitted(base, jobs).slurm_ids
