"""Ending what a killed run left of an attempt (docs/running.md, "Crash safety").

A job's processes inherit its lock (:func:`repx.run.job.start`), so the lock stays held
while any of them lives, even after ``kill -9`` of the repx that started them. A later
run that finds the lock held by a dead process of this host ends them here instead of
waiting for them, and never starts a second attempt beside them.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Final

from repx import process
from repx.run.store import Store

logger = logging.getLogger(__name__)

#: The owner line a holder writes into a job's lock file.
_OWNER: Final = re.compile(r"pid (\d+) on (.+)")


def end_orphans(store: Store, job: str) -> bool:
    """End what is left of an attempt whose repx died (``kill -9``) on this host.

    The job's processes inherited its lock, so the lock stays held while
    any of them lives. When the holder named in the lock file is a dead process of this
    host, the processes that still hold the lock file open and carry the job's
    ``REPX_JOB_ID`` are SIGKILLed with their process groups; the lock is then free as soon
    as they are gone. Returns True when something was killed.
    """
    match = _OWNER.fullmatch(store.lock_holder(job))
    if match is None or match[2] != store.host:
        return False
    pid = int(match[1])
    if pid == os.getpid() or process.is_alive(pid):
        return False
    found = process.holders(os.fspath(store.locks / f"{job}.lock"), f"REPX_JOB_ID={job}")
    if not found:
        return False
    logger.info("%s: ending %d process(es) left by dead pid %d", job, len(found), pid)
    process.kill_groups(found)
    return True


def live_holder(store: Store, job: str) -> int | None:
    """The process of this host running ``job`` (the ``repx run`` that took its lock), when
    the lock is held, its owner line names a live process of this host and that process has
    the lock file open (a recycled pid has not)."""
    if not store.is_locked(job):
        return None
    match = _OWNER.fullmatch(store.lock_holder(job))
    if match is None or match[2] != store.host:
        return None
    pid = int(match[1])
    if pid == os.getpid() or not process.is_alive(pid):
        return None
    return pid if process.has_open(pid, os.fspath(store.locks / f"{job}.lock")) else None


def job_processes(store: Store, job: str) -> list[process.Holder]:
    """The processes of this host that run ``job`` (they hold its lock file and carry its
    ``REPX_JOB_ID``)."""
    return process.holders(os.fspath(store.locks / f"{job}.lock"), f"REPX_JOB_ID={job}")
