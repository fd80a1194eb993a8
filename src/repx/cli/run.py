"""``repx run``: run the jobs of a lab that are not done yet."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from repx.cli import complete, output
from repx.cli.options import parse_base


class SchedulerChoice(StrEnum):
    """The ``--scheduler`` values (mirrors :class:`repx.config.SchedulerKind`)."""

    local = "local"
    slurm = "slurm"


SchedulerOption = Annotated[
    SchedulerChoice | None,
    typer.Option(
        "--scheduler", help="local or slurm: overrides the target's.", case_sensitive=False
    ),
]


class RuntimeChoice(StrEnum):
    """The ``--runtime`` values (mirrors :class:`repx.config.RuntimeKind`)."""

    native = "native"
    bwrap = "bwrap"
    podman = "podman"
    docker = "docker"


class ArtifactStoreChoice(StrEnum):
    """The ``--artifact-store`` values (mirrors :class:`repx.config.ArtifactStore`)."""

    shared = "shared"
    node_local = "node-local"


LabOption = Annotated[
    Path, typer.Option("--lab", "-l", help="The lab: a `result` link or a lab directory.")
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
    str | None,
    typer.Option(
        "--target",
        help="Target from config.toml (default: default_target).",
        autocompletion=complete.complete_targets,
    ),
]


#: The optional RUN argument of status and tui (the view of one run).
OnlyRunArgument = Annotated[
    str | None,
    typer.Argument(
        help="Only this run (default: every run).",
        show_default=False,
        autocompletion=complete.complete_runs,
    ),
]


def selectors_argument(help_text: str) -> Any:
    """The ``RUN|@GROUP|JOB_ID…`` argument of run, cancel and pull (``help_text``: what the
    command does with them)."""
    return typer.Argument(
        metavar="RUN|@GROUP|JOB_ID",
        autocompletion=complete.complete_selectors,
        help=help_text,
        show_default=False,
    )


def run(  # noqa: PLR0917 (typer maps parameters to CLI options)
    selectors: Annotated[
        list[str] | None,
        selectors_argument("What to run (default: every run); upstream jobs are included."),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    scheduler: SchedulerOption = None,
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
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Rerun the selected jobs even when their outputs are intact (their upstream"
            " jobs only when needed); new outputs replace the old ones only on success.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Show per stage what would run and, for each job, why; run nothing."
        ),
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
    artifact_store: Annotated[
        ArtifactStoreChoice | None,
        typer.Option(
            "--artifact-store",
            help="shared (jobs read the lab where it is) or node-local (a copy unpacked once"
            " per node under the target's node_local_path): overrides the target's.",
            case_sensitive=False,
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
    build: Annotated[
        bool,
        typer.Option(
            "--build",
            help="First build the experiment the --lab link belongs to (repx build), then run.",
        ),
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Stream one JSON event per line on stdout.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug messages.")] = False,
) -> int:
    """Run the selected runs of a lab (skipping completed jobs) and summarise."""
    from repx.config import ArtifactStore, RuntimeKind, SchedulerKind  # noqa: PLC0415 (keep --help fast)
    from repx.run.reporter import JsonReporter, PlainReporter, Reporter, RichReporter  # noqa: PLC0415
    from repx.services.location import Location  # noqa: PLC0415
    from repx.services.run import RunOptions, run_lab  # noqa: PLC0415

    output.setup_logging(verbose)
    if build:
        _build_first(lab)
    options = RunOptions(
        where=Location(
            lab=lab,
            base=base,
            target=target,
            scheduler=SchedulerKind(scheduler.value) if scheduler is not None else None,
        ),
        selectors=tuple(selectors or ()),
        jobs=jobs,
        runtime=RuntimeKind(runtime.value) if runtime is not None else None,
        continue_on_failure=continue_on_failure,
        force=force,
        dry_run=dry_run,
        wait=wait,
        resources=resources,
        mount_host_paths=mount_host_paths,
        mount_paths=tuple(mount_path or ()),
        artifact_store=ArtifactStore(artifact_store.value) if artifact_store is not None else None,
    )
    reporter: Reporter
    if json_output:
        reporter = JsonReporter()
    elif output.stderr_is_terminal():
        reporter = RichReporter(output.err_console())
    else:
        reporter = PlainReporter()
    from repx.services.remote import remote_target, run_remote  # noqa: PLC0415 (SSH targets)

    remote = remote_target(options.where)
    summary = (
        run_lab(options, reporter) if remote is None else run_remote(remote, options, reporter)
    )
    if summary.submitted_only and not json_output:
        # the result of a submission: the SLURM job ids, one per line (for scripts)
        for slurm_id in summary.slurm_ids:
            typer.echo(slurm_id)
        if summary.submission is not None:
            typer.echo(summary.submission)
    return summary.exit_code


def _build_first(lab: Path) -> None:
    """``repx build`` of the flake beside the ``--lab`` link, replacing the link."""
    from repx.cli.build import build_with_progress  # noqa: PLC0415
    from repx.errors import UsageError  # noqa: PLC0415
    from repx.services.build import BuildOptions  # noqa: PLC0415

    experiment = lab.absolute().parent
    if not (experiment / "flake.nix").is_file() or (lab.exists() and not lab.is_symlink()):
        raise UsageError(
            f"--build: {lab} is not the result link of an experiment (no flake.nix beside it);"
            " build it with repx build, then run"
        )
    summary = build_with_progress(BuildOptions(flake_ref=str(experiment), out_link=lab))
    output.message(f"built lab {summary.lab_id} ({summary.total_jobs} jobs)")
