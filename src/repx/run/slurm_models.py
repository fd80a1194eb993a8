"""Pydantic models of the files the SLURM backend writes under ``<base>/slurm/`` (docs/slurm.md).

```
<base>/slurm/submissions.jsonl           one Submission per line (sbatch call), appended
<base>/slurm/<batch>/<nn>-<stage>.json   TaskManifest: array index -> the jobs that task runs
<base>/slurm/<batch>/<nn>-<stage>.sh     the batch script given to sbatch
<base>/slurm/<batch>/logs/               the wrapper's own output, one file per task
```

A job's SLURM reference is ``<id>_<index>`` for an array task and ``<id>`` for a plain job;
the last submission naming a job is the one that counts.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repx.run.runtime import Runtime
from repx.run.spec import JobSpec, NodeLocalLab

logger = logging.getLogger(__name__)

SLURM_DIR: Final = "slurm"
SUBMISSIONS: Final = "submissions.jsonl"
MANIFEST_FORMAT: Final = "repx-slurm-tasks/1"


class Submission(BaseModel):
    """One sbatch call (a job array or a plain job), or the withdrawal of one."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    kind: Literal["submitted", "withdrawn"] = "submitted"
    slurm_id: str
    array: bool
    stage: str
    target: str | None = None
    submitted: float = Field(description="seconds since the epoch")
    #: array index (``"0"`` for a plain job) -> the repx jobs that task runs, in order
    tasks: dict[str, tuple[str, ...]]
    manifest: str = ""
    #: the wrapper's log; ``%a`` stands for the array index
    log: str = ""
    dependency: str | None = None
    lab_id: str = ""

    def ref(self, index: str) -> str:
        """The SLURM id of one task: ``123_4`` (array) or ``123``."""
        return f"{self.slurm_id}_{index}" if self.array else self.slurm_id

    def log_of(self, index: str) -> str:
        """The wrapper log of one task."""
        return self.log.replace("%a", index)


class TaskManifest(BaseModel):
    """What every task of one submission runs (read by :mod:`repx.run.slurm_task`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["repx-slurm-tasks/1"] = MANIFEST_FORMAT
    base: str
    runtime: Runtime
    #: a store path of the lab: a node whose /nix/store lacks it binds ``lab_store`` instead
    store_probe: str | None = None
    lab_store: str | None = None
    #: ``artifact_store = "node-local"``: the task unpacks the lab on its node (once per
    #: node) and runs the jobs from that copy
    node_local: NodeLocalLab | None = None
    tasks: dict[str, tuple[JobSpec, ...]]


@dataclass(frozen=True)
class JobRef:
    """Where the last submission of a job is."""

    job: str
    ref: str
    array_job: str
    submitted: float
    stage: str
    log: str
    #: every job of the same task (more than one when jobs are bundled)
    task_jobs: tuple[str, ...]


def submissions_path(base: Path) -> Path:
    """``<base>/slurm/submissions.jsonl``."""
    return base / SLURM_DIR / SUBMISSIONS


def read_submissions(base: Path) -> list[Submission]:
    """Every readable record (torn or foreign lines are skipped)."""
    path = submissions_path(base)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    records: list[Submission] = []
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            records.append(Submission.model_validate_json(line))
        except ValidationError:
            logger.warning("%s: skipped an unreadable line", path)
    return records


def job_refs(records: list[Submission]) -> dict[str, JobRef]:
    """job -> its last (not withdrawn) submission."""
    refs: dict[str, JobRef] = {}
    for record in records:
        for index, jobs in record.tasks.items():
            ref = record.ref(index)
            for job in jobs:
                if record.kind == "withdrawn":
                    if job in refs and refs[job].ref == ref:
                        del refs[job]
                    continue
                refs[job] = JobRef(
                    job=job,
                    ref=ref,
                    array_job=record.slurm_id,
                    submitted=record.submitted,
                    stage=record.stage,
                    log=record.log_of(index),
                    task_jobs=jobs,
                )
    return refs


def append_submission(base: Path, record: Submission) -> None:
    """Append one record (one write of a whole line)."""
    path = submissions_path(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(record.model_dump_json() + "\n")


def manifest_json(manifest: TaskManifest) -> str:
    """The manifest as compact JSON (read back on nodes with :func:`read_manifest`)."""
    return manifest.model_dump_json()


class ManifestError(ValueError):
    """A task manifest this repx cannot run (one line saying why)."""


class _Format(BaseModel):
    model_config = ConfigDict(extra="ignore")

    format: str | None = None


def read_manifest(data: bytes, task: str | None = None) -> TaskManifest:
    """Parse a manifest; raise :class:`ManifestError` when it is not one this repx runs.

    The format is looked at before the rest, so a manifest of another repx version fails
    with one line about its version instead of a list of field errors. With ``task`` only
    that task's jobs are validated (the others are left out of the result; a manifest
    without it has no tasks): every task of an array reads the whole file, and validating
    all of it would cost each task time proportional to the array.
    """
    try:
        raw = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise ManifestError("not a task manifest (no JSON object)") from None
    if not isinstance(raw, dict):
        raise ManifestError("not a task manifest (no JSON object)")
    try:
        found = _Format.model_validate(raw).format
    except ValidationError:
        raise ManifestError("not a task manifest (no JSON object)") from None
    if found != MANIFEST_FORMAT:
        what = f"format '{found}'" if found is not None else "no format field"
        raise ManifestError(
            f"{what}, this repx reads {MANIFEST_FORMAT}: resubmit with the repx that is"
            " installed on the nodes"
        )
    if task is not None and isinstance(raw.get("tasks"), dict):
        tasks = raw["tasks"]
        raw = {**raw, "tasks": {task: tasks[task]} if task in tasks else {}}
    try:
        return TaskManifest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "manifest"
        raise ManifestError(f"{where}: {first['msg']}") from None
