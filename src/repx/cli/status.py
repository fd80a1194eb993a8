"""``repx status``: the state of a lab's jobs in the output store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import output
from repx.cli.run import BaseOption, LabOption, OnlyRunArgument, TargetOption

if TYPE_CHECKING:
    from rich.table import Table

    from repx.services.status import StatusReport, StatusSource


def status(  # noqa: PLR0917 (typer maps parameters to CLI options)
    run: OnlyRunArgument = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print every job's state as JSON.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Keep the table up to date until every job is finished (Ctrl-C stops).",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", min=0.1, metavar="SECONDS", help="With --watch: seconds between looks."
        ),
    ] = 1.0,
) -> None:
    """Show how many jobs of each stage succeeded, failed, run, wait or are blocked.

    Examples: `repx status`, `repx status simulation --json`, `repx status --watch`
    (while `repx run` runs elsewhere).
    """
    from repx.errors import UsageError  # noqa: PLC0415
    from repx.services.location import Location, is_remote  # noqa: PLC0415
    from repx.services.status import StatusSource  # noqa: PLC0415

    if watch and json_output:
        raise UsageError("--watch and --json cannot be combined (poll `repx status --json`)")
    where = Location(lab=lab, base=base, target=target)
    if is_remote(where):
        # the SSH layer (rsync, the remote plan: ~0.4 s of imports) only for SSH targets
        from repx.services.remote import remote_status, remote_target  # noqa: PLC0415

        remote = remote_target(where)
        assert remote is not None
        if watch:
            raise UsageError(
                f"--watch is not supported on SSH targets yet (target '{remote.name}'):"
                " use `repx run --target NAME --wait`, or poll `repx status`"
            )
        report = remote_status(remote, lab, run)
    else:
        source = StatusSource(where, run)
        if watch:
            _watch(source, interval)
            return
        report = source.report()
    if json_output:
        output.print_json(report)
        return
    _print_table(report)


def _watch(source: StatusSource, interval: float) -> None:
    """A live table on a terminal; else one line per change, then the table."""
    from rich.live import Live  # noqa: PLC0415

    from repx.services.status import watch_status  # noqa: PLC0415

    console = output.out_console()
    last: StatusReport | None = None
    caption = f"watching every {interval:g} s; Ctrl-C stops"
    try:
        if console.is_terminal:
            with Live(console=console, auto_refresh=False, transient=True) as live:
                for report in watch_status(source, interval):
                    # `last` first: a Ctrl-C while drawing still prints this report
                    previous, last = last, report
                    if report != previous:
                        live.update(_table(report, caption), refresh=True)
        else:
            for report in watch_status(source, interval):
                previous, last = last, report
                if previous is None or report.totals() != previous.totals():
                    typer.echo(_counts_line(report))
    except KeyboardInterrupt:
        pass  # stopping to watch is not an error
    if last is not None:
        _print_table(last)


def _counts_line(report: StatusReport) -> str:
    import time  # noqa: PLC0415

    counts = ", ".join(f"{state.value} {n}" for state, n in report.totals().items() if n)
    return f"{time.strftime('%H:%M:%S')}  {counts or 'no jobs'}"


def _print_table(report: StatusReport) -> None:
    output.out_console().print(_table(report))
    _print_notes(report)


def _table(report: StatusReport, caption: str | None = None) -> Table:
    from rich.table import Table  # noqa: PLC0415

    from repx.inspect.status import SCHEDULER_STATES, JobState  # noqa: PLC0415

    totals = report.totals()
    # queued/cancelled only exist for SLURM targets: show them when some job is in them
    states = [s for s in JobState if s not in SCHEDULER_STATES or totals[s]]
    table = Table(
        title=f"{report.base}",
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=None,
        pad_edge=False,
    )
    table.add_column("run", no_wrap=True)
    table.add_column("stage", no_wrap=True)
    for state in states:
        table.add_column(state.value, justify="right", no_wrap=True)
    for stage in report.stages:
        table.add_row(stage.run, stage.stage, *(_cell(stage.counts[s]) for s in states))
    table.add_row("total", "", *(_cell(totals[s]) for s in states), style="bold")
    return table


def _print_notes(report: StatusReport) -> None:
    from repx.inspect.status import JobState  # noqa: PLC0415

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
