"""``repx pull``: fetch the outputs of jobs that ran on an SSH target into the local store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.run import BaseOption, LabOption, TargetOption, selectors_argument


def pull(
    selectors: Annotated[
        list[str] | None,
        selectors_argument("What to fetch (default: every run); upstream jobs are included."),
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Fetch the succeeded jobs' outputs from an SSH target into the local output store."""
    from repx.errors import UsageError  # noqa: PLC0415
    from repx.services.location import Location, named_target  # noqa: PLC0415
    from repx.services.remote import local_base_of, remote_of  # noqa: PLC0415
    from repx.services.remote import pull as pull_outputs  # noqa: PLC0415

    name, chosen = named_target(Location(lab=lab, base=base, target=target))
    remote = remote_of(name, chosen)
    if remote is None:
        raise UsageError(
            f"repx pull needs an SSH target; {f'target {name!r}' if name else 'the default target'}"
            " runs on this machine",
            "pick one with --target (a [targets.NAME] with address = ...)",
        )
    pulled = pull_outputs(remote, lab, tuple(selectors or ()), local_base_of(base))
    typer.echo(str(pulled.base))
    output.message(
        f"pulled {len(pulled.jobs)} job(s) from target '{remote.name}' into {pulled.base}"
        f" ({pulled.sent.received} bytes received); {pulled.already} already here"
    )
