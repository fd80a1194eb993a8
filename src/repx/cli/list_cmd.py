"""``repx list runs|jobs|deps|groups``: what a lab holds, one row per item."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import output
from repx.cli.inspecting import (
    STATE_STYLES,
    BaseOption,
    Column,
    JsonOption,
    LabOption,
    TargetOption,
    open_view,
    print_model,
    print_table,
)

if TYPE_CHECKING:
    from pydantic import JsonValue

    from repx.inspect import models

app = typer.Typer(
    name="list",
    help="List the runs, jobs, dependencies or groups of a lab.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.command("runs")
def runs(
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Runs: jobs, stages, swept parameters, dependencies and (once run) job states."""
    from repx.inspect.query import list_runs  # noqa: PLC0415 (keep `repx --help` fast)

    result = list_runs(open_view(lab, base, target))
    if json_output:
        print_model(result)
        return
    columns = [
        Column("run"),
        Column("jobs", "right"),
        Column("stages"),
        Column("swept"),
        Column("depends on"),
        Column("groups"),
    ]
    executed = any(run.status is not None for run in result.runs)
    if executed:
        columns.append(Column("status"))
    rows = []
    for run in result.runs:
        row = [
            run.name,
            str(run.jobs),
            " → ".join(run.stages),
            ", ".join(f"{p} ({len(run.parameters[p])})" for p in run.swept) or "-",
            ", ".join(f"{d} ({k})" for d, k in run.depends_on.items()) or "-",
            ", ".join(run.groups) or "-",
        ]
        if executed:
            row.append(format_counts(run.status or {}))
        rows.append(row)
    print_table(columns, rows, title=f"lab {result.lab_id}")


@app.command("jobs")
def jobs(  # noqa: PLR0917 (typer maps parameters to CLI options)
    run: Annotated[
        str | None,
        typer.Argument(metavar="[RUN]", help="Only the jobs of this run.", show_default=False),
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME[=VALUE]",
            help="Show a column for parameter NAME; with =VALUE, only jobs where it has that"
            " value (repeatable; values of one name are alternatives).",
            show_default=False,
        ),
    ] = None,
    stage: Annotated[
        str | None, typer.Option("--stage", help="Only the jobs of this stage.", show_default=False)
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATE",
            help="Only jobs in this state: succeeded, failed, running, queued, pending, waiting,"
            " blocked, cancelled.",
            show_default=False,
        ),
    ] = None,
    output_paths: Annotated[
        bool, typer.Option("--output-paths", help="Show where each job's outputs are.")
    ] = False,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Jobs: short id, run, stage, chosen parameters (-p), state, output paths."""
    from repx.inspect.params import format_value  # noqa: PLC0415
    from repx.inspect.query import (  # noqa: PLC0415
        JobQuery,
        list_jobs,
        parse_param_options,
        select_jobs,
    )
    from repx.inspect.resolve import resolve_state  # noqa: PLC0415

    columns, where = parse_param_options(param or [])
    query = JobQuery(
        run=run,
        stage=stage,
        where=where,
        columns=columns,
        status=resolve_state(status) if status is not None else None,
        output_paths=output_paths,
    )
    view = open_view(lab, base, target)
    if json_output:
        print_model(list_jobs(view, query))
        return
    # The table is built from the view directly: no row models for 10,000 jobs.
    pairs = select_jobs(view, query)
    show_status = query.status is not None or view.status.executed
    header = [Column("id"), Column("run"), Column("stage"), *(Column(c) for c in columns)]
    if show_status:
        header.append(Column("status", styles=STATE_STYLES))
    jobs_by_id = view.lab.jobs
    # scatter-gather jobs: how many of their branches are complete
    show_branches = show_status and any(jobs_by_id[j].scatter_gather for _, j in pairs)
    if show_branches:
        header.append(Column("branches"))
    if output_paths:
        header.append(Column("outputs", fold=True))
    states = view.status
    params = view.params
    rows = []
    for job_run, job_id in pairs:
        job = jobs_by_id[job_id]
        row = [view.short_id(job_id), job_run, job.stage]
        if columns:
            effective = params.effective(job_id)
            for name in columns:
                if name in effective.values:
                    row.append(format_value(effective.values[name]))
                else:
                    row.append(_multi_text(effective.multi, name))
        if show_status:
            row.append(states.state(job_id).value)
        if show_branches:
            branches = states.branches(job_id, job.scatter_gather)
            row.append(f"{branches.done}/{branches.total}" if branches is not None else "-")
        if output_paths:
            paths = [view.output_path(job_id, name) for name in job.outputs]
            row.append(" ".join(str(p) for p in paths if p is not None) or "-")
        rows.append(row)
    print_table(header, rows, title=f"{len(rows)} job{'s' if len(rows) != 1 else ''}")
    if not rows:
        output.message("no job matches")


def _multi_text(multi: Mapping[str, list[JsonValue]], name: str) -> str:
    from repx.inspect.params import format_value  # noqa: PLC0415

    values = multi.get(name)
    if not values:
        return "-"
    shown = ",".join(format_value(v) for v in values[:3])
    return f"{{{shown}{',…' if len(values) > 3 else ''}}}"


@app.command("deps")
def deps(
    job: Annotated[str, typer.Argument(help="A job id or a unique prefix of one.")],
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """The jobs a job reads from (upstream) and the jobs that read its outputs (downstream)."""
    from repx.inspect.query import job_deps  # noqa: PLC0415

    result = job_deps(open_view(lab, base, target), job)
    if json_output:
        print_model(result)
        return
    columns = [
        Column("direction"),
        Column("input"),
        Column("job"),
        Column("stage"),
        Column("run"),
        Column("output"),
    ]
    rows = [_dep_row("upstream", d) for d in result.upstream]
    rows += [_dep_row("downstream", d) for d in result.downstream]
    print_table(columns, rows, title=f"{result.job} ({result.run}/{result.stage})")
    if not rows:
        output.message(f"job {result.short_id} neither reads nor feeds another job")


def _dep_row(direction: str, dep: models.Dependency) -> list[str]:
    gather = " (gather)" if dep.gather else ""
    return [direction, dep.input + gather, dep.short_id, dep.stage, dep.run, dep.output]


@app.command("groups")
def groups(
    lab: LabOption = Path("result"),
    json_output: JsonOption = False,
) -> None:
    """Groups of runs (`repx run @GROUP` runs a group)."""
    from repx.inspect.query import list_groups  # noqa: PLC0415

    result = list_groups(open_view(lab))
    if json_output:
        print_model(result)
        return
    rows = [[g.name, ", ".join(g.runs), str(g.jobs)] for g in result.groups]
    print_table([Column("group"), Column("runs"), Column("jobs", "right")], rows)
    if not rows:
        output.message("the lab defines no groups")


def format_counts(counts: Mapping[str, int]) -> str:
    """``6 succeeded, 2 pending`` (states without jobs left out)."""
    return ", ".join(f"{n} {state}" for state, n in counts.items() if n) or "-"
