"""How jobs become sbatch calls: dependencies, job arrays, bundles (pure functions).

Jobs of one stage that ask for the same resources and wait for the same things go in as
one job array. "The same things" is decided level by level (a job's level is the length
of the longest chain of jobs it waits for), so the upstream groups are final when a job
is keyed:

- an upstream *group* all of whose tasks a job needs is one ``afterok:<id>`` (a gather);
- when a job needs exactly one task of an upstream array, its own array index is that
  task's index and the group waits with ``aftercorr:<id>`` (a 1:1 chain stays one array);
- anything else is listed task by task (``afterok:<id>_<index>``);
- soft run dependencies use ``afterany`` (the job runs whatever the outcome).

A group may bundle ``jobs_per_task`` jobs into each array task (one wrapper start for
several short jobs) when nothing waits for a part of it only. Under ``"auto"`` a group
is also bundled when one job per task would exceed the submission's budget
(:func:`budget_bundle`: :data:`ARRAY_BUDGET` arrays of MaxArraySize per group, and
:data:`JOB_COUNT_SHARE` of the cluster's MaxJobCount for all tasks of the submission).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, NamedTuple

from repx.run.graph import JobGraph, is_barrier
from repx.run.slurm_resources import SlurmResources

#: Arrays one group may take (sbatch calls) before ``"auto"`` bundles its jobs.
ARRAY_BUDGET: Final = 20
#: The share of the cluster's MaxJobCount (shared by all its users; every array task is
#: a job record) that the tasks of one submission may take before ``"auto"`` bundles.
JOB_COUNT_SHARE: Final = 0.25


class DepKind(StrEnum):
    """A SLURM dependency type."""

    OK = "afterok"
    ANY = "afterany"


@dataclass
class PlannedGroup:
    """One future sbatch call."""

    number: int
    stage: str
    resources: SlurmResources
    #: array index -> the jobs that task runs (in order)
    tasks: dict[int, list[str]]
    array: bool
    #: upstream groups needed whole: (kind, group number)
    after_groups: set[tuple[DepKind, int]] = field(default_factory=set)
    #: single upstream tasks: (kind, group number, index)
    after_tasks: set[tuple[DepKind, int, int]] = field(default_factory=set)
    #: tasks submitted earlier (adopted): (kind, "123_4")
    after_refs: set[tuple[DepKind, str]] = field(default_factory=set)
    #: group whose task of the same index each task waits for (``aftercorr``)
    corr: int | None = None
    #: bundled beyond "auto" to stay within the budget: what one job per task would need
    over_budget: str | None = None

    @property
    def jobs(self) -> list[str]:
        """Every job of the group, in task order."""
        return [job for index in sorted(self.tasks) for job in self.tasks[index]]

    @property
    def bundle(self) -> int:
        """The most jobs one task runs."""
        return max(len(jobs) for jobs in self.tasks.values())

    def dependency(self, slurm_ids: Mapping[int, str], arrays: Mapping[int, bool]) -> str | None:
        """The ``--dependency`` value, given the SLURM ids of earlier groups."""
        by_kind: dict[str, list[str]] = {}
        for kind, group in sorted(self.after_groups):
            by_kind.setdefault(kind.value, []).append(slurm_ids[group])
        for kind, group, index in sorted(self.after_tasks):
            ref = f"{slurm_ids[group]}_{index}" if arrays[group] else slurm_ids[group]
            by_kind.setdefault(kind.value, []).append(ref)
        for kind, ref in sorted(self.after_refs):
            by_kind.setdefault(kind.value, []).append(ref)
        if self.corr is not None:
            by_kind.setdefault("aftercorr", []).append(slurm_ids[self.corr])
        parts = [f"{kind}:{':'.join(dict.fromkeys(refs))}" for kind, refs in by_kind.items()]
        return ",".join(parts) or None


#: job -> {upstream job it waits for: kind}
DependencyMap = Mapping[str, Mapping[str, DepKind]]


class _Key(NamedTuple):
    """What jobs of one array share."""

    stage: str
    resources: SlurmResources
    whole: frozenset[tuple[DepKind, int]]
    single: frozenset[tuple[DepKind, int, int]]
    refs: frozenset[tuple[DepKind, str]]
    corr: int | None


#: The empty dependency sets of a job that waits for nothing (shared by every such key).
_NONE: frozenset[Any] = frozenset()


def held_dependencies(graph: JobGraph) -> dict[str, dict[str, DepKind]]:
    """job -> {upstream job of the plan: kind}; run-dependency barriers are resolved."""
    deps: dict[str, dict[str, DepKind]] = {}
    for node in graph.order:
        if is_barrier(node):
            continue
        found: dict[str, DepKind] = {}
        stack = [
            (pred, DepKind.OK if kind.needs_success else DepKind.ANY)
            for pred, kind in graph.predecessors(node)
        ]
        while stack:
            pred, kind = stack.pop()
            if is_barrier(pred):
                # The barrier's own edges say what it needs (hard: success; soft: finished).
                stack.extend(
                    (member, DepKind.OK if member_kind.needs_success else DepKind.ANY)
                    for member, member_kind in graph.predecessors(pred)
                )
                continue
            if found.get(pred) is not DepKind.OK:
                found[pred] = kind
        deps[node] = found
    return deps


def plan_groups(
    jobs: Sequence[str],
    *,
    stage_of: Mapping[str, str],
    deps: Mapping[str, Mapping[str, DepKind]],
    resources: Mapping[str, SlurmResources],
    adopted: Mapping[str, str],
    max_array_size: int,
    max_job_count: int | None = None,
    bundle_size: Callable[[SlurmResources, int], int] | None = None,
) -> list[PlannedGroup]:
    """Group ``jobs`` (topological order) into sbatch calls, in submission order.

    ``adopted``: jobs already queued or running in SLURM (job -> ``123_4``); they are
    waited for, not submitted. ``max_array_size``: SLURM's MaxArraySize (indices stay below).
    ``max_job_count``: SLURM's MaxJobCount (None: no budget on tasks).
    ``bundle_size(resources, jobs)``: jobs per task for a group (default: the resources'
    ``jobs_per_task``, else 1). Groups whose ``jobs_per_task`` is "auto" (None) get at
    least :func:`budget_bundle` jobs per task.
    """
    level: dict[str, int] = {}
    dependents: dict[str, list[str]] = {}
    levels: dict[int, list[str]] = {}
    for job in jobs:
        job_deps = deps[job]
        if job_deps:
            depth = 1 + max((level[p] for p in job_deps if p in level), default=-1)
            for pred in job_deps:
                dependents.setdefault(pred, []).append(job)
        else:
            depth = 0  # a sweep's jobs: one dictionary look-up each
        level[job] = depth
        levels.setdefault(depth, []).append(job)

    groups: list[PlannedGroup] = []
    where: dict[str, tuple[PlannedGroup, int]] = {}
    for depth in sorted(levels):
        keyed: dict[_Key, list[tuple[str, int | None]]] = {}
        for job in levels[depth]:
            key, corr_index = _key(
                stage_of[job], deps[job], resources[job], where=where, adopted=adopted
            )
            keyed.setdefault(key, []).append((job, corr_index))
        for key, members in keyed.items():
            for group in _make_groups(
                key,
                members,
                deps=deps,
                dependents=dependents,
                max_array_size=max_array_size,
                task_cap=_task_cap(max_job_count, len(members), len(jobs)),
                earlier=groups,
                bundle_size=bundle_size or _fixed_bundle,
            ):
                groups.append(group)
                for index, task_jobs in group.tasks.items():
                    for job in task_jobs:
                        where[job] = (group, index)
    return groups


def _key(
    stage: str,
    job_deps: Mapping[str, DepKind],
    resources: SlurmResources,
    *,
    where: Mapping[str, tuple[PlannedGroup, int]],
    adopted: Mapping[str, str],
) -> tuple[_Key, int | None]:
    if not job_deps:  # a sweep's jobs: nothing to wait for
        return _Key(stage, resources, _NONE, _NONE, _NONE, None), None
    per_group: dict[tuple[int, DepKind], set[int]] = {}
    groups: dict[int, PlannedGroup] = {}
    refs: set[tuple[DepKind, str]] = set()
    for pred, kind in job_deps.items():
        if pred in where:
            group, index = where[pred]
            groups[group.number] = group
            per_group.setdefault((group.number, kind), set()).add(index)
        elif pred in adopted:
            refs.add((kind, adopted[pred]))
        # else: done already (not in the plan)
    whole: set[tuple[DepKind, int]] = set()
    single: set[tuple[DepKind, int, int]] = set()
    for (number, kind), indices in per_group.items():
        if indices == set(groups[number].tasks):
            whole.add((kind, number))
        else:
            single.update((kind, number, i) for i in indices)
    corr: int | None = None
    corr_index: int | None = None
    if len(single) == 1:
        kind, number, index = next(iter(single))
        if kind is DepKind.OK and groups[number].array:
            corr, corr_index = number, index
            single = set()
    key = _Key(stage, resources, frozenset(whole), frozenset(single), frozenset(refs), corr)
    return key, corr_index


def _make_groups(
    key: _Key,
    members: list[tuple[str, int | None]],
    *,
    deps: Mapping[str, Mapping[str, DepKind]],
    dependents: Mapping[str, list[str]],
    max_array_size: int,
    task_cap: int | None,
    earlier: list[PlannedGroup],
    bundle_size: Callable[[SlurmResources, int], int],
) -> list[PlannedGroup]:
    stage, resources, whole, single, refs, corr = key
    made: list[PlannedGroup] = []

    def new(tasks: dict[int, list[str]], corr_group: int | None) -> None:
        group = PlannedGroup(
            number=len(earlier) + len(made),
            stage=stage,
            resources=resources,
            tasks=tasks,
            array=len(tasks) > 1 or corr_group is not None,
            after_groups=set(whole),
            after_tasks=set(single),
            after_refs=set(refs),
            corr=corr_group,
        )
        made.append(group)

    if corr is not None:
        # Index = the upstream task's index; a second job on the same index goes to
        # another array (rare: a fan-out from one upstream job).
        rounds: list[dict[int, list[str]]] = []
        for job, index in members:
            assert index is not None
            for tasks in rounds:
                if index not in tasks:
                    tasks[index] = [job]
                    break
            else:
                rounds.append({index: [job]})
        for tasks in rounds:
            if max(tasks) < max_array_size:
                new(tasks, corr)
            else:  # indices SLURM cannot take: wait for the whole upstream group instead
                for index, task_jobs in sorted(tasks.items()):
                    group_tasks = {0: task_jobs}
                    new(group_tasks, None)
                    made[-1].after_tasks.add((DepKind.OK, corr, index))
                    made[-1].array = False
        return made

    jobs = [job for job, _ in members]
    per_task = bundle_size(resources, len(jobs))
    over_budget: str | None = None
    if resources.jobs_per_task is None:  # "auto": also within the budget
        needed = budget_bundle(len(jobs), max_array_size, task_cap)
        if needed > per_task:
            per_task = needed
            over_budget = _over_budget(len(jobs), max_array_size, task_cap)
    if per_task > 1:
        members_set = set(jobs)
        partial = any(
            not members_set <= deps[d].keys() for job in jobs for d in dependents.get(job, ())
        )
        if partial:
            per_task = 1  # something waits for single jobs of this group: one job per task
            over_budget = None
    chunks = [jobs[i : i + per_task] for i in range(0, len(jobs), per_task)]
    for start in range(0, len(chunks), max_array_size):
        part = chunks[start : start + max_array_size]
        new(dict(enumerate(part)), None)
        made[-1].over_budget = over_budget
    return made


def budget_bundle(jobs: int, max_array_size: int, task_cap: int | None) -> int:
    """The fewest jobs per task that keep ``jobs`` within :data:`ARRAY_BUDGET` arrays of
    ``max_array_size`` tasks and within ``task_cap`` tasks."""
    cap = ARRAY_BUDGET * max_array_size
    if task_cap is not None:
        cap = min(cap, task_cap)
    return max(1, -(-jobs // max(1, cap)))


def _task_cap(max_job_count: int | None, group_jobs: int, all_jobs: int) -> int | None:
    """A group's share of :data:`JOB_COUNT_SHARE` of MaxJobCount (by its number of jobs)."""
    if max_job_count is None:
        return None
    return max(1, int(max_job_count * JOB_COUNT_SHARE) * group_jobs // max(1, all_jobs))


def _over_budget(jobs: int, max_array_size: int, task_cap: int | None) -> str:
    """Why ``jobs`` one per task exceed the budget (the bound that binds, for the notice)."""
    if task_cap is not None and task_cap < ARRAY_BUDGET * max_array_size:
        return f"{jobs} tasks (its share of {JOB_COUNT_SHARE:.0%} of MaxJobCount: {task_cap})"
    arrays = -(-jobs // max_array_size)
    return f"{arrays} arrays (MaxArraySize {max_array_size}; budget {ARRAY_BUDGET})"


def _fixed_bundle(resources: SlurmResources, jobs: int) -> int:
    return resources.jobs_per_task or 1


def array_spec(indices: Sequence[int]) -> str:
    """``0-999`` or ``0,2,5-6`` for sorted array indices."""
    ordered = sorted(indices)
    parts: list[str] = []
    start = prev = ordered[0]
    for index in ordered[1:]:
        if index == prev + 1:
            prev = index
            continue
        parts.append(f"{start}-{prev}" if prev > start else str(start))
        start = prev = index
    parts.append(f"{start}-{prev}" if prev > start else str(start))
    return ",".join(parts)
