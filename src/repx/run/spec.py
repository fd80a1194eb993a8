"""What one job needs to run, resolved against a lab and an output store.

A :class:`JobSpec` is self-contained (absolute paths, no lab loader needed), so the same
per-job wrapper runs it in-process or on a cluster node (``python -m repx.run.job``).
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH118, PTH120

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue

from repx.errors import LabError, one_line
from repx.inspect.params import ParamIndex
from repx.lab.loader import LoadedLab
from repx.lab.models import SCATTER_GATHER, Executable, RunInput, ScatterGather
from repx.run.store_models import (
    MISSING,
    GatherEntry,
    MetadataExecutable,
    MetadataInput,
    MetadataJob,
    RunMetadata,
)

_OUT_PREFIX: Final = "$out/"


class NodeLocalLab(BaseModel):
    """Where the node-local copy of a lab comes from and goes (``artifact_store =
    "node-local"``, :mod:`repx.run.node_local`): in SLURM task manifests."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: the target's ``node_local_path``
    root: str
    lab_id: str
    #: the lab archive the copy is unpacked from (readable on every node)
    archive: str
    #: the lab's root on the submitting host: paths starting with it move to the copy
    source: str

    @property
    def path(self) -> str:
        """The copy: ``<root>/<lab id>``."""
        return os.path.join(self.root, self.lab_id)


