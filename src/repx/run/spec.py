"""What one job needs to run, resolved against a lab and an output store.

A :class:`JobSpec` is self-contained (absolute paths, no lab loader needed), so the same
per-job wrapper runs it in-process or on a cluster node (``python -m repx.run.job``).
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH118

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict

from repx.errors import LabError
from repx.lab.loader import LoadedLab
from repx.lab.models import Executable, ScatterGather
from repx.run.store_models import GatherEntry

_OUT_PREFIX: Final = "$out/"


class PieceSlurm(BaseModel):
    """How the orchestrator of a job run by SLURM submits its steps (scatter_slurm)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python: str
    #: the job's partition (a step without one uses it)
    partition: str | None = None
    #: sbatch options of the job (target and resources file) every step array gets
    options: tuple[str, ...] = ()


class Pieces(BaseModel):
    """The pieces of a scatter-gather job, with their executables' absolute paths."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: ScatterGather
    #: "scatter", "step-<name>", "gather" -> absolute path
    executables: dict[str, str]
    #: set in SLURM tasks: the steps run as job arrays (None: here, as child processes)
    slurm: PieceSlurm | None = None


class JobSpec(BaseModel):
    """A job resolved to absolute paths: the input of the per-job lifecycle."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job: str
    stage: str
    lab_root: str
    lab_id: str
    executable: str
    parameters_file: str
    #: input name -> absolute path of the upstream output (non-gathered inputs)
    inputs: dict[str, str] = {}
    #: input name -> every upstream job of a gathered input
    gathers: dict[str, tuple[GatherEntry, ...]] = {}
    #: declared outputs, relative to $out
    outputs: tuple[str, ...] = ()
    cpus: int = 1
    mem_bytes: int = 0
    #: a scatter-gather job: its pieces (run by :mod:`repx.run.scatter`)
    pieces: Pieces | None = None


def make_spec(lab: LoadedLab, job_id: str, outputs_dir: Path) -> JobSpec:
    """Resolve ``job_id`` of ``lab`` against the store's ``outputs`` directory."""
    job = lab.jobs[job_id]
    root = os.fspath(lab.root)
    outputs = os.fspath(outputs_dir)
    inputs: dict[str, str] = {}
    gathers: dict[str, list[GatherEntry]] = {}
    for inp in job.inputs:
        upstream = lab.jobs[inp.job]
        try:
            rel = output_path(upstream.outputs[inp.output])
        except KeyError:
            raise LabError(
                f"job {job_id}: input '{inp.name}': {inp.job} has no output '{inp.output}'"
            ) from None
        path = os.path.join(outputs, inp.job, "out", rel)
        if inp.gather:
            gathers.setdefault(inp.name, []).append(
                GatherEntry(job=inp.job, params=upstream.params, path=path)
            )
        else:
            inputs[inp.name] = path
    pieces: Pieces | None = None
    if job.stage_type == "scatter-gather" and job.scatter_gather is not None:
        pieces = _pieces(job_id, job.scatter_gather, job.executables, root)
        main = job.executables["scatter"]
    else:
        try:
            main = job.executables["main"]
        except KeyError:
            raise LabError(
                f"job {job_id}: no 'main' executable"
                f" (stage type '{job.stage_type}' is not supported)"
            ) from None
    return JobSpec(
        job=job_id,
        stage=job.stage,
        lab_root=root,
        lab_id=lab.meta.lab_id,
        executable=os.path.join(root, main.path),
        parameters_file=os.path.join(root, job.parameters_file),
        inputs=inputs,
        gathers={name: tuple(entries) for name, entries in gathers.items()},
        outputs=tuple(output_path(v) for v in job.outputs.values()),
        cpus=job.resources.cpus or 1,
        mem_bytes=(job.resources.mem or 0) * 1024**2,  # the lab holds MiB
        pieces=pieces,
    )


def _pieces(
    job_id: str, layout: ScatterGather, executables: Mapping[str, Executable], root: str
) -> Pieces:
    names = ["scatter", "gather", *(f"step-{s}" for s in layout.step_order)]
    missing = [n for n in names if n not in executables]
    if missing or set(layout.step_order) != set(layout.steps) or layout.sink not in layout.steps:
        what = f"no executable(s) {', '.join(missing)}" if missing else "an inconsistent step list"
        raise LabError(f"job {job_id}: scatter-gather job with {what}; rebuild the lab")
    return Pieces(
        layout=layout, executables={n: os.path.join(root, executables[n].path) for n in names}
    )


def output_path(template: str) -> str:
    """``"$out/a/b.csv"`` -> ``"a/b.csv"`` (a declared output, relative to the out dir)."""
    if not template.startswith(_OUT_PREFIX) or len(template) == len(_OUT_PREFIX):
        raise LabError(f"declared output '{template}' does not start with '{_OUT_PREFIX}'")
    rel = template[len(_OUT_PREFIX) :]
    if rel.startswith("/") or ".." in rel.split("/"):
        raise LabError(f"declared output '{template}' leaves $out")
    return rel
