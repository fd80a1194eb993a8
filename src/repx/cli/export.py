"""``repx export``: write the lab and its closure to a ``.tar`` or ``.tar.zst`` archive."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import output
from repx.cli.inspecting import LabOption

if TYPE_CHECKING:
    from collections.abc import Callable

    from repx.services.export import ExportResult


def export(
    out: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The archive to write: lab.tar, or lab.tar.zst (needs zstd)."
        ),
    ],
    lab: LabOption = Path("result"),
) -> None:
    """Write the lab with everything it needs on a host without Nix into one archive.

    Every command taking --lab accepts the archive (unpacked once into the cache).
    """
    from repx.services.export import export_lab  # noqa: PLC0415 (keep `repx --help` fast)

    if not output.stderr_is_terminal():
        _report(export_lab(lab, out))
        return
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
    )

    columns = ("exporting", BarColumn(), DownloadColumn(), TimeRemainingColumn())
    with Progress(*columns, console=output.err_console(), transient=True) as bar:
        task = bar.add_task("export")

        def start(total: int) -> Callable[[int], None]:
            bar.update(task, total=total)
            return lambda size: bar.advance(task, size)

        result = export_lab(lab, out, start)
    _report(result)


def _report(result: ExportResult) -> None:
    size = output.human_size(result.size_bytes)
    typer.echo(str(result.path))
    output.message(
        f"wrote {result.path} ({size}, {result.file_count} files, "
        f"{output.human_seconds(result.seconds)}): lab {result.lab_id}"
    )
