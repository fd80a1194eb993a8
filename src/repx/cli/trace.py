"""``repx trace-params``: a job's effective parameters and the jobs they come from."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from repx.cli import complete
from repx.cli.inspecting import (
    Column,
    JsonOption,
    LabOption,
    open_view,
    print_model,
    print_table,
)

if TYPE_CHECKING:
    from repx.inspect import models

#: Source jobs named in the "from" column before counting the rest.
_MAX_NAMED: Final = 2
_COLUMNS: Final = (
    Column("parameter"),
    Column("value"),
    Column("effective"),
    Column("from"),
    Column("depth", "right"),
)


def trace_params(
    job: Annotated[
        str | None,
        typer.Argument(
            metavar="JOB",
            autocompletion=complete.complete_jobs,
            help="A job id or a unique prefix of one (default: every job).",
            show_default=False,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    json_output: JsonOption = False,
) -> None:
    """Every parameter a job depends on, its own and upstream, with the jobs it comes from."""
    from repx.inspect.query import trace, trace_all  # noqa: PLC0415 (keep `repx --help` fast)

    view = open_view(lab, few=True)
    if job is None:
        every = trace_all(view)
        if json_output:
            print_model(every)
            return
        head = [Column("job"), Column("run"), Column("stage")]
        rows = [[t.short_id, t.run, t.stage, *row] for t in every.jobs for row in _param_rows(t)]
        print_table([*head, *_COLUMNS], rows, title=f"parameters of {len(every.jobs)} jobs")
        return
    result = trace(view, job)
    if json_output:
        print_model(result)
        return
    print_table(
        _COLUMNS,
        _param_rows(result),
        title=f"parameters of {result.job} ({result.run}/{result.stage})",
    )


def _param_rows(result: models.ParamTrace) -> list[list[str]]:
    from repx.inspect.params import format_value  # noqa: PLC0415

    return [
        [
            p.name,
            format_value(p.value),
            "yes" if p.effective else "-",
            _sources_text(p),
            str(min(s.depth for s in p.sources)),
        ]
        for p in result.params
    ]


def _sources_text(param: models.TracedParam) -> str:
    sources = param.sources
    if len(sources) == 1:
        source = sources[0]
        if source.depth == 0:
            return "this job"
        return f"{source.short_id} ({source.run}/{source.stage})"
    stages = sorted({f"{s.run}/{s.stage}" for s in sources})
    return f"{len(sources)} jobs ({', '.join(stages)})"
