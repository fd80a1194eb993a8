"""``repx status``: the state of a lab's jobs in an output store, as one report.

Kept apart from :mod:`repx.services.run` so that ``repx status`` imports neither the runner
nor the graph library (about 0.4 s of start-up).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from repx.config import resolve_base
from repx.inspect.resolve import resolve_run
from repx.inspect.status import FINISHED, JobState, StatusView, read_status
from repx.inspect.view import LabView
from repx.lab.loader import open_lab
from repx.lab.models import SCATTER_GATHER
from repx.run.pieces import Progress
from repx.run.selection import lab_order
from repx.run.store import Store
from repx.services.location import Location, target_of


class JobStatusEntry(BaseModel):
    """One job in ``repx status --json`` (the fields of ``repx list jobs --json``)."""

    model_config = ConfigDict(frozen=True)

    id: str
    run: str
    stage: str
    status: JobState
    exit_code: int | None = None
    reason: str | None = None
    #: the SLURM job (``123_4``) when SLURM decided the state
    slurm_id: str | None = None
    #: host paths the last attempt saw (an impure run: NOT reproducible)
    impure: tuple[str, ...] = ()
    #: a scatter-gather job: branches complete out of its work items (once it scattered)
    branches: Progress | None = None


class StageStatus(BaseModel):
    """Counts of one stage of a run."""

    model_config = ConfigDict(frozen=True)

    run: str
    stage: str
    counts: dict[JobState, int]


class StatusReport(BaseModel):
    """``repx status``: job states of a lab in an output store."""

    model_config = ConfigDict(frozen=True)

    lab: str
    base: str
    stages: tuple[StageStatus, ...]
    jobs: tuple[JobStatusEntry, ...]

    def totals(self) -> dict[JobState, int]:
        """Counts over every job listed."""
        totals = dict.fromkeys(JobState, 0)
        for entry in self.jobs:
            totals[entry.status] += 1
        return totals

    @property
    def finished(self) -> bool:
        """True when no job listed can change without a new ``repx run`` (succeeded,
        failed, blocked or cancelled)."""
        return all(entry.status in FINISHED for entry in self.jobs)


def lab_status(where: Location, run: str | None = None) -> StatusReport:
    """The state of every job of the lab (or of one run) in the output store.

    The states are one snapshot of :func:`repx.inspect.status.read_status` (the one owner:
    ``repx list jobs --status``, ``repx show job`` and ``repx.Lab`` read the same), SLURM's
    view included for jobs submitted from this base. A base directory that is not an output
    store is an error.
    """
    return StatusSource(where, run).report()


class StatusSource:
    """A lab opened once, whose job states are read again on each :meth:`report`.

    ``repx status --watch`` and ``repx tui`` poll with it: the lab is parsed, the run
    checked and the jobs ordered once; each report is one new snapshot of the state owner
    (:func:`repx.inspect.status.read_status`).
    """

    def __init__(self, where: Location, run: str | None = None) -> None:
        self.base = resolve_base(where.base, target_of(where))
        # Lazily: a state needs each job's stage and outputs (JobFacts), not its record.
        self.lab = open_lab(where.lab, lazy=True)
        lab = self.lab
        if run is not None:
            resolve_run(LabView(lab), run)  # an unknown one: the runs and the closest name
        Store.existing(self.base, strict=True)  # refuses a non-store and an unknown format
        self.runs = [run] if run is not None else list(lab.revision.run_order or lab.runs)
        order = lab_order(lab)
        #: (run, job), runs in order and each run's jobs in pipeline order
        self.rows: tuple[tuple[str, str], ...] = tuple(
            (name, job_id)
            for name in self.runs
            for job_id in sorted(lab.runs[name].jobs, key=order.__getitem__)
        )

        #: scatter-gather jobs: their branch counts change while their state does not
        facts = lab.facts
        self._scattering = frozenset(
            j for _, j in self.rows if facts[j].stage_type == SCATTER_GATHER
        )
        self._last: tuple[tuple[object, ...], StatusReport] | None = None

    def view(self) -> StatusView:
        """One snapshot of every job's state (the state owner's)."""
        return read_status(self.lab, self.base)

    def report(self, view: StatusView | None = None) -> StatusReport:
        """The report of ``view`` (default: a new snapshot). The previous report is
        returned again when nothing it shows has changed (polling a large lab)."""
        view = self.view() if view is None else view
        key = (view.states, view.reasons, view.slurm_ids, view.records)
        unchanged = self._last is not None and self._last[0] == key
        if unchanged and all(view.state(j) in FINISHED for j in self._scattering):
            assert self._last is not None
            return self._last[1]
        report = self._report(view)
        self._last = (key, report)
        return report

    def _report(self, view: StatusView) -> StatusReport:
        lab = self.lab
        facts = lab.facts
        entries: list[JobStatusEntry] = []
        stages: dict[tuple[str, str], dict[JobState, int]] = {}
        for name, job_id in self.rows:
            stage = facts[job_id].stage
            state = view.state(job_id)
            scatter = lab.jobs[job_id].scatter_gather if job_id in self._scattering else None
            entries.append(
                JobStatusEntry(
                    id=job_id,
                    run=name,
                    stage=stage,
                    status=state,
                    exit_code=view.exit_code(job_id),
                    reason=view.reason(job_id),
                    slurm_id=view.slurm_id(job_id),
                    impure=view.impure(job_id),
                    branches=view.branches(job_id, scatter),
                )
            )
            counts = stages.get((name, stage))
            if counts is None:
                counts = stages[name, stage] = dict.fromkeys(JobState, 0)
            counts[state] += 1
        return StatusReport(
            lab=os.fspath(lab.root),
            base=os.fspath(self.base),
            stages=tuple(StageStatus(run=r, stage=s, counts=c) for (r, s), c in stages.items()),
            jobs=tuple(entries),
        )


def watch_status(source: StatusSource, interval: float) -> Iterator[StatusReport]:
    """A report now, then one every ``interval`` seconds while some job is not finished
    (the last report is the finished one). The lab is read once (``source``)."""
    while True:
        report = source.report()
        yield report
        if report.finished:
            return
        time.sleep(interval)
