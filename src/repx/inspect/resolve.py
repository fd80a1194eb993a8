"""Names typed by the user -> lab objects; errors name the valid choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Final, Protocol

from repx.errors import UsageError, one_line
from repx.inspect.status import JobState
from repx.inspect.view import JobIds, LabView

#: Candidates listed in an error about a job id.
MAX_CANDIDATES: Final = 10
#: Names listed in an error about a run, stage or parameter (a sweep can have many).
_MAX_NAMES: Final = 30


class JobIndex(Protocol):
    """What the resolver needs: the ids, and how to name one job to the user."""

    @property
    def ids(self) -> JobIds: ...

    def describe_job(self, job_id: str) -> str:
        """A short, pasteable name of the job (for one-line lists)."""
        ...

    def run_label(self, job_id: str) -> str:
        """``run NAME`` when the index knows the job's run, else empty."""
        ...


class StoreJobs:
    """The jobs an output store holds, for commands that work without the lab."""

    def __init__(self, ids: Iterable[str]) -> None:
        self.ids = JobIds(ids)

    def describe_job(self, job_id: str) -> str:
        """``<short id>-<stage>``: the form the user can paste back."""
        hash_, _, stage = job_id.partition("-")
        return f"{hash_[: self.ids.short_length]}-{stage}" if stage else job_id

    def run_label(self, job_id: str) -> str:
        """Empty: a store does not know the runs of its jobs."""
        return ""


def match_jobs(index: JobIndex, token: str, limit: int = MAX_CANDIDATES + 1) -> list[str]:
    """The jobs ``token`` may name (at most ``limit``): the full id, the ids it is a prefix
    of, or the jobs of ``<prefix>-<stage>`` (the short form tables print with the stage)."""
    ids = index.ids
    if token in ids:
        return [token]
    matches = ids.with_prefix(token, limit=limit)
    if not matches and "-" in token:
        prefix, _, stage = token.partition("-")
        matches = [j for j in ids.with_prefix(prefix) if j.partition("-")[2] == stage][:limit]
    return matches


def resolve_job(index: JobIndex, token: str) -> str:
    """The job ``token`` names: a full id, a unique id prefix, or ``<short id>-<stage>``.

    Every command that takes a job id resolves it here. An unknown id is an error listing
    the ids closest to it; an ambiguous prefix one line listing the jobs it matches.
    """
    token = token.strip()
    if not token:
        raise UsageError("empty job id")
    matches = match_jobs(index, token)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ambiguous_job(index, token, matches)
    if not len(index.ids):
        raise UsageError(one_line(f"unknown job '{token}': there are no jobs"))
    closest = _closest_ids(index.ids, token)
    raise UsageError(
        one_line(
            f"unknown job '{token}' (no job id starts with it; closest ids below,"
            " all of them: repx list jobs)"
        ),
        "\n".join(_long_name(index, job) for job in closest),
    )


def ambiguous_job(index: JobIndex, token: str, matches: Sequence[str]) -> UsageError:
    """The one-line error of a prefix that matches several jobs, naming them."""
    shown = [index.describe_job(job) for job in matches[:MAX_CANDIDATES]]
    more = ", …" if len(matches) > MAX_CANDIDATES else ""
    return UsageError(
        one_line(
            f"job id '{token}' is ambiguous: it matches {_count(matches)} jobs:"
            f" {', '.join(shown)}{more}"
        )
    )


def _long_name(index: JobIndex, job: str) -> str:
    label = index.run_label(job)
    return one_line(f"{job}  ({label})" if label else job)


def _count(matches: Sequence[str]) -> str:
    return f"{MAX_CANDIDATES}+" if len(matches) > MAX_CANDIDATES else str(len(matches))


def _closest_ids(ids: JobIds, token: str) -> list[str]:
    """Ids sharing the longest prefix with ``token``, else its sorted neighbours."""
    for length in range(len(token) - 1, 0, -1):
        found = ids.with_prefix(token[:length], limit=MAX_CANDIDATES)
        if found:
            return found
    return ids.neighbours(token, MAX_CANDIDATES)


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


def stages_containing(view: LabView, text: str, run: str | None = None) -> list[str]:
    """Stages of ``run`` (of any run when None) whose name contains ``text``; none is an
    error naming the stages."""
    stages = view.stages(run) if run is not None else view.all_stages()
    found = [s for s in stages if text in s]
    if found:
        return found
    where = f" in run '{run}'" if run is not None else ""
    raise UsageError(
        one_line(f"no stage{where} contains '{text}'{_choices('stages', stages, text)}")
    )


def resolve_run_or_jobs(view: LabView, token: str) -> tuple[str | None, str | None]:
    """``list jobs RUN|JOB``: (the run ``token`` names, None) or (None, the job-id prefix)."""
    if token in view.lab.runs:
        return token, None
    if match_jobs(view, token.strip()):
        return None, token.strip()
    choices = _choices("runs", view.run_names, token).removesuffix(")")
    raise UsageError(one_line(f"unknown run or job '{token}'{choices}; or a job id prefix)"))


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