class PieceSlurm(BaseModel):
    """How the orchestrator of a job run by SLURM submits its steps (scatter_slurm)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    python: str
    #: the job's partition (a step without one uses it)
    partition: str | None = None
    #: sbatch options of the job (target and resources file) every step array gets
    options: tuple[str, ...] = ()
    #: node-local lab copies: each step task makes sure its node has one
    node_local: NodeLocalLab | None = None


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
    #: inter-run inputs: ``store__base`` -> the output store's base directory
    store_inputs: dict[str, str] = {}
    #: inter-run inputs: ``metadata__<run>`` -> that run's jobs (statuses are read when
    #: the job starts, see :func:`repx.run.job.prepare`)
    run_metadata: dict[str, RunMetadata] = {}
    #: declared outputs, relative to $out
    outputs: tuple[str, ...] = ()
    cpus: int = 1
    mem_bytes: int = 0
    #: the job's effective parameters (own and inherited): for messages, never for the job
    params: dict[str, JsonValue] = {}
    #: the first run listing the job (its image under containerMode "per-run")
    run: str = ""
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
            params = effective_params(lab, inp.job)
            gathers.setdefault(inp.name, []).append(
                GatherEntry(job=inp.job, params=params, path=path)
            )
        else:
            inputs[inp.name] = path
    store_inputs: dict[str, str] = {}
    run_metadata: dict[str, RunMetadata] = {}
    for run_input in job.run_inputs:
        if run_input.kind == "store_base":
            store_inputs[run_input.name] = os.path.dirname(outputs)
        else:
            run_metadata[run_input.name] = _described_run(lab, job_id, run_input, outputs)
    pieces: Pieces | None = None
    if job.stage_type == SCATTER_GATHER and job.scatter_gather is not None:
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
        run=next(iter(lab.job_runs.get(job_id, ())), ""),
        lab_root=root,
        lab_id=lab.meta.lab_id,
        executable=os.path.join(root, main.path),
        parameters_file=os.path.join(root, job.parameters_file),
        inputs=inputs,
        gathers={name: tuple(entries) for name, entries in gathers.items()},
        store_inputs=store_inputs,
        run_metadata=run_metadata,
        outputs=tuple(output_path(v) for v in job.outputs.values()),
        cpus=job.resources.cpus or 1,
        mem_bytes=(job.resources.mem or 0) * 1024**2,  # the lab holds MiB
        params=effective_params(lab, job_id),
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


def effective_params(lab: LoadedLab, job_id: str) -> dict[str, JsonValue]:
    """The job's effective parameters: its own and those inherited from upstream (a stats
    job after a seed sweep has ``seed`` although it declares none). One index per lab,
    kept while specs of that lab are being made."""
    return dict(param_index(lab).effective(job_id).values)


def param_index(lab: LoadedLab) -> ParamIndex:
    """The lab's one :class:`ParamIndex` while its specs are being made (what it has
    computed serves every later caller of this run)."""
    if _INDEX[0] is not lab:
        _INDEX[:] = [lab, ParamIndex(lab)]
    index = _INDEX[1]
    assert isinstance(index, ParamIndex)  # set together with the lab
    return index


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


def _described_run(lab: LoadedLab, job_id: str, run_input: RunInput, outputs: str) -> RunMetadata:
    """The jobs of the run a ``metadata__<run>`` input names (statuses not yet read).

    Built once per run and lab: every consumer of the same run shares it.
    """
    run = run_input.run
    if run is None or run not in lab.runs:
        known = ", ".join(lab.runs) or "none"
        raise LabError(
            one_line(
                f"job {job_id}: input '{run_input.name}' describes run '{run}', which the lab"
                f" does not have (runs: {known}); rebuild the lab"
            )
        )
    consumers = lab.job_runs.get(job_id, [])
    if consumers and not any(run in lab.revision.runs[c].depends_on for c in consumers):
        # its jobs could still be running when this one starts: refuse rather than describe
        # a half-finished run
        raise LabError(
            one_line(
                f"job {job_id}: input '{run_input.name}' describes run '{run}', but run"
                f" '{consumers[0]}' does not depend on it; add it to the run's dependencies"
                " and rebuild the lab"
            )
        )
    key = (id(lab), run, outputs)
    cached = _DESCRIBED.get(key)
    if cached is not None and cached[0] is lab:
        return cached[1]
    described = _describe_run(lab, run, outputs)
    if len(_DESCRIBED) > 8:  # one lab per `repx run`; keep the cache from growing in tests
        _DESCRIBED.clear()
    _DESCRIBED[key] = (lab, described)
    return described


#: (id(lab), run, outputs dir) -> (the lab, its description): see :func:`_described_run`
_DESCRIBED: dict[tuple[int, str, str], tuple[LoadedLab, RunMetadata]] = {}


def _describe_run(lab: LoadedLab, run: str, outputs: str) -> RunMetadata:
    # inspect.params only reads the lab; imported here to keep the per-job import light
    from repx.inspect.params import ParamIndex  # noqa: PLC0415

    effective = ParamIndex(lab)
    manifest = lab.runs[run]
    jobs: dict[str, MetadataJob] = {}
    # model_construct: every value comes from the validated lab models (validating 10,000
    # described jobs again took ~0.1 ms each)
    for jid, job in manifest.jobs.items():
        stage = manifest.stages.get(job.stage)
        pname = stage.pname if stage is not None else job.stage
        version = stage.version if stage is not None else ""
        out_dir = os.path.join(outputs, jid, "out")
        main = MetadataExecutable.model_construct(
            outputs=dict(job.outputs),
            inputs=tuple(
                MetadataInput.model_construct(
                    target_input=i.name, job_id=i.job, source_output=i.output
                )
                for i in job.inputs
            ),
        )
        jobs[jid] = MetadataJob.model_construct(
            name=f"{pname}-{version}" if version else pname,
            stage=job.stage,
            pname=pname,
            version=version,
            stage_type=job.stage_type,
            params=dict(job.params),
            effective_params=dict(effective.effective(jid).values),
            executables={"main": main},
            out_dir=out_dir,
            output_paths={
                name: os.path.join(out_dir, output_path(template))
                for name, template in job.outputs.items()
            },
            status=MISSING,
        )
    return RunMetadata(
        name=run, lab_id=lab.meta.lab_id, store_base=os.path.dirname(outputs), jobs=jobs
    )
