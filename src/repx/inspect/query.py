"""The listings and details of a lab: what ``repx list``, ``show`` and ``trace-params`` print."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from repx.errors import UsageError, one_line
from repx.inspect import models as m
from repx.inspect.params import (
    param_names,
    trace_params,
    value_matches,
    varying_params,
)
from repx.inspect.resolve import (
    match_jobs,
    resolve_job,
    resolve_params,
    resolve_run,
    resolve_stage,
    stages_containing,
)
from repx.inspect.status import Attempt, JobState
from repx.inspect.view import LabView
from repx.run.store import FAILED_OUT

if TYPE_CHECKING:
    from pydantic import JsonValue


@dataclass(frozen=True)
class JobQuery:
    """Which jobs ``repx list jobs`` (and ``Lab.jobs``) shows, and what about them."""

    run: str | None = None
    stage: str | None = None
    #: parameter -> accepted values (a job matches one of them)
    where: Mapping[str, Sequence[JsonValue]] = field(default_factory=dict)
    #: parameters to show as columns
    columns: Sequence[str] = ()
    status: JobState | None = None
    output_paths: bool = False
    #: RepX's ``--stage``: stages whose name contains this text
    stage_contains: str | None = None
    #: jobs in any of these states (``--status`` repeated)
    statuses: frozenset[JobState] = frozenset()
    #: jobs whose id starts with this (or ``<short id>-<stage>``): ``list jobs JOB_PREFIX``
    job_prefix: str | None = None


# -- runs and groups --------------------------------------------------------------------


def list_runs(view: LabView) -> m.RunList:
    """Every run: jobs, stages, swept parameters, dependencies, groups, status counts."""
    lab = view.lab
    status = view.status
    groups = lab.revision.groups
    rows = []
    for name in view.run_names:
        manifest = lab.runs[name]
        entry = lab.revision.runs[name]
        parameters = {p: list(v) for p, v in manifest.parameters.items()}
        rows.append(
            m.RunRow(
                name=name,
                jobs=len(manifest.jobs),
                stages=view.stages(name),
                parameters=parameters,
                swept=[p for p, v in parameters.items() if len(v) > 1],
                depends_on=dict(entry.depends_on),
                groups=[g for g, members in groups.items() if name in members],
                status=_counts(status.counts(manifest.jobs)) if status.executed else None,
            )
        )
    return m.RunList(
        lab_id=lab.meta.lab_id, lab=os.fspath(lab.root), base=_str(view.base), runs=rows
    )


def list_groups(view: LabView) -> m.GroupList:
    """Every group of runs and how many jobs it holds."""
    lab = view.lab
    rows = [
        m.GroupRow(
            name=name,
            runs=list(members),
            jobs=len({j for r in members if r in lab.runs for j in lab.runs[r].jobs}),
        )
        for name, members in lab.revision.groups.items()
    ]
    return m.GroupList(lab_id=lab.meta.lab_id, groups=rows)


def show_run(view: LabView, name: str) -> m.RunDetails:
    """Everything about one run: stages, parameters, dependencies, status counts."""
    run = resolve_run(view, name)
    lab = view.lab
    manifest = lab.runs[run]
    entry = lab.revision.runs[run]
    status = view.status
    stages = []
    for stage in view.stages(run):
        info = manifest.stages[stage]
        jobs = view.jobs_of(run, stage)
        stages.append(
            m.StageDetails(
                name=stage,
                jobs=len(jobs),
                version=info.version,
                file=info.file,
                script=info.script,
                parameters=dict(info.parameters),
                outputs=dict(info.outputs),
                depends_on=list(info.depends_on),
                resources=info.resources.model_dump(exclude_none=True),
                status=_counts(status.counts(jobs)) if status.executed else None,
            )
        )
    dependents = {
        other: kind
        for other in view.run_names
        for dep, kind in lab.revision.runs[other].depends_on.items()
        if dep == run
    }
    return m.RunDetails(
        name=run,
        hash=manifest.hash,
        manifest=os.fspath(lab.path(entry.manifest)),
        jobs=len(manifest.jobs),
        stages=stages,
        parameters={p: list(v) for p, v in manifest.parameters.items()},
        zip_groups=[list(g) for g in manifest.zip_groups],
        depends_on=dict(entry.depends_on),
        dependents=dependents,
        groups=[g for g, members in lab.revision.groups.items() if run in members],
        status=_counts(status.counts(manifest.jobs)) if status.executed else None,
    )


# -- jobs -------------------------------------------------------------------------------


def select_jobs(view: LabView, query: JobQuery) -> list[tuple[str, str]]:
    """(run, job) pairs matching ``query``, in display order; names are checked first."""
    run = resolve_run(view, query.run) if query.run is not None else None
    stage = resolve_stage(view, query.stage, run) if query.stage is not None else None
    if run is not None:
        pairs = [(run, job) for job in view.jobs_of(run, stage)]
    else:
        pairs = list(view.all_jobs(stage))
    if query.stage_contains is not None:
        stages = set(stages_containing(view, query.stage_contains, run))
        pairs = [(r, job) for r, job in pairs if view.stage_of(job) in stages]
    if query.job_prefix is not None:
        prefixed = set(match_jobs(view, query.job_prefix, limit=len(view.ids)))
        pairs = [(r, job) for r, job in pairs if job in prefixed]
    wanted = [*query.where, *(c for c in query.columns if c not in query.where)]
    if wanted:
        valid = available_params(view, [job for _, job in pairs], [run] if run else None)
        where = f" in run '{run}'" if run is not None else ""
        resolve_params(wanted, valid, where)
    if query.where:
        params = view.params
        pairs = [
            (r, job) for r, job in pairs if _matches(params.effective(job).values, query.where)
        ]
    if query.status is not None:
        status = view.status
        pairs = [(r, job) for r, job in pairs if status.state(job) is query.status]
    if query.statuses:
        status = view.status
        pairs = [(r, job) for r, job in pairs if status.state(job) in query.statuses]
    return pairs


def swept_params(view: LabView, jobs: Sequence[str], limit: int = 8) -> list[str]:
    """The parameters whose effective value differs between ``jobs`` (what tells them
    apart: ``repx list jobs``' default columns), in the runs' parameter order; at most
    ``limit``."""
    lab = view.lab
    varying = varying_params(view.params, lab, jobs)
    runs = dict.fromkeys(r for job in jobs for r in view.runs_of(job))
    order = param_names(lab, jobs, runs)
    order += [name for name in varying if name not in order]
    return [name for name in order if name in varying][:limit]


def available_params(view: LabView, jobs: Sequence[str], runs: Iterable[str] | None) -> list[str]:
    """Parameters that can be asked about for ``jobs``: run parameters, own and inherited."""
    names = dict.fromkeys(param_names(view.lab, jobs, runs or view.run_names))
    params = view.params
    for job in jobs:
        if view.lab.jobs[job].inputs:
            effective = params.effective(job)
            names.update(dict.fromkeys(effective.values))
            names.update(dict.fromkeys(effective.multi))
    return list(names)


def _matches(values: Mapping[str, JsonValue], where: Mapping[str, Sequence[JsonValue]]) -> bool:
    for name, accepted in where.items():
        if name not in values:
            return False
        if not any(value_matches(values[name], want) for want in accepted):
            return False
    return True


def list_jobs(view: LabView, query: JobQuery) -> m.JobList:
    """The jobs matching ``query`` as rows."""
    pairs = select_jobs(view, query)
    lab = view.lab
    params = view.params
    status = view.status
    rows = []
    for run, job_id in pairs:
        job = lab.jobs[job_id]
        effective = params.effective(job_id).values if job.inputs else dict(job.params)
        outputs = None
        if query.output_paths:
            outputs = {
                name: os.fspath(path)
                for name in job.outputs
                if (path := view.output_path(job_id, name)) is not None
            }
        # validated data throughout: skip pydantic's validation of 10,000 rows
        rows.append(
            m.JobRow.model_construct(
                id=job_id,
                short_id=view.short_id(job_id),
                run=run,
                runs=view.runs_of(job_id),
                stage=job.stage,
                status=status.state(job_id).value,
                reason=status.reason(job_id),
                slurm_id=status.slurm_id(job_id),
                params=dict(job.params),
                effective_params=effective,
                output_paths=outputs,
            )
        )
    return m.JobList(
        lab_id=lab.meta.lab_id,
        lab=os.fspath(lab.root),
        base=_str(view.base),
        columns=list(query.columns),
        jobs=rows,
    )


def job_deps(view: LabView, token: str) -> m.JobDeps:
    """The jobs a job reads from (upstream) and the jobs that read it (downstream)."""
    job_id = resolve_job(view, token)
    return m.JobDeps(
        job=job_id,
        short_id=view.short_id(job_id),
        stage=view.stage_of(job_id),
        run=view.run_of(job_id),
        upstream=_upstream(view, job_id),
        downstream=_downstream(view, job_id),
    )


def _upstream(view: LabView, job_id: str) -> list[m.Dependency]:
    return [
        m.Dependency(
            input=inp.name,
            job=inp.job,
            short_id=view.short_id(inp.job),
            stage=view.stage_of(inp.job),
            run=inp.run,
            output=inp.output,
            gather=inp.gather,
            path=_str(view.output_path(inp.job, inp.output)) if inp.job in view.lab.jobs else None,
        )
        for inp in view.lab.jobs[job_id].inputs
    ]


def _downstream(view: LabView, job_id: str) -> list[m.Dependency]:
    return [
        m.Dependency(
            input=c.input.name,
            job=c.job,
            short_id=view.short_id(c.job),
            stage=view.stage_of(c.job),
            run=c.run,
            output=c.input.output,
            gather=c.input.gather,
        )
        for c in view.consumers_of(job_id)
    ]


def show_job(view: LabView, token: str) -> m.JobDetails:
    """Everything about one job: what it is, what it reads, and how its last run went."""
    job_id = resolve_job(view, token)
    lab = view.lab
    job = lab.jobs[job_id]
    run = view.run_of(job_id)
    manifest = lab.runs.get(run)
    stage = manifest.stages.get(job.stage) if manifest is not None else None
    status = view.status_of([job_id])
    attempt = status.attempt(job_id)
    outputs = []
    for name, declared in job.outputs.items():
        path = view.output_path(job_id, name)
        outputs.append(
            m.OutputInfo(
                name=name, declared=declared, path=_str(path), exists=bool(path and path.exists())
            )
        )
    out_dir = view.output_dir(job_id)
    return m.JobDetails(
        id=job_id,
        short_id=view.short_id(job_id),
        stage=job.stage,
        stage_type=job.stage_type,
        run=run,
        runs=view.runs_of(job_id),
        params=dict(job.params),
        effective_params=view.params.effective(job_id).values,
        inputs=_upstream(view, job_id),
        downstream=_downstream(view, job_id),
        outputs=outputs,
        script=stage.script if stage is not None else None,
        stage_file=stage.file if stage is not None else None,
        stage_version=stage.version if stage is not None else None,
        executables={n: os.fspath(lab.path(e.path)) for n, e in job.executables.items()},
        parameters_file=os.fspath(lab.path(job.parameters_file)),
        resources=job.resources.model_dump(exclude_none=True),
        status=status.state(job_id).value,
        reason=status.reason(job_id),
        slurm_id=status.slurm_id(job_id),
        attempt=_attempt(attempt) if attempt is not None else None,
        output_dir=_str(out_dir) if out_dir is not None and out_dir.is_dir() else None,
        logs={k: os.fspath(v) for k, v in status.log_paths(job_id).items()},
        branches=status.branches(job_id, job.scatter_gather),
    )


def trace_all(view: LabView) -> m.ParamTraceList:
    """The trace of every job (``trace-params`` without a job), in display order."""
    return m.ParamTraceList(
        lab_id=view.lab.meta.lab_id, jobs=[_trace(view, job) for _, job in view.all_jobs()]
    )


def trace(view: LabView, token: str) -> m.ParamTrace:
    """The job's effective parameters and every upstream value, with where each comes from."""
    return _trace(view, resolve_job(view, token))


def _trace(view: LabView, job_id: str) -> m.ParamTrace:
    effective = view.params.effective(job_id)
    traced = trace_params(view.lab, view.params, job_id)
    return m.ParamTrace(
        job=job_id,
        short_id=view.short_id(job_id),
        stage=view.stage_of(job_id),
        run=view.run_of(job_id),
        effective_params=effective.values,
        multi_valued=effective.multi,
        params=[
            m.TracedParam(
                name=t.name,
                value=t.value,
                effective=t.effective,
                sources=[
                    m.ParamSourceOut(
                        job=s.job,
                        short_id=view.short_id(s.job),
                        stage=view.stage_of(s.job),
                        run=view.run_of(s.job),
                        depth=s.depth,
                    )
                    for s in t.sources
                ],
            )
            for t in traced
        ],
    )


def job_output(view: LabView, token: str, path: str | None = None) -> Path | m.OutputListing:
    """``show output JOB [PATH]``: the file at PATH under the job's committed ``out/`` (a
    declared output's name works too), or a listing of ``out/`` (of PATH when a directory).

    Only committed outputs are read: ``out/`` exists exactly when the job succeeded, never
    while an attempt runs. PATH may not leave ``out/`` (``..``, a symbolic link out).
    """
    job_id = resolve_job(view, token)
    out = view.output_dir(job_id)
    state = view.status.state(job_id)
    if out is None or not out.is_dir():
        failed = out.parent / FAILED_OUT if out is not None else None
        kept = f"; what its last attempt left: {failed}" if failed and failed.is_dir() else ""
        raise UsageError(
            one_line(
                f"job {view.short_id(job_id)}-{view.stage_of(job_id)} has no outputs in"
                f" {view.base} (status: {state.value}{kept}); run it: repx run {job_id}"
            )
        )
    target = out
    if path is not None:
        declared = view.lab.jobs[job_id].outputs.get(path)
        rel = declared.removeprefix("$out").lstrip("/") if declared is not None else path
        target = out / rel
        root = out.resolve()
        real = target.resolve()
        if real != root and not real.is_relative_to(root):
            raise UsageError(one_line(f"'{path}' is outside the outputs of job {job_id}"))
        if not target.exists():
            listing = ", ".join(f.path for f in _files(out)[:20]) or "none"
            raise UsageError(
                one_line(f"job {view.short_id(job_id)} has no output '{path}' (files: {listing})")
            )
        if not target.is_dir():
            return target
    return m.OutputListing(
        id=job_id,
        short_id=view.short_id(job_id),
        status=state.value,
        directory=os.fspath(target),
        files=_files(target),
    )


def _files(directory: Path) -> list[m.OutputFile]:
    found = []
    for entry in sorted(directory.rglob("*")):
        rel = entry.relative_to(directory).as_posix()
        if entry.is_dir() and not entry.is_symlink():
            found.append(m.OutputFile(path=rel + "/", size=None))
        else:
            found.append(m.OutputFile(path=rel, size=entry.lstat().st_size))
    return found


def parse_param_options(options: Iterable[str]) -> tuple[list[str], dict[str, list[JsonValue]]]:
    """``-p NAME`` and ``-p NAME=VALUE`` options -> (columns, filters)."""
    from repx.inspect.params import parse_value  # noqa: PLC0415

    columns: list[str] = []
    where: dict[str, list[JsonValue]] = {}
    for option in options:
        name, sep, text = option.partition("=")
        name = name.strip()
        if not name:
            raise UsageError(f"-p expects NAME or NAME=VALUE, got '{option}'")
        if name not in columns:
            columns.append(name)
        if sep:
            where.setdefault(name, []).append(parse_value(text))
    return columns, where


def _attempt(attempt: Attempt) -> m.AttemptInfo:
    return m.AttemptInfo(
        status=attempt.status,
        exit_code=attempt.exit_code,
        reason=attempt.reason,
        start=attempt.start,
        end=attempt.end,
        duration=attempt.duration,
        host=attempt.host,
        runtime=attempt.runtime,
        cpu_seconds=attempt.cpu_seconds,
        max_rss_kib=attempt.max_rss_kib,
        impure=list(attempt.impure),
    )


def _counts(counts: Mapping[JobState, int]) -> dict[str, int]:
    return {state.value: n for state, n in counts.items()}


def _str(path: os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)
