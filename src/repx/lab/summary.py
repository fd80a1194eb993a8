"""A short description of a lab: what ``repx build`` prints."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from repx.lab.integrity import scan_files
from repx.lab.loader import LoadedLab
from repx.lab.models import RunDependencyKind
from repx.lab.warnings import lab_warnings


class RunSummary(BaseModel):
    """One run of a lab in a summary."""

    model_config = ConfigDict(frozen=True)

    name: str
    jobs: int
    stages: tuple[str, ...]
    depends_on: dict[str, RunDependencyKind]


class LabSummary(BaseModel):
    """What a lab holds, where it is, and how long building it took."""

    model_config = ConfigDict(frozen=True)

    lab_id: str
    path: str
    out_link: str | None = None
    lab_version: str
    repx_version: str
    git_hash: str
    runs: tuple[RunSummary, ...]
    total_jobs: int
    size_bytes: int
    build_seconds: float | None = None
    #: what the build noticed but did not refuse (one line each; see repx.lab.warnings)
    warnings: tuple[str, ...] = ()


def summarize_lab(
    lab: LoadedLab,
    *,
    size_bytes: int | None = None,
    build_seconds: float | None = None,
    out_link: str | None = None,
) -> LabSummary:
    """Summarise ``lab``; ``size_bytes`` is measured when not given."""
    if size_bytes is None:
        size_bytes = lab.meta.files_bytes
    if size_bytes is None:  # a lab built before files_bytes was recorded
        size_bytes = sum(scan_files(lab.root).values())
    runs = tuple(
        RunSummary(
            name=name,
            jobs=len(lab.runs[name].jobs),
            stages=entry.stages,
            depends_on=dict(entry.depends_on),
        )
        for name in _ordered_runs(lab)
        for entry in (lab.revision.runs[name],)
    )
    return LabSummary(
        lab_id=lab.meta.lab_id,
        path=str(lab.root),
        out_link=out_link,
        lab_version=lab.meta.lab_version,
        repx_version=lab.meta.repx_version,
        git_hash=lab.meta.git_hash,
        runs=runs,
        total_jobs=len(lab.jobs),
        size_bytes=size_bytes,
        build_seconds=build_seconds,
        warnings=tuple(lab_warnings(lab)),
    )


def _ordered_runs(lab: LoadedLab) -> list[str]:
    """Runs in ``run_order``, then any it forgot."""
    order = [r for r in lab.revision.run_order if r in lab.runs]
    return order + [r for r in lab.runs if r not in order]
