"""``repx cancel``: cancel the SLURM jobs and local runs of an output store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.run import BaseOption, LabOption, TargetOption, selectors_argument


def cancel(
    selectors: Annotated[
        list[str] | None,
        selectors_argument(
            "What to cancel (default: everything submitted from the base directory)."
        ),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Cancel the selected runs or jobs: their queued or running SLURM jobs, and the
    `repx run` of this host running them.

    Running jobs are stopped and recorded as interrupted (a local `repx run` stops as on
    Ctrl-C); the next `repx run` does exactly what is missing.
    """
    from repx.config import resolve_base  # noqa: PLC0415
    from repx.services.cancel import stop_local_runs  # noqa: PLC0415
    from repx.services.location import Location, target_of  # noqa: PLC0415
    from repx.services.remote import remote_cancel, remote_target  # noqa: PLC0415 (SSH)
    from repx.services.slurm import cancel_submitted, selected_jobs  # noqa: PLC0415

    where = Location(lab=lab, base=base, target=target)
    if (remote := remote_target(where)) is not None:
        stopped = remote_cancel(remote, selected_jobs(where, tuple(selectors or ())))
        if not stopped and selectors:
            output.message(f"nothing to cancel: no run on target '{remote.name}' runs them")
            return
        output.message(f"stopped {len(stopped)} run(s) on target '{remote.name}'")
        return
    store = resolve_base(where.base, target_of(where))
    jobs = selected_jobs(where, tuple(selectors or ()))
    report = cancel_submitted(store, jobs)
    runners = stop_local_runs(store, jobs)
    if not report.cancelled and not runners:
        output.message(f"nothing to cancel: no job of {store} is queued or running")
        return
    for slurm_id in report.slurm_ids:
        typer.echo(slurm_id)
    if report.cancelled:
        output.message(
            f"cancelled {len(report.cancelled)} SLURM job(s) holding {report.job_count} repx job(s)"
        )
    if runners:
        pids = ", ".join(map(str, runners))
        output.message(f"stopped repx run (pid {pids}) as Ctrl-C does")
