"""``repx run --dry-run``: per stage what would run, and for each job why.

The store's facts come from the state owner (:func:`repx.inspect.status.store_cause`: a
failed attempt, damaged or deleted outputs); a job the store has never seen is explained
by comparing the lab with an earlier one (:func:`repx.inspect.diff.diff_labs`): a job of
the same run, stage and parameters whose script or upstream jobs changed, or a parameter
value the earlier lab did not sweep.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from pydantic import JsonValue

from repx.inspect.diff import JobChange, diff_labs
from repx.inspect.params import ParamIndex
from repx.inspect.status import RunCause, store_cause
from repx.inspect.view import LabView
from repx.lab.loader import LoadedLab
from repx.run.events import PlannedJob, PlannedStage
from repx.run.store import StoreIndex


@dataclass(frozen=True)
class Plan:
    """What ``repx run --dry-run`` reports beside the job ids."""

    stages: tuple[PlannedStage, ...]
    jobs: tuple[PlannedJob, ...]


def explain_plan(
    lab: LoadedLab,
    *,
    selected: Sequence[str],
    runs: Collection[str],
    to_run: Sequence[str],
    forced: Collection[str],
    index: StoreIndex,
    damaged: Mapping[str, str],
    previous: LoadedLab | None = None,
) -> Plan:
    """Stage counts and one :class:`PlannedJob` per job of ``to_run`` (in run order).

    ``previous``: the lab to compare with for jobs the store has never seen (the one last
    run into this store, or the previous build); None: they are simply new.
    """
    view = LabView(lab)
    params = ParamIndex(lab)
    changes = _changes(previous, lab) if previous is not None else {}
    running = set(to_run)
    counts: dict[tuple[str, str], list[int]] = {}
    for job in selected:
        key = (_run_of(lab, job, runs), lab.jobs[job].stage)
        entry = counts.setdefault(key, [0, 0])
        entry[0] += 1
        entry[1] += job in running
    stages = tuple(
        PlannedStage(run=r, stage=s, selected=n, cached=n - k, to_run=k)
        for (r, s), (n, k) in counts.items()
    )
    jobs = []
    for job in to_run:
        cause, reason = _cause(
            job, forced=forced, index=index, damaged=damaged, changes=changes, previous=previous
        )
        record = lab.jobs[job]
        effective = params.effective(job)
        shown: dict[str, JsonValue] = dict(effective.values)
        shown.update({k: list(v) for k, v in effective.multi.items()})
        jobs.append(
            PlannedJob(
                id=job,
                short_id=view.short_id(job),
                run=_run_of(lab, job, runs),
                stage=record.stage,
                params=dict(record.params),
                effective_params=shown,
                cause=cause.value,
                reason=reason,
            )
        )
    return Plan(stages, tuple(jobs))


def _run_of(lab: LoadedLab, job: str, runs: Collection[str]) -> str:
    names = lab.job_runs.get(job, ())
    return next((r for r in names if r in runs), names[0] if names else "?")


def _changes(previous: LoadedLab, lab: LoadedLab) -> dict[str, JobChange]:
    report = diff_labs(previous, lab)
    return {c.id: c for c in report.jobs if c.change != "removed"}


def _cause(
    job: str,
    *,
    forced: Collection[str],
    index: StoreIndex,
    damaged: Mapping[str, str],
    changes: Mapping[str, JobChange],
    previous: LoadedLab | None,
) -> tuple[RunCause, str]:
    if job in forced and job not in damaged and index.succeeded(job):
        return RunCause.FORCED, "forced (--force): its outputs are intact"
    found = store_cause(job, index, damaged)
    if found is not None:
        return found
    change = changes.get(job)
    if change is None:
        if previous is None:
            return RunCause.NEW, "new job: never run in this store"
        return RunCause.NEW, f"never run in this store (as in lab {previous.meta.lab_id[:12]})"
    why = "; ".join(change.reasons)
    since = f" since lab {previous.meta.lab_id[:12]}" if previous is not None else ""
    if change.change == "changed":
        if any(r.startswith("script changed") for r in change.reasons):
            return RunCause.SCRIPT_CHANGED, f"{why}{since}"
        if any(r.startswith("upstream changed") for r in change.reasons):
            return RunCause.UPSTREAM_CHANGED, f"{why}{since}"
        return RunCause.NEW, f"{why}{since}"
    if any(r.startswith("new parameter value") for r in change.reasons):
        return RunCause.NEW_PARAMETER, f"{why}{since}"
    return RunCause.NEW, f"new job: {why}{since}"
