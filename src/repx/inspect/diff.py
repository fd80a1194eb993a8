"""``repx diff``: which jobs two lab revisions add, remove or change, and why.

Jobs are content-addressed, so "the same job" across revisions cannot be found by id: a
job is matched by what a researcher means by it — its run, its stage and its effective
parameters (own and inherited). Matched jobs whose ids differ are *changed*, and the
reason is read from the labs themselves: the stage script (with the changed lines), the
upstream jobs it consumes, or the environment (container mode). Unmatched jobs are
*added* or *removed*, explained by the parameter values, stages or runs that appeared or
disappeared.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, JsonValue

from repx.inspect.params import ParamIndex, format_value
from repx.lab.loader import LoadedLab
from repx.lab.models import Job, StageInfo

#: Changed script lines shown per stage (the rest is counted).
MAX_SCRIPT_LINES: Final = 12

Change = Literal["added", "removed", "changed"]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class LabRef(_Out):
    """One side of the comparison."""

    path: str
    lab_id: str


class JobChange(_Out):
    """A job that appears, disappears or changes between the two labs."""

    change: Change
    run: str
    stage: str
    id: str = ""
    old_id: str | None = None
    params: dict[str, JsonValue]
    reasons: tuple[str, ...]


class StageScriptDiff(_Out):
    """The changed lines of a stage script (unified diff, without file headers)."""

    run: str
    stage: str
    file: str
    lines: tuple[str, ...]
    more: int = 0


class LabDiff(_Out):
    """``repx diff --json``."""

    old: LabRef
    new: LabRef
    unchanged: int
    added: int
    removed: int
    changed: int
    jobs: tuple[JobChange, ...]
    scripts: tuple[StageScriptDiff, ...] = ()


@dataclass(frozen=True)
class _Side:
    lab: LoadedLab
    params: ParamIndex
    #: (run, stage, parameters) -> job id
    by_key: dict[tuple[str, str, str], str]
    #: (run, stage) -> parameter -> canonical values seen
    values: dict[tuple[str, str], dict[str, set[str]]]


def _key_params(side_params: ParamIndex, job: str) -> dict[str, JsonValue]:
    effective = side_params.effective(job)
    merged: dict[str, JsonValue] = dict(effective.values)
    merged.update({name: list(values) for name, values in effective.multi.items()})
    return merged


def _canonical(value: JsonValue) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _identity(index: ParamIndex, job: str) -> str:
    """What makes a job "the same" across revisions: its single-valued effective parameters
    and the names of the multi-valued ones (a gather's values change with the sweep)."""
    effective = index.effective(job)
    gathered: list[JsonValue] = [*sorted(effective.multi)]
    return _canonical({"values": effective.values, "gathered": gathered})


def _side(lab: LoadedLab) -> _Side:
    index = ParamIndex(lab)
    by_key: dict[tuple[str, str, str], str] = {}
    values: dict[tuple[str, str], dict[str, set[str]]] = {}
    for run, manifest in lab.runs.items():
        for job_id, job in manifest.jobs.items():
            params = _key_params(index, job_id)
            by_key[(run, job.stage, _identity(index, job_id))] = job_id
            seen = values.setdefault((run, job.stage), {})
            for name, value in params.items():
                seen.setdefault(name, set()).add(_canonical(value))
    return _Side(lab, index, by_key, values)


def diff_labs(old: LoadedLab, new: LoadedLab) -> LabDiff:
    """Compare two labs job by job."""
    a, b = _side(old), _side(new)
    changes: list[JobChange] = []
    unchanged = 0
    scripts: dict[tuple[str, str], StageScriptDiff] = {}
    for key, new_id in b.by_key.items():
        run, stage, _ = key
        old_id = a.by_key.get(key)
        params = _key_params(b.params, new_id)
        if old_id == new_id:
            unchanged += 1
        elif old_id is None:
            changes.append(
                JobChange(
                    change="added",
                    run=run,
                    stage=stage,
                    id=new_id,
                    params=params,
                    reasons=tuple(_appeared(a, b, run, stage, params)),
                )
            )
        else:
            reasons = list(_why_changed(old, new, run, stage, old_id=old_id, new_id=new_id))
            if any(r.startswith("script changed") for r in reasons) and (run, stage) not in scripts:
                scripts[(run, stage)] = _script_diff(old, new, run, stage)
            changes.append(
                JobChange(
                    change="changed",
                    run=run,
                    stage=stage,
                    id=new_id,
                    old_id=old_id,
                    params=params,
                    reasons=tuple(reasons),
                )
            )
    for key, old_id in a.by_key.items():
        if key in b.by_key:
            continue
        run, stage, _ = key
        params = _key_params(a.params, old_id)
        changes.append(
            JobChange(
                change="removed",
                run=run,
                stage=stage,
                old_id=old_id,
                params=params,
                reasons=tuple(_appeared(b, a, run, stage, params, gone=True)),
            )
        )
    order = {"changed": 0, "added": 1, "removed": 2}
    changes.sort(key=lambda c: (order[c.change], c.run, c.stage, _canonical(c.params)))
    return LabDiff(
        old=LabRef(path=str(old.root), lab_id=old.meta.lab_id),
        new=LabRef(path=str(new.root), lab_id=new.meta.lab_id),
        unchanged=unchanged,
        added=sum(1 for c in changes if c.change == "added"),
        removed=sum(1 for c in changes if c.change == "removed"),
        changed=sum(1 for c in changes if c.change == "changed"),
        jobs=tuple(changes),
        scripts=tuple(scripts.values()),
    )


def _appeared(
    other: _Side,
    this: _Side,
    run: str,
    stage: str,
    params: dict[str, JsonValue],
    *,
    gone: bool = False,
) -> Iterator[str]:
    """Why a job of ``this`` has no counterpart in ``other``."""
    if run not in other.lab.runs:
        yield f"run {run} {'removed' if gone else 'is new'}"
        return
    seen = other.values.get((run, stage))
    if seen is None:
        yield f"stage {stage} {'removed' if gone else 'is new'}"
        return
    fresh = [
        f"{name}={format_value(value)}"
        for name, value in params.items()
        if _canonical(value) not in seen.get(name, set())
    ]
    if fresh:
        word = "no longer swept" if gone else "new parameter value"
        yield f"{word} {' '.join(fresh)}"
    elif set(params) != set(seen):
        yield "the stage's parameters changed"
    else:
        yield "combination no longer swept" if gone else "new combination of known values"


def _why_changed(
    old: LoadedLab, new: LoadedLab, run: str, stage: str, *, old_id: str, new_id: str
) -> Iterator[str]:
    before, after = old.jobs[old_id], new.jobs[new_id]
    old_stage, new_stage = _stage(old, run, stage), _stage(new, run, stage)
    found = False
    if old_stage and new_stage and old_stage.script != new_stage.script:
        found = True
        yield f"script changed ({new_stage.file})"
    if old.meta.container_mode != new.meta.container_mode:
        found = True
        modes = f"{old.meta.container_mode} -> {new.meta.container_mode}"
        yield f"environment changed: containerMode {modes}"
    for name, (was, now) in _inputs(before, after).items():
        if was != now:
            found = True
            upstream = sorted({j.split("-", 1)[-1] for j in now | was}) or ["?"]
            yield f"upstream changed: input {name} (from {', '.join(upstream)})"
    if not found:
        yield "its id changed (a new repx version hashes jobs differently)"


def _inputs(before: Job, after: Job) -> dict[str, tuple[frozenset[str], frozenset[str]]]:
    names = {i.name for i in before.inputs} | {i.name for i in after.inputs}
    return {
        name: (
            frozenset(i.job for i in before.inputs if i.name == name),
            frozenset(i.job for i in after.inputs if i.name == name),
        )
        for name in sorted(names)
    }


def _stage(lab: LoadedLab, run: str, stage: str) -> StageInfo | None:
    return lab.runs[run].stages.get(stage)


def _script_diff(old: LoadedLab, new: LoadedLab, run: str, stage: str) -> StageScriptDiff:
    old_stage, new_stage = _stage(old, run, stage), _stage(new, run, stage)
    assert old_stage is not None and new_stage is not None  # the caller saw both
    lines = [
        line.rstrip("\n")
        for line in difflib.unified_diff(
            _read_lines(old_stage.script), _read_lines(new_stage.script), n=0
        )
        if not line.startswith(("---", "+++"))
    ]
    return StageScriptDiff(
        run=run,
        stage=stage,
        file=new_stage.file,
        lines=tuple(lines[:MAX_SCRIPT_LINES]),
        more=max(0, len(lines) - MAX_SCRIPT_LINES),
    )


def _read_lines(script: str) -> list[str]:
    try:
        return Path(script).read_text(encoding="utf-8", errors="replace").splitlines(True)
    except OSError:
        return [f"(script {script} is not available on this machine)\n"]
