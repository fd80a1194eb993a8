"""``repx debug-run JOB [-c CMD]``: a shell, or one command, in a job's exact environment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import complete, output
from repx.cli.run import BaseOption, LabOption, RuntimeChoice, TargetOption


def debug_run(  # noqa: PLR0917 (typer maps parameters to CLI options)
    job: Annotated[
        str,
        typer.Argument(
            metavar="JOB",
            help="A job id, a unique prefix, or a short id.",
            autocompletion=complete.complete_jobs,
        ),
    ],
    command: Annotated[
        str | None,
        typer.Option(
            "--command",
            "-c",
            metavar="CMD",
            help="Run CMD with the job's sh -c (default: an interactive shell).",
            show_default=False,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    runtime: Annotated[
        RuntimeChoice | None,
        typer.Option(
            "--runtime",
            help="bwrap (the default), podman, docker or native, as for repx run.",
            case_sensitive=False,
        ),
    ] = None,
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the scratch directory (its path is printed).")
    ] = False,
) -> int:
    """A shell in the job's sandbox: its PATH, inputs (read-only), parameters and a scratch
    $out; $1 $2 $3 (and $out $inputs $params) as the stage script gets them. Nothing is
    committed: the job's outputs in the store are never touched."""
    from repx.config import RuntimeKind  # noqa: PLC0415 (keep `repx --help` fast)
    from repx.services.debug import DebugOptions, debug_session, run_session  # noqa: PLC0415
    from repx.services.location import Location  # noqa: PLC0415

    output.setup_logging(verbose=False)
    options = DebugOptions(
        where=Location(lab=lab, base=base, target=target),
        job=job,
        command=command,
        runtime=RuntimeKind(runtime.value) if runtime is not None else None,
        keep=keep,
    )
    with debug_session(options) as session:
        if session.warning:
            output.message(session.warning)
        if command is None:
            fate = "kept" if keep else "discarded on exit"
            output.message(
                f"repx debug-run: {session.job} ({session.runtime.kind.value});"
                f" scratch out: {session.env['out']} ({fate}); exit to leave"
            )
        code = run_session(session)
        if keep:
            output.message(f"scratch attempt kept: {session.work}")
    return code
