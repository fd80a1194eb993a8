"""What one job needs to run, resolved against a lab and an output store.

A :class:`JobSpec` is self-contained (absolute paths, no lab loader needed), so the same
per-job wrapper runs it in-process or on a cluster node (``python -m repx.run.job``).
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH118

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue

from repx.errors import LabError
from repx.inspect.params import ParamIndex
from repx.lab.loader import LoadedLab
from repx.run.store_models import GatherEntry

_OUT_PREFIX: Final = "$out/"


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
    #: the job's effective parameters (own and inherited): for messages, never for the job
    params: dict[str, JsonValue] = {}
    #: the first run listing the job (its image under containerMode "per-run")
    run: str = ""


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
            params = effective_params(lab, inp.job)
            gathers.setdefault(inp.name, []).append(
                GatherEntry(job=inp.job, params=params, path=path)
            )
        else:
            inputs[inp.name] = path
    try:
        main = job.executables["main"]
    except KeyError:
        raise LabError(
            f"job {job_id}: no 'main' executable (stage type '{job.stage_type}' is not supported)"
        ) from None
    return JobSpec(
        job=job_id,
        stage=job.stage,
        run=next(iter(lab.job_runs.get(job_id, ())), ""),
        lab_root=root,
        lab_id=lab.meta.lab_id,
        executable=os.path.join(root, main.path),
        parameters_file=os.path.join(root, job.parameters_file),
        inputs=inputs,
        gathers={name: tuple(entries) for name, entries in gathers.items()},
        outputs=tuple(output_path(v) for v in job.outputs.values()),
        cpus=job.resources.cpus or 1,
        mem_bytes=(job.resources.mem or 0) * 1024**2,  # the lab holds MiB
        params=effective_params(lab, job_id),
    )


def effective_params(lab: LoadedLab, job_id: str) -> dict[str, JsonValue]:
    """The job's effective parameters: its own and those inherited from upstream (a stats
    job after a seed sweep has ``seed`` although it declares none). One index per lab,
    kept while specs of that lab are being made."""
    if _INDEX[0] is not lab:
        _INDEX[:] = [lab, ParamIndex(lab)]
    index = _INDEX[1]
    assert isinstance(index, ParamIndex)  # set together with the lab
    return dict(index.effective(job_id).values)


#: [the lab, its ParamIndex]: the lab whose specs are being made (one run: one lab).
_INDEX: list[object] = [None, None]


def output_path(template: str) -> str:
    """``"$out/a/b.csv"`` -> ``"a/b.csv"`` (a declared output, relative to the out dir)."""
    if not template.startswith(_OUT_PREFIX) or len(template) == len(_OUT_PREFIX):
        raise LabError(f"declared output '{template}' does not start with '{_OUT_PREFIX}'")
    rel = template[len(_OUT_PREFIX) :]
    if rel.startswith("/") or ".." in rel.split("/"):
        raise LabError(f"declared output '{template}' leaves $out")
    return rel
