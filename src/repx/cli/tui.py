"""``repx tui``: the live board of runs, stages and jobs (the app: :mod:`repx.tui`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli.run import BaseOption, LabOption, OnlyRunArgument, RuntimeChoice, TargetOption


def tui(  # noqa: PLR0917 (typer maps parameters to CLI options)
    run: OnlyRunArgument = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.1, metavar="SECONDS", help="Seconds between looks."),
    ] = 1.0,
    runtime: Annotated[
        RuntimeChoice | None,
        typer.Option(
            "--runtime",
            help="Runtime of reruns (`r`): bwrap or native (default: the target's).",
            case_sensitive=False,
        ),
    ] = None,
    screenshot: Annotated[
        Path | None,
        typer.Option(
            "--screenshot",
            metavar="FILE.svg",
            help="Render one frame without a terminal into this SVG file, then exit.",
        ),
    ] = None,
) -> None:
    """Watch and steer the lab's jobs: runs → stages → jobs with live states, the selected
    job's parameters and logs; keys cancel (c: job, C: run) and rerun (r); ? for help.

    Examples: `repx tui`, `repx tui simulation --base runs/`,
    `repx tui --screenshot docs/tui.svg`.
    """
    from repx.config import RuntimeKind  # noqa: PLC0415
    from repx.errors import UsageError  # noqa: PLC0415
    from repx.services.location import Location  # noqa: PLC0415
    from repx.tui import run_tui  # noqa: PLC0415

    if screenshot is not None and screenshot.suffix.lower() != ".svg":
        raise UsageError(f"--screenshot writes SVG: name the file *.svg (not '{screenshot}')")
    run_tui(
        Location(lab=lab, base=base, target=target),
        run,
        interval=interval,
        runtime=RuntimeKind(runtime.value) if runtime is not None else None,
        screenshot=screenshot,
    )
