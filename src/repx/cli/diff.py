"""``repx diff [OLD_LAB] [NEW_LAB]``: which jobs a new lab revision adds, removes, changes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.inspecting import Column, JsonOption, print_table


def diff(
    old: Annotated[
        Path | None,
        typer.Argument(
            metavar="OLD_LAB",
            help="The earlier lab (default: the build `result` pointed at before).",
            show_default=False,
        ),
    ] = None,
    new: Annotated[
        Path,
        typer.Argument(
            metavar="NEW_LAB", help="The later lab (a `result` link, a lab, a lab.tar)."
        ),
    ] = Path("result"),
    json_out: JsonOption = False,
) -> None:
    """Compare two lab revisions job by job: added, removed, changed, and why.

    Jobs are matched by run, stage and effective parameters; a changed job says whether
    its script (with the changed lines), an upstream job or the environment changed.
    """
    from repx.build_history import previous_build  # noqa: PLC0415 (keep start-up light)
    from repx.errors import UsageError  # noqa: PLC0415
    from repx.inspect.diff import diff_labs  # noqa: PLC0415
    from repx.inspect.params import format_value  # noqa: PLC0415
    from repx.lab.loader import open_lab  # noqa: PLC0415

    new_lab = open_lab(new)
    if old is None:
        entry = previous_build(new, new_lab.meta.lab_id)
        if entry is None:
            raise UsageError(
                f"no earlier build of {new} is recorded (repx build records each one):"
                " give the lab to compare with, e.g. repx diff OLD_LAB"
            )
        old = Path(entry.lab)
    old_lab = open_lab(old)  # a collected lab: 'no such lab' / 'dangling symlink'
    report = diff_labs(old_lab, new_lab)
    if json_out:
        output.print_json(report)
        return
    output.message(f"old: {report.old.path} ({report.old.lab_id})")
    output.message(f"new: {report.new.path} ({report.new.lab_id})")
    output.message(
        f"{report.changed} changed, {report.added} added, {report.removed} removed,"
        f" {report.unchanged} unchanged"
    )
    if report.jobs:
        rows = [
            [
                c.change,
                c.run,
                c.stage,
                " ".join(f"{k}={format_value(v)}" for k, v in c.params.items()) or "-",
                "; ".join(c.reasons),
                c.id or c.old_id or "",
            ]
            for c in report.jobs
        ]
        columns = [Column("change"), Column("run"), Column("stage"), Column("params")]
        columns += [Column("why", fold=True), Column("id")]
        print_table(columns, rows)
    for script in report.scripts:
        typer.echo(f"\nscript of {script.run}/{script.stage} ({script.file}):")
        for line in script.lines:
            typer.echo(f"  {line}")
        if script.more:
            typer.echo(f"  … {script.more} more changed line(s)")
