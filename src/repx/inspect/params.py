"""Parameter values: display, matching, effective parameters and their provenance.

A job's *effective* parameters are its own (``params``) plus every parameter of its
upstream jobs, transitively; a job's own value hides upstream values of the same name. A
parameter that takes one value upstream is inherited as that value (a ``stats`` job gets
the ``seed`` of the ``simulate`` job it reads); one that takes several values (a gathered
input covering a sweep) is *multi-valued*: it is not an effective value, but
:func:`trace_params` lists every value with the jobs it comes from.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from repx.errors import LabError, one_line
from repx.lab.loader import LoadedLab

if TYPE_CHECKING:
    from pydantic import JsonValue

#: value key -> value, in order of appearance
_Values = dict[Hashable, "JsonValue"]


def value_key(value: JsonValue) -> Hashable:
    """A hashable key for a JSON value (``1`` and ``true`` differ, ``1`` and ``1.0`` too)."""
    kind = type(value)
    if kind is str or kind is int:  # the common cases, unboxed: called per job and value
        return value  # type: ignore[return-value]
    if value is None or kind is float or kind is bool:
        return (kind.__name__, value)
    return ("json", json.dumps(value, sort_keys=True, separators=(",", ":")))


def format_value(value: JsonValue) -> str:
    """Render a parameter value for a table: strings bare, everything else as JSON."""
    if isinstance(value, str):
        return value
    if type(value) is int:  # the common case, as json.dumps writes it (not bool)
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_value(text: str) -> JsonValue:
    """Read a value typed on the command line: JSON when it parses, else the string."""
    try:
        value: JsonValue = json.loads(text)
    except ValueError:
        return text
    return value


def value_matches(actual: JsonValue, wanted: JsonValue) -> bool:
    """Tell whether a parameter value equals a wanted one (``1`` matches ``1.0``).

    A wanted string also matches a value that displays as that string, so ``seed=1``
    given as text matches the number 1 and the string "1".
    """
    if value_key(actual) == value_key(wanted):
        return True
    if _is_number(actual) and _is_number(wanted):
        return actual == wanted
    return isinstance(wanted, str) and format_value(actual) == wanted


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def sorted_values(values: Iterable[JsonValue]) -> list[JsonValue]:
    """Distinct values, sorted when they are all numbers or all strings."""
    unique = list({value_key(v): v for v in values}.values())
    if all(_is_number(v) for v in unique):
        return sorted(unique, key=float)  # type: ignore[arg-type]
    if all(isinstance(v, str) for v in unique):
        return sorted(unique, key=str)
    return unique


@dataclass(frozen=True)
class Effective:
    """A job's effective parameters: single values, and the multi-valued ones apart."""

    values: dict[str, JsonValue]
    #: parameters that take several values upstream (sorted distinct values)
    multi: dict[str, list[JsonValue]]


class ParamIndex:
    """Effective parameters of the jobs of a lab, computed on demand and remembered."""

    def __init__(self, lab: LoadedLab) -> None:
        self._lab = lab
        self._sets: dict[str, dict[str, _Values]] = {}
        self._effective: dict[str, Effective] = {}

    def effective(self, job: str) -> Effective:
        """The effective parameters of ``job`` (its upstream jobs are computed as needed)."""
        found = self._effective.get(job)
        if found is None:
            this = self._lab.jobs[job]
            if not this.inputs:  # most jobs of a sweep: nothing to inherit
                found = self._effective[job] = Effective(dict(this.params), {})
                return found
            sets = self._value_sets(job)
            values: dict[str, JsonValue] = {}
            multi: dict[str, list[JsonValue]] = {}
            for name in sorted(sets):
                choices = sets[name]
                if len(choices) == 1:
                    values[name] = next(iter(choices.values()))
                else:
                    multi[name] = sorted_values(choices.values())
            found = self._effective[job] = Effective(values, multi)
        return found

    def _value_sets(self, job: str) -> dict[str, _Values]:
        """Name -> distinct values visible from ``job`` (own values hide upstream ones)."""
        sets = self._sets
        if job in sets:
            return sets[job]
        jobs = self._lab.jobs
        # Iterative depth-first post-order: pipelines can be deeper than the recursion limit.
        # Each frame: a job, its upstream jobs, and those not yet looked at.
        path: list[str] = [job]
        on_path = {job}
        stack: list[tuple[str, list[str], list[str]]] = []
        upstream = [i.job for i in jobs[job].inputs if i.job in jobs]
        stack.append((job, upstream, list(upstream)))
        while stack:
            current, upstream, remaining = stack[-1]
            while remaining:
                up = remaining.pop()
                if up in sets:
                    continue
                if up in on_path:
                    raise _cycle_error(path, up)
                up_inputs = [i.job for i in jobs[up].inputs if i.job in jobs]
                stack.append((up, up_inputs, list(up_inputs)))
                path.append(up)
                on_path.add(up)
                break
            else:
                stack.pop()
                on_path.discard(path.pop())
                sets[current] = self._merge(current, upstream)
        return sets[job]

    def _merge(self, job: str, upstream: list[str]) -> dict[str, _Values]:
        own = self._lab.jobs[job].params
        merged: dict[str, _Values] = {name: {value_key(v): v} for name, v in own.items()}
        for up in dict.fromkeys(upstream):
            for name, choices in self._sets[up].items():
                if name in own:
                    continue
                into = merged.get(name)
                if into is None:
                    merged[name] = dict(choices)
                else:
                    into.update(choices)
        return merged


