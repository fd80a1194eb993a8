"""``repx cancel``: cancel the SLURM jobs repx submitted from an output store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.run import BaseOption, LabOption, TargetOption


def cancel(
    selectors: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[RUN | @GROUP | JOB_ID]...",
            help="What to cancel (default: everything submitted from the base directory).",
            show_default=False,
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Cancel the queued or running SLURM jobs of the selected runs or jobs.

    Running jobs are stopped and recorded as interrupted; the next `repx run` submits
    again exactly what is missing.
    """
    from repx.errors import UsageError  # noqa: PLC0415
    from repx.services.location import Location  # noqa: PLC0415
    from repx.services.remote import remote_cancel, remote_target  # noqa: PLC0415 (SSH)
    from repx.services.slurm import cancel_jobs  # noqa: PLC0415

    if (remote := remote_target(Location(lab=lab, base=base, target=target))) is not None:
        if selectors:
            raise UsageError(
                f"repx cancel --target {remote.name} stops every run there; selecting runs"
                " or jobs is not supported on SSH targets yet"
            )
        stopped = remote_cancel(remote)
        output.message(f"stopped {len(stopped)} run(s) on target '{remote.name}'")
        return
    report = cancel_jobs(Location(lab=lab, base=base, target=target), tuple(selectors or ()))
    if not report.cancelled:
        output.message(
            f"nothing to cancel: no job submitted from {report.base} is queued or running"
        )
        return
    for slurm_id in report.slurm_ids:
        typer.echo(slurm_id)
    output.message(
        f"cancelled {len(report.cancelled)} SLURM job(s) holding {report.job_count} repx job(s)"
    )
