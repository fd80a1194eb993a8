"""``repx viz``: draw a lab's topology with graphviz."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output
from repx.cli.inspecting import BaseOption, LabOption, TargetOption, open_view, write_bytes
from repx.errors import UsageError


class FormatChoice(StrEnum):
    """The ``--format`` values (mirrors :class:`repx.inspect.viz.VizFormat`)."""

    svg = "svg"
    png = "png"
    pdf = "pdf"
    dot = "dot"


class LevelChoice(StrEnum):
    """The ``--level`` values (mirrors :class:`repx.inspect.graph.Level`)."""

    runs = "runs"
    stages = "stages"
    jobs = "jobs"


_TEXT_FORMATS = (FormatChoice.svg, FormatChoice.dot)


def viz(  # noqa: PLR0917 (typer maps parameters to CLI options)
    fmt: Annotated[
        FormatChoice | None,
        typer.Option(
            "--format",
            "-f",
            help="Output format (default: from the --output suffix, else svg).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write here (default: stdout).", show_default=False),
    ] = None,
    level: Annotated[
        LevelChoice,
        typer.Option("--level", help="Draw runs, stages (in run clusters) or every job."),
    ] = LevelChoice.stages,
    show_params: Annotated[
        bool, typer.Option("--show-params", help="Show parameter values in the nodes.")
    ] = False,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Draw the lab: runs as clusters, stages as nodes, edges labelled with the outputs.

    Nodes are coloured by job state once the lab has run in the output store.
    """
    from repx.inspect.graph import Level  # noqa: PLC0415 (keep `repx --help` fast)
    from repx.inspect.viz import VizFormat, VizOptions, render  # noqa: PLC0415

    chosen = fmt or _format_from_suffix(output_file) or FormatChoice.svg
    if output_file is None and chosen not in _TEXT_FORMATS and sys.stdout.isatty():
        raise UsageError(f"{chosen.value} is binary: give --output FILE or redirect stdout")
    view = open_view(lab, base, target)
    if level is LevelChoice.jobs and len(view.lab.jobs) > 2000 and chosen is not FormatChoice.dot:
        output.message(
            f"laying out {len(view.lab.jobs)} jobs can take graphviz a long time;"
            " --level stages draws the same topology"
        )
    data = render(
        view, VizOptions(level=Level(level.value), show_params=show_params), VizFormat(chosen.value)
    )
    if output_file is None:
        write_bytes(data)
        return
    try:
        output_file.write_bytes(data)
    except OSError as exc:
        raise UsageError(f"cannot write {output_file}: {exc.strerror}") from None
    output.message(f"wrote {output_file} ({chosen.value}, {level.value})")


def _format_from_suffix(path: Path | None) -> FormatChoice | None:
    if path is None:
        return None
    suffix = path.suffix.lower().removeprefix(".")
    if not suffix:
        return None  # no suffix: the default format
    if suffix == "gv":
        return FormatChoice.dot
    try:
        return FormatChoice(suffix)
    except ValueError:
        accepted = ", ".join(f".{f.value}" for f in FormatChoice) + ", .gv"
        raise UsageError(
            f"unknown output suffix '{path.suffix}' of {path}: use {accepted} (or give --format)"
        ) from None