def _cycle_error(path: list[str], back_to: str) -> LabError:
    cycle = [*path[path.index(back_to) :], back_to]
    return LabError(one_line(f"jobs: input cycle {' -> '.join(cycle)}"))


@dataclass(frozen=True)
class ParamSource:
    """A job a parameter value comes from, ``depth`` input edges upstream (0: the job)."""

    job: str
    depth: int


@dataclass(frozen=True)
class TracedValue:
    """One value of one parameter among a job and its upstream jobs."""

    name: str
    value: JsonValue
    sources: tuple[ParamSource, ...]
    #: the job sees this value: it is its own, or the only one inherited
    effective: bool


def trace_params(lab: LoadedLab, index: ParamIndex, job: str) -> list[TracedValue]:
    """Every parameter value of ``job`` and its upstream jobs, with the jobs it comes from.

    Ordered by parameter name, effective values first, then by distance upstream and value.
    """
    jobs = lab.jobs
    found: dict[tuple[str, Hashable], tuple[JsonValue, list[ParamSource]]] = {}
    seen = {job}
    queue: deque[tuple[str, int]] = deque([(job, 0)])
    while queue:
        current, depth = queue.popleft()
        for name, value in jobs[current].params.items():
            entry = found.setdefault((name, value_key(value)), (value, []))
            entry[1].append(ParamSource(current, depth))
        for inp in jobs[current].inputs:
            if inp.job in jobs and inp.job not in seen:
                seen.add(inp.job)
                queue.append((inp.job, depth + 1))
    effective = index.effective(job)
    traced = [
        TracedValue(
            name=name,
            value=value,
            sources=tuple(sources),
            effective=name in effective.values and value_key(effective.values[name]) == key,
        )
        for (name, key), (value, sources) in found.items()
    ]
    by_name: dict[str, list[JsonValue]] = {}
    for t in traced:
        by_name.setdefault(t.name, []).append(t.value)
    rank = {
        (name, value_key(v)): i
        for name, values in by_name.items()
        for i, v in enumerate(sorted_values(values))
    }
    traced.sort(
        key=lambda t: (
            t.name,
            not t.effective,
            t.sources[0].depth,
            rank[(t.name, value_key(t.value))],
        )
    )
    return traced


def varying_params(index: ParamIndex, lab: LoadedLab, jobs: Iterable[str]) -> dict[str, None]:
    """The parameters whose effective value differs between ``jobs`` (what tells them
    apart), in the order first met."""
    seen: dict[str, set[Hashable]] = {}
    for job in jobs:
        values = index.effective(job).values if lab.jobs[job].inputs else lab.jobs[job].params
        for name, value in values.items():
            seen.setdefault(name, set()).add(value_key(value))
    return {name: None for name, keys in seen.items() if len(keys) > 1}


def swept_by_stage(
    lab: LoadedLab, jobs: Iterable[str], index: ParamIndex | None = None
) -> dict[str, tuple[str, ...]]:
    """For each stage of ``jobs``: the parameters that tell its jobs in the lab apart (what
    the progress lines and failure summaries of ``repx run`` show of a job). ``index``: the
    lab's index already in use, so that no effective parameters are computed twice."""
    stages = {lab.jobs[job].stage for job in jobs}
    if not stages:
        return {}  # nothing to run: no pass over the lab's jobs
    members: dict[str, list[str]] = {stage: [] for stage in stages}
    for job_id, job in lab.jobs.items():
        if job.stage in members:
            members[job.stage].append(job_id)
    index = index or ParamIndex(lab)
    return {stage: tuple(varying_params(index, lab, ids)) for stage, ids in members.items()}


def param_names(lab: LoadedLab, jobs: Iterable[str], runs: Iterable[str]) -> list[str]:
    """Parameter names of ``runs`` (in manifest order) and of ``jobs``' own parameters."""
    names: dict[str, None] = {}
    for run in runs:
        manifest = lab.runs.get(run)
        if manifest is not None:
            names.update(dict.fromkeys(manifest.parameters))
    for job in jobs:
        names.update(dict.fromkeys(lab.jobs[job].params))
    return list(names)


def run_value_positions(lab: LoadedLab, run: str) -> Mapping[str, dict[Hashable, int]]:
    """For each parameter of ``run``, the position of each of its values (for sorting)."""
    manifest = lab.runs.get(run)
    if manifest is None:
        return {}
    return {
        name: {value_key(v): i for i, v in enumerate(values)}
        for name, values in manifest.parameters.items()
    }
