"""``repx status``: the state of a lab's jobs in the output store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import complete, output
from repx.cli.run import BaseOption, LabOption, TargetOption

if TYPE_CHECKING:
    from repx.services.run import StatusReport


def status(
    run: Annotated[
        str | None,
        typer.Argument(
            help="Only this run (default: every run).",
            show_default=False,
            autocompletion=complete.complete_runs,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print every job's state as JSON.")
    ] = False,
) -> None:
    """Show how many jobs of each stage succeeded, failed, run, wait or are blocked."""
    from repx.services.location import Location  # noqa: PLC0415
    from repx.services.remote import remote_status, remote_target  # noqa: PLC0415 (SSH targets)
    from repx.services.run import lab_status  # noqa: PLC0415

    where = Location(lab=lab, base=base, target=target)
    remote = remote_target(where)
    report = lab_status(where, run) if remote is None else remote_status(remote, lab, run)
    if json_output:
        output.print_json(report)
        return
    _print_table(report)


def _print_table(report: StatusReport) -> None:
    from rich.table import Table  # noqa: PLC0415

    from repx.inspect.status import SCHEDULER_STATES, JobState  # noqa: PLC0415

    totals = report.totals()
    # queued/cancelled only exist for SLURM targets: show them when some job is in them
    states = [s for s in JobState if s not in SCHEDULER_STATES or totals[s]]
    table = Table(title=f"{report.base}", title_justify="left", box=None, pad_edge=False)
    table.add_column("run", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    for state in states:
        table.add_column(state.value, justify="right", no_wrap=True)
    for stage in report.stages:
        table.add_row(stage.run, stage.stage, *(_cell(stage.counts[s]) for s in states))
    table.add_row("total", "", *(_cell(totals[s]) for s in states), style="bold")
    output.out_console().print(table)
    for entry in report.jobs:
        if entry.status is JobState.FAILED:
            why = f" ({entry.reason})" if entry.reason else ""
            output.message(f"failed: {entry.id}{why}")
        elif entry.reason and entry.status in (JobState.PENDING, JobState.WAITING):
            # a success whose outputs were damaged: say why it runs again
            output.message(f"{entry.status.value}: {entry.id} ({entry.reason})")
    for entry in report.jobs:
        if entry.branches is not None and entry.status is not JobState.SUCCEEDED:
            output.message(f"{entry.status.value}: {entry.id} ({entry.branches})")
    impure = [e for e in report.jobs if e.impure]
    if impure:
        paths = sorted({p for e in impure for p in e.impure})
        output.message(
            f"impure: {len(impure)} job(s) saw host paths ({', '.join(paths)}):"
            " their results are NOT reproducible"
        )


def _cell(count: int) -> str:
    return str(count) if count else "·"
