"""What SLURM says of the jobs submitted from an output store (one ``squeue`` call).

Read by the state owner (:func:`repx.inspect.status.read_status`) *before* the store, so
that a task that ends while we look is then found in the store (see its docstring). Only
jobs whose last submission is newer than their last result are asked about: a store where
every submitted job has settled costs no ``squeue`` call.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from repx import slurm
from repx.run.slurm_models import JobRef, job_refs, read_submissions, submissions_path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Queued:
    """A job's last submission and what ``squeue`` shows of its task."""

    ref: JobRef
    entry: slurm.QueueEntry

    @property
    def active(self) -> bool:
        """Queued or running in SLURM."""
        return self.entry.state.active


def has_submissions(base: Path) -> bool:
    """True when jobs were submitted to SLURM from ``base`` (one ``stat``)."""
    return os.path.exists(submissions_path(base))  # noqa: PTH110 (one call)


def read_queue(
    base: Path, jobs: Collection[str], records: Mapping[str, Mapping[str, object]]
) -> dict[str, Queued]:
    """job -> its SLURM task, for ``jobs`` submitted from ``base`` whose last result in
    ``records`` is older than the submission. Empty when SLURM cannot be asked (a warning)."""
    refs = job_refs(read_submissions(base))
    unsettled = {
        job: ref
        for job, ref in refs.items()
        if job in jobs and not result_is_newer(records.get(job), ref)
    }
    if not unsettled:
        return {}
    try:
        entries = {e.job_id: e for e in slurm.squeue({r.array_job for r in unsettled.values()})}
    except slurm.SlurmError as exc:
        logger.warning("SLURM states left out: %s", exc.message)
        return {}
    return {
        job: Queued(ref, entries[ref.ref]) for job, ref in unsettled.items() if ref.ref in entries
    }


def result_is_newer(record: Mapping[str, object] | None, ref: JobRef) -> bool:
    """True when the store's last result of a job ended after its last submission."""
    end = record.get("end") if record is not None else None
    return isinstance(end, int | float) and end >= ref.submitted
