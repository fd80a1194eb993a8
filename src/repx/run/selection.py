"""Turn command-line selectors (RUN, @GROUP, job-id prefix) into the jobs to run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from repx.errors import UsageError
from repx.inspect.resolve import match_jobs, resolve_group, resolve_job, unknown_selector
from repx.inspect.view import LabView
from repx.lab.loader import LoadedLab


@dataclass(frozen=True)
class Selection:
    """The jobs a command works on.

    ``targets`` are the jobs asked for; ``jobs`` adds everything they need: their upstream
    jobs (inputs) and every job of the runs their runs depend on. ``runs`` are the runs whose
    run-level dependencies apply (the runs asked for, the runs of jobs asked for, and the
    runs those depend on). Both job tuples are in lab order (run order, then manifest order).
    """

    targets: tuple[str, ...]
    jobs: tuple[str, ...]
    runs: frozenset[str]


def lab_order(lab: LoadedLab) -> dict[str, int]:
    """Position of every job in lab order: runs in ``run_order``, jobs as listed."""
    order: dict[str, int] = {}
    for run in lab.revision.run_order:
        for job in lab.runs[run].jobs:
            order.setdefault(job, len(order))
    for job in lab.jobs:  # runs missing from run_order (invalid labs) still get a place
        order.setdefault(job, len(order))
    return order


def select(lab: LoadedLab, selectors: Sequence[str]) -> Selection:
    """Resolve ``selectors`` (all runs when empty); unknown or ambiguous ones are errors."""
    explicit_runs: list[str] = []
    explicit_jobs: list[str] = []
    resolver = _Resolver(lab)
    if not selectors:
        explicit_runs = list(lab.revision.run_order) or list(lab.runs)
    for token in selectors:
        kind, names = resolver.resolve(token)
        (explicit_runs if kind == "runs" else explicit_jobs).extend(names)

    active = _run_closure(
        lab, [*explicit_runs, *(r for j in explicit_jobs for r in lab.job_runs[j])]
    )
    targets = dict.fromkeys(j for r in explicit_runs for j in lab.runs[r].jobs)
    targets.update(dict.fromkeys(explicit_jobs))
    # Runs depended upon are needed whole (a dependency waits for all of their jobs).
    dependency_runs = _run_closure(
        lab, [d for r in active for d in lab.revision.runs[r].depends_on]
    )
    wanted = dict(targets)
    wanted.update(dict.fromkeys(j for r in dependency_runs for j in lab.runs[r].jobs))
    closure = _upstream_closure(lab, wanted)
    order = lab_order(lab)
    return Selection(
        targets=tuple(sorted(targets, key=order.__getitem__)),
        jobs=tuple(sorted(closure, key=order.__getitem__)),
        runs=frozenset(active),
    )


class _Resolver:
    def __init__(self, lab: LoadedLab) -> None:
        self.lab = lab
        # the one job-id resolver of every command (lazy: ids are sorted on first use)
        self.jobs = LabView(lab)

    def resolve(self, token: str) -> tuple[str, list[str]]:
        lab = self.lab
        if token.startswith("@"):
            return "runs", list(lab.revision.groups[resolve_group(self.jobs, token)])
        if token in lab.runs:
            return "runs", [token]
        if not token.strip():
            raise UsageError("empty selector")
        if match_jobs(self.jobs, token.strip()):
            return "jobs", [resolve_job(self.jobs, token)]
        raise unknown_selector(self.jobs, token)


def _run_closure(lab: LoadedLab, runs: Sequence[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(runs)
    while stack:
        run = stack.pop()
        if run in seen:
            continue
        seen.add(run)
        entry = lab.revision.runs.get(run)
        if entry is not None:
            stack.extend(entry.depends_on)
    return seen


def _upstream_closure(lab: LoadedLab, jobs: dict[str, None]) -> set[str]:
    upstream = lab.upstream  # the job index's: no record read
    seen: set[str] = set()
    stack = list(jobs)
    while stack:
        job = stack.pop()
        if job in seen:
            continue
        seen.add(job)
        stack.extend(up for up in upstream[job] if up not in seen)
    return seen
