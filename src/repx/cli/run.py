"""``repx run``: run the jobs of a lab that are not done yet."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.options import parse_base


class RuntimeChoice(StrEnum):
    """The ``--runtime`` values (mirrors :class:`repx.config.RuntimeKind`)."""

    native = "native"
    bwrap = "bwrap"
    podman = "podman"
    docker = "docker"


LabOption = Annotated[
    Path, typer.Option("--lab", help="The lab: a `result` link or a lab directory.")
]


BaseOption = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="Output store directory (default: the target's base, else ./repx-runs).",
        parser=parse_base,
    ),
]
TargetOption = Annotated[
    str | None, typer.Option("--target", help="Target from config.toml (default: default_target).")
]


def run(  # noqa: PLR0917 (typer maps parameters to CLI options)
    selectors: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[RUN | @GROUP | JOB_ID]...",
            help="What to run (default: every run); upstream jobs are included.",
            show_default=False,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    jobs: Annotated[
        int | None,
        typer.Option("--jobs", "-j", min=1, help="Jobs at once (default: the CPU count)."),
    ] = None,
    runtime: Annotated[
        RuntimeChoice | None,
        typer.Option(
            "--runtime",
            help="bwrap (sandbox, the default), podman or docker (in the lab's image), or"
            " native (no sandbox).",
            case_sensitive=False,
        ),
    ] = None,
    continue_on_failure: Annotated[
        bool,
        typer.Option(
            "--continue-on-failure", help="Keep starting jobs that do not depend on a failure."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the jobs that would run; run nothing.")
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="SLURM targets: follow the jobs until they end (default: submit, return).",
        ),
    ] = False,
    resources: Annotated[
        Path | None,
        typer.Option(
            "--resources",
            help="SLURM targets: resources.toml to use (default: the target's, else the one"
            " next to config.toml).",
        ),
    ] = None,
    mount_host_paths: Annotated[
        bool,
        typer.Option(
            "--mount-host-paths",
            help="Impure, NOT reproducible: jobs see the host's file system read-only.",
        ),
    ] = False,
    mount_path: Annotated[
        list[str] | None,
        typer.Option(
            "--mount-path",
            metavar="PATH",
            help="Impure, NOT reproducible: jobs see this host path read-only (repeatable).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Stream one JSON event per line on stdout.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug messages.")] = False,
) -> int:
    """Run the selected runs of a lab (skipping completed jobs) and summarise."""
    from repx.config import RuntimeKind  # noqa: PLC0415 (keep `repx --help` fast)
    from repx.run.reporter import JsonReporter, PlainReporter, Reporter, RichReporter  # noqa: PLC0415
    from repx.services.location import Location  # noqa: PLC0415
    from repx.services.run import RunOptions, run_lab  # noqa: PLC0415

    output.setup_logging(verbose)
    options = RunOptions(
        where=Location(lab=lab, base=base, target=target),
        selectors=tuple(selectors or ()),
        jobs=jobs,
        runtime=RuntimeKind(runtime.value) if runtime is not None else None,
        continue_on_failure=continue_on_failure,
        dry_run=dry_run,
        wait=wait,
        resources=resources,
        mount_host_paths=mount_host_paths,
        mount_paths=tuple(mount_path or ()),
    )
    reporter: Reporter
    if json_output:
        reporter = JsonReporter()
    elif output.stderr_is_terminal():
        reporter = RichReporter(output.err_console())
    else:
        reporter = PlainReporter()
    summary = run_lab(options, reporter)
    if summary.submitted_only and not json_output:
        # the result of a submission: the SLURM job ids, one per line (for scripts)
        for slurm_id in summary.slurm_ids:
            typer.echo(slurm_id)
    return summary.exit_code
