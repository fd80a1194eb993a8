"""Names typed by the user -> lab objects; errors name the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Final

from repx.errors import UsageError, one_line
from repx.inspect.status import JobState
from repx.inspect.view import LabView

#: Candidates listed in an error about a job id.
MAX_CANDIDATES: Final = 10
#: Names listed in an error about a run, stage or parameter (a sweep can have many).
_MAX_NAMES: Final = 30


def resolve_job(view: LabView, token: str) -> str:
    """The job ``token`` names: a full id, a unique id prefix, or ``<short id>-<stage>``.

    An unknown id is an error listing the ids closest to it; an ambiguous prefix one listing
    the jobs it matches.
    """
    token = token.strip()
    if not token:
        raise UsageError("empty job id")
    if token in view.lab.jobs:
        return token
    matches = view.with_prefix(token, limit=MAX_CANDIDATES + 1)
    if not matches and "-" in token:
        # the short form shown by `repx list jobs`: <hash prefix>-<stage>
        prefix, _, stage = token.partition("-")
        matches = [j for j in view.with_prefix(prefix) if view.stage_of(j) == stage]
    if len(matches) == 1:
        return matches[0]
    if matches:
        count = "" if len(matches) <= MAX_CANDIDATES else f" (first {MAX_CANDIDATES} shown)"
        raise UsageError(
            one_line(f"job id '{token}' is ambiguous: it matches {_count(matches)} jobs{count}"),
            _describe_jobs(view, matches[:MAX_CANDIDATES]),
        )
    if not view.lab.jobs:
        raise UsageError(one_line(f"unknown job '{token}': the lab has no jobs"))
    closest = _closest_ids(view, token)
    raise UsageError(
        one_line(
            f"unknown job '{token}' (no job id starts with it; closest ids below,"
            " all of them: repx list jobs)"
        ),
        _describe_jobs(view, closest),
    )


def _count(matches: Sequence[str]) -> str:
    return f"{MAX_CANDIDATES}+" if len(matches) > MAX_CANDIDATES else str(len(matches))


def _closest_ids(view: LabView, token: str) -> list[str]:
    """Ids sharing the longest prefix with ``token``, else its sorted neighbours."""
    for length in range(len(token) - 1, 0, -1):
        found = view.with_prefix(token[:length], limit=MAX_CANDIDATES)
        if found:
            return found
    return view.neighbours(token, MAX_CANDIDATES)


def _describe_jobs(view: LabView, jobs: Iterable[str]) -> str:
    return "\n".join(one_line(f"{job}  (run {view.run_of(job)})") for job in jobs)


def resolve_run(view: LabView, name: str) -> str:
    """Check that ``name`` is a run of the lab."""
    if name in view.lab.runs:
        return name
    raise UsageError(one_line(f"unknown run '{name}'{_choices('runs', view.run_names, name)}"))


def resolve_stage(view: LabView, name: str, run: str | None = None) -> str:
    """Check that ``name`` is a stage of ``run`` (of any run when None)."""
    stages = view.stages(run) if run is not None else view.all_stages()
    if name in stages:
        return name
    where = f" in run '{run}'" if run is not None else ""
    raise UsageError(one_line(f"unknown stage '{name}'{where}{_choices('stages', stages, name)}"))


def resolve_params(names: Iterable[str], valid: Sequence[str], where: str = "") -> list[str]:
    """Check that every name is a parameter in ``valid``."""
    checked = []
    for name in names:
        if name not in valid:
            raise UsageError(
                one_line(f"unknown parameter '{name}'{where}{_choices('parameters', valid, name)}")
            )
        checked.append(name)
    return checked


def resolve_state(name: str) -> JobState:
    """The job state called ``name``."""
    try:
        return JobState(name.lower())
    except ValueError:
        states = [s.value for s in JobState]
        raise UsageError(
            one_line(f"unknown status '{name}'{_choices('statuses', states, name)}")
        ) from None


def resolve_group(view: LabView, name: str) -> str:
    """Check that ``name`` (with or without a leading @) is a group of the lab."""
    group = name.removeprefix("@")
    groups = list(view.lab.revision.groups)
    if group in groups:
        return group
    raise UsageError(one_line(f"unknown group '{name}'{_choices('groups', groups, group)}"))


def _choices(kind: str, names: Sequence[str], wrong: str) -> str:
    if not names:
        return f" (the lab has no {kind})"
    close = difflib.get_close_matches(wrong, names, n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    shown = ", ".join(names[:_MAX_NAMES]) + (", …" if len(names) > _MAX_NAMES else "")
    return f" ({kind}: {shown}{hint})"
