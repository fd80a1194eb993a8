"""``repx report``: one self-contained HTML page of a lab, its states and its results."""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.inspecting import BaseOption, LabOption, TargetOption, open_view


def report(
    output_file: Annotated[
        Path, typer.Option("--output", "-o", help="Where to write the HTML page.")
    ] = Path("report.html"),
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Write an HTML report: topology by state, parameters, timings, failures, results.

    Self-contained (inline SVG, CSV tables and images), so it can be mailed or archived.
    """
    from repx.errors import UsageError  # noqa: PLC0415 (keep start-up light)
    from repx.inspect.report import render_report  # noqa: PLC0415

    if output_file.suffix.lower() not in {".html", ".htm"}:
        raise UsageError(f"--output {output_file}: a report is HTML; name it *.html")
    page = render_report(open_view(lab, base, target)).encode()
    # Written beside the target, then renamed: a reader never sees half a report.
    tmp = output_file.with_name(f".{output_file.name}.{secrets.token_hex(4)}")
    try:
        tmp.write_bytes(page)
        tmp.replace(output_file)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {output_file}: {exc.strerror}") from None
    output.message(f"wrote {os.path.abspath(output_file)} ({output.human_size(len(page))})")  # noqa: PTH100
