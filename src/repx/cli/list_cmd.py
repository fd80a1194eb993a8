"""``repx list [runs|jobs|deps|groups]``: what a lab holds, one row per item.

``repx list`` alone lists the runs (as RepX does); ``list runs RUN`` lists the jobs of
that run, like ``list jobs RUN``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import complete, output
from repx.cli.help import examples
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
    stdout_is_terminal,
)
from repx.cli.options import option_defaults

if TYPE_CHECKING:
    from pydantic import JsonValue

    from repx.inspect import models
    from repx.inspect.query import JobQuery
    from repx.inspect.view import LabView

app = typer.Typer(
    name="list",
    help="List the runs (the default), jobs, dependencies or groups of a lab.",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples("list"),
)


@app.callback()
def _list(
    ctx: typer.Context,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """List the runs (the default), jobs, dependencies or groups of a lab."""
    if ctx.invoked_subcommand is None:
        runs(None, lab, base, target, json_output)
        return
    # `repx list --lab X jobs`: options given here apply to the command (its own win)
    chosen = {"lab": lab, "base": base, "target": target, "json_output": json_output}
    given = {
        name: value
        for name, value in chosen.items()
        if (source := ctx.get_parameter_source(name)) is not None and source.name != "DEFAULT"
    }
    if given:
        merged = dict(ctx.default_map or {})  # what options before `list` gave
        for name, values in option_defaults(ctx.command, given).items():
            merged[name] = {**merged.get(name, {}), **values}
        ctx.default_map = merged


@app.command("runs", epilog=examples("list runs"))
def runs(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN",
            help="List the jobs of this run instead.",
            show_default=False,
            autocompletion=complete.complete_runs,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Runs: jobs, stages, swept parameters, dependencies and (once run) job states."""
    from repx.inspect.query import list_runs  # noqa: PLC0415 (keep `repx --help` fast)

    if name is not None:
        jobs(name, lab=lab, base=base, target=target, json_output=json_output)
        return
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


@app.command("jobs", epilog=examples("list jobs"))
def jobs(  # noqa: PLR0917 (typer maps parameters to CLI options)
    selector: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN|JOB",
            autocompletion=complete.complete_run_or_job,
            help="Only the jobs of this run, or the jobs whose id starts with JOB.",
            show_default=False,
        ),
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
        str | None,
        typer.Option(
            "--stage",
            "-s",
            autocompletion=complete.complete_stages,
            metavar="TEXT",
            help="Only the jobs of stages whose name contains TEXT.",
            show_default=False,
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            metavar="STATE",
            autocompletion=complete.complete_states,
            help="Only jobs in this state (repeatable: any of them): succeeded, failed,"
            " running, queued, pending, waiting, blocked, cancelled.",
            show_default=False,
        ),
    ] = None,
    output_paths: Annotated[
        bool, typer.Option("--output-paths", help="Show where each job's outputs are.")
    ] = False,
    group_by_stage: Annotated[
        bool, typer.Option("--group-by-stage", "-g", help="One table per stage.")
    ] = False,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """Jobs: short id, run, stage, parameters, state, output paths.

    The parameter columns are those whose values differ between the listed jobs (the
    swept ones), or the ones named with -p.
    """
    from repx.inspect.query import (  # noqa: PLC0415
        JobQuery,
        list_jobs,
        parse_param_options,
        select_jobs,
    )
    from repx.inspect.resolve import resolve_run_or_jobs, resolve_state  # noqa: PLC0415

    columns, where = parse_param_options(param or [])
    view = open_view(lab, base, target)
    run, prefix = resolve_run_or_jobs(view, selector) if selector is not None else (None, None)
    query = JobQuery(
        run=run,
        job_prefix=prefix,
        stage_contains=stage,
        where=where,
        columns=columns,
        statuses=frozenset(resolve_state(s) for s in status or ()),
        output_paths=output_paths,
    )
    if json_output:
        print_model(list_jobs(view, query))
        return
    # The table is built from the view directly: no row models for 10,000 jobs.
    pairs = select_jobs(view, query)
    if not group_by_stage:
        _print_jobs(view, query, pairs, f"{len(pairs)} job{'s' if len(pairs) != 1 else ''}")
    else:
        by_stage: dict[str, list[tuple[str, str]]] = {}
        for pair in pairs:
            by_stage.setdefault(view.stage_of(pair[1]), []).append(pair)
        for index, (name, group) in enumerate(by_stage.items()):
            if index:
                typer.echo("")
            title = f"stage {name}: {len(group)} job{'s' if len(group) != 1 else ''}"
            if not stdout_is_terminal():  # the tab-separated form has no title row
                typer.echo(f"[{name}]")
            _print_jobs(view, query, group, title)
    if not pairs:
        output.message("no job matches")


def _print_jobs(
    view: LabView, query: JobQuery, pairs: Sequence[tuple[str, str]], title: str
) -> None:
    from repx.inspect.params import format_value  # noqa: PLC0415
    from repx.inspect.query import swept_params  # noqa: PLC0415

    # by default, the parameters that tell the jobs of this table apart
    columns = query.columns or swept_params(view, [job for _, job in pairs])
    show_status = bool(query.statuses) or view.status.executed
    header = [Column("id"), Column("run"), Column("stage"), *(Column(c) for c in columns)]
    if show_status:
        header.append(Column("status", styles=STATE_STYLES))
    jobs_by_id = view.lab.jobs
    # scatter-gather jobs: how many of their branches are complete
    show_branches = show_status and any(jobs_by_id[j].scatter_gather for _, j in pairs)
    if show_branches:
        header.append(Column("branches"))
    if query.output_paths:
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
        if query.output_paths:
            paths = [view.output_path(job_id, name) for name in job.outputs]
            row.append(" ".join(str(p) for p in paths if p is not None) or "-")
        rows.append(row)
    print_table(header, rows, title=title)


def _multi_text(multi: Mapping[str, list[JsonValue]], name: str) -> str:
    from repx.inspect.params import format_value  # noqa: PLC0415

    values = multi.get(name)
    if not values:
        return "-"
    shown = ",".join(format_value(v) for v in values[:3])
    return f"{{{shown}{',…' if len(values) > 3 else ''}}}"


@app.command("deps", epilog=examples("list deps"))
def deps(
    job: Annotated[
        str,
        typer.Argument(
            help="A job id or a unique prefix of one.", autocompletion=complete.complete_jobs
        ),
    ],
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: JsonOption = False,
) -> None:
    """The jobs a job reads from (upstream) and the jobs that read its outputs (downstream)."""
    from repx.inspect.query import job_deps  # noqa: PLC0415

    result = job_deps(open_view(lab, base, target, few=True), job)
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


@app.command("groups", epilog=examples("list groups"))
def groups(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="GROUP",
            help="Only this group.",
            show_default=False,
            autocompletion=complete.complete_groups,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    json_output: JsonOption = False,
) -> None:
    """Groups of runs (`repx run @GROUP` runs a group)."""
    from repx.inspect.query import list_groups  # noqa: PLC0415
    from repx.inspect.resolve import resolve_group  # noqa: PLC0415

    view = open_view(lab)
    result = list_groups(view)
    if name is not None:
        wanted = resolve_group(view, name)
        result = result.model_copy(
            update={"groups": [g for g in result.groups if g.name == wanted]}
        )
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
