"""``repx build``: build an experiment flake into a lab."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import output
from repx.errors import UsageError

if TYPE_CHECKING:
    from repx.lab.summary import LabSummary
    from repx.services.build import BuildOptions


def build(  # noqa: PLR0917 (typer maps parameters to CLI options)
    flake_ref: Annotated[
        str, typer.Argument(help="The experiment flake (a directory or any flake reference).")
    ] = ".",
    out_link: Annotated[
        Path, typer.Option("--out-link", "-o", help="Symlink to the built lab.")
    ] = Path("result"),
    no_link: Annotated[bool, typer.Option("--no-link", help="Do not create a symlink.")] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the lab summary as JSON on stdout.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show build logs and debug messages.")
    ] = False,
    override_input: Annotated[
        list[str] | None,
        typer.Option(
            "--override-input",
            metavar="NAME=REF",
            help="Override a flake input (repeatable), e.g. repx=path:../repx.",
        ),
    ] = None,
    no_integrity: Annotated[
        bool, typer.Option("--no-integrity", help="Skip hashing the lab's files.")
    ] = False,
    show_trace: Annotated[
        bool, typer.Option("--show-trace", help="Pass --show-trace to nix: its full error trace.")
    ] = False,
) -> None:
    """Build the lab of an experiment flake, check it, and summarise it."""
    from repx.services.build import BuildOptions  # noqa: PLC0415

    output.setup_logging(verbose)
    options = BuildOptions(
        flake_ref=flake_ref,
        out_link=None if no_link else out_link,
        verbose=verbose,
        override_inputs=_parse_overrides(override_input or []),
        check_integrity=not no_integrity,
        show_trace=show_trace,
    )
    summary = build_with_progress(options)
    if json_output:
        output.print_json(summary)
    else:
        _print_summary(summary)


def build_with_progress(options: BuildOptions) -> LabSummary:
    """Build with a spinner on a terminal, nix's log lines on stderr otherwise."""
    from repx.services.build import build_lab  # noqa: PLC0415

    if output.stderr_is_terminal():
        console = output.err_console()
        with console.status("evaluating", spinner="dots") as status:
            return build_lab(
                options,
                on_status=lambda s: status.update(s.describe()),
                on_log_line=lambda line: console.print(line, markup=False, highlight=False),
            )
    return build_lab(options, on_log_line=output.message)


def _parse_overrides(items: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, ref = item.partition("=")
        if not sep or not name or not ref:
            raise UsageError(f"--override-input expects NAME=REF, got '{item}'")
        overrides[name] = ref
    return overrides


def _print_summary(summary: LabSummary) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"lab {summary.lab_id}", title_justify="left")
    table.add_column("run")
    table.add_column("stages")
    table.add_column("jobs", justify="right")
    table.add_column("depends on")
    for run in summary.runs:
        deps = ", ".join(f"{name} ({kind})" for name, kind in run.depends_on.items())
        table.add_row(run.name, " → ".join(run.stages), str(run.jobs), deps or "-")
    console = output.out_console()
    console.print(table)
    details = [
        f"jobs: {summary.total_jobs}",
        f"size: {output.human_size(summary.size_bytes)}",
    ]
    if summary.build_seconds is not None:
        details.append(f"time: {output.human_seconds(summary.build_seconds)}")
    details.append(f"git: {summary.git_hash}")
    console.print("  ".join(details), markup=False)
    where = f"{summary.out_link} -> {summary.path}" if summary.out_link else summary.path
    console.print(where, markup=False, soft_wrap=True)
    # the id commits to the lab's content: noted now, it tells a faithful copy later
    console.print(
        f"lab id: {summary.lab_id}  (check a copy with: repx verify --lab COPY "
        f"--expect {summary.lab_id})",
        markup=False,
        soft_wrap=True,
    )
