"""``repx log``: print (or follow) a job's output."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Final

import typer

from repx.cli import complete
from repx.cli.run import BaseOption, LabOption, TargetOption

#: Seconds between looks at a followed log.
_FOLLOW_TICK: Final = 0.2


def log(  # noqa: PLR0917 (typer maps parameters to CLI options)
    job: Annotated[
        str,
        typer.Argument(
            metavar="JOB",
            help="A job id, a unique prefix, or a short id.",
            autocompletion=complete.complete_jobs,
        ),
    ],
    stderr: Annotated[
        bool, typer.Option("--stderr", help="Show stderr instead of stdout.")
    ] = False,
    lines: Annotated[
        int | None, typer.Option("--lines", "-n", min=0, help="Only the last N lines.")
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing while the job runs.")
    ] = False,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Print the stdout (or stderr) log of a job's running or last attempt."""
    from repx.services.location import Location  # noqa: PLC0415
    from repx.services.run import find_log, job_is_running  # noqa: PLC0415

    where = Location(lab=lab, base=base, target=target)
    from repx.services.remote import print_remote_log, remote_target  # noqa: PLC0415 (SSH)

    if (remote := remote_target(where)) is not None:
        print_remote_log(remote, lab, job, stderr=stderr, lines=lines, follow=follow)
        return
    found = find_log(where, job, stderr=stderr)
    out = sys.stdout
    with found.path.open("r", encoding="utf-8", errors="replace") as f:
        text = f.read()
        if lines is not None:
            kept = text.splitlines(keepends=True)[-lines:] if lines else []
            text = "".join(kept)
        out.write(text)
        out.flush()
        if not (follow and found.running):
            return
        # The attempt directory is renamed when the job ends; the open file stays valid.
        while True:
            chunk = f.read()
            if chunk:
                out.write(chunk)
                out.flush()
                continue
            if not job_is_running(where, found.job):
                out.write(f.read())
                out.flush()
                return
            time.sleep(_FOLLOW_TICK)
