"""Shared pieces of the inspection commands (list, show, trace-params, viz, verify).

Options (``--lab``, ``--base``, ``--target``, ``--json``), opening the lab, and output:
tables and field lists, rich on a terminal and plain otherwise. A rich table takes ~0.2 ms
a row to lay out (2 s for 10,000 jobs), so long tables on a terminal are printed as aligned
text, and output to a pipe or file is tab-separated (one header line, then one line per row:
``cut -f`` and ``awk -F'\\t'`` friendly).
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal

import typer

from repx.cli import complete, output
from repx.cli.options import parse_base

if TYPE_CHECKING:
    from pydantic import BaseModel

    from repx.inspect.view import LabView

LabOption = Annotated[
    Path,
    typer.Option("--lab", "-l", help="The lab: a `result` link or a lab directory."),
]
BaseOption = Annotated[
    Path | None,
    typer.Option(
        "--base",
        help="Output store to read job states from (default: the target's base, else ./repx-runs).",
        parser=parse_base,
    ),
]
TargetOption = Annotated[
    str | None,
    typer.Option(
        "--target",
        help="Target of config.toml whose base to read.",
        autocompletion=complete.complete_targets,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", help="Print JSON for scripts (fields: docs/inspecting.md)."),
]

#: Longest table drawn with rich on a terminal.
RICH_MAX_ROWS: Final = 400
_BOLD: Final = "\x1b[1m"
_RESET: Final = "\x1b[0m"


#: Colours of job states on a terminal (rich style names).
STATE_STYLES: Final = {
    "succeeded": "green",
    "failed": "red",
    "running": "yellow",
    "blocked": "magenta",
    "cancelled": "magenta",
    "queued": "dim",
    "waiting": "dim",
}
_ANSI: Final = {"green": "32", "red": "31", "yellow": "33", "magenta": "35", "dim": "2"}


@dataclass(frozen=True)
class Column:
    """A column of a table."""

    header: str
    justify: Literal["left", "right"] = "left"
    #: long values (paths) break across lines instead of being cut
    fold: bool = False
    #: cell value -> style (on a terminal)
    styles: Mapping[str, str] | None = None


def open_view(
    lab: Path, base: Path | None = None, target: str | None = None, *, few: bool = False
) -> LabView:
    """Open the lab and locate its output store as ``repx run`` does. ``few``: the command
    reads a few jobs (``show job``): their records are read when looked up; otherwise every
    record now (each one alone: quicker than through lookups)."""
    from repx.inspect.status import find_base  # noqa: PLC0415 (keep CLI start-up light)
    from repx.inspect.view import LabView  # noqa: PLC0415

    output.setup_logging(verbose=False)
    view = LabView.open(lab, base=find_base(base, target), lazy=few)
    # The loaded lab is ~10^5 long-lived objects (10,000 jobs): keep the cyclic GC from
    # scanning them again at each collection (measured: listing 10,000 jobs 3x faster).
    gc.freeze()
    return view


def print_model(model: BaseModel) -> None:
    """Print a model as indented JSON on stdout."""
    _write(model.model_dump_json(indent=2) + "\n")


def stdout_is_terminal() -> bool:
    """Tell whether results go to an interactive terminal."""
    return sys.stdout.isatty()


def print_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], *, title: str | None = None
) -> None:
    """Print rows under column headers on stdout, in the form that suits stdout."""
    if not stdout_is_terminal():
        _write_tsv(columns, rows)
    elif len(rows) <= RICH_MAX_ROWS:
        _print_rich(columns, rows, title)
    else:
        _write_aligned(columns, rows, title)


def print_fields(fields: Sequence[tuple[str, str]], *, title: str | None = None) -> None:
    """Print ``name  value`` lines (a value may span lines); bold names on a terminal."""
    width = max((len(name) for name, _ in fields), default=0)
    bold, reset = (_BOLD, _RESET) if _colour() else ("", "")
    lines = [f"{bold}{title}{reset}"] if title else []
    for name, value in fields:
        first, *more = value.splitlines() or [""]
        lines.append(f"{bold}{name:<{width}}{reset}  {first}")
        lines += [f"{'':<{width}}  {line}" for line in more]
    _write("\n".join(lines) + "\n")


def _print_rich(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None
) -> None:
    from rich.table import Table  # noqa: PLC0415 (keep CLI start-up light)
    from rich.text import Text  # noqa: PLC0415

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(
            column.header, justify=column.justify, overflow="fold" if column.fold else "ellipsis"
        )
    for row in rows:
        # Text, not markup: values such as "[1,2]" must print as they are
        table.add_row(
            *(
                Text(cell, style=(c.styles or {}).get(cell, ""))
                for cell, c in zip(row, columns, strict=True)
            )
        )
    output.out_console().print(table)


def _write_tsv(columns: Sequence[Column], rows: Sequence[Sequence[str]]) -> None:
    lines = ["\t".join(c.header for c in columns)]
    lines += ["\t".join(_one_line(cell) for cell in row) for row in rows]
    _write("\n".join(lines) + "\n")


def _write_aligned(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], title: str | None
) -> None:
    widths = [len(c.header) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    bold, reset = (_BOLD, _RESET) if _colour() else ("", "")

    colour = bool(bold)

    def line(cells: Sequence[str]) -> str:
        parts = []
        for cell, w, c in zip(cells, widths, columns, strict=True):
            text = cell.rjust(w) if c.justify == "right" else cell.ljust(w)
            style = (c.styles or {}).get(cell) if colour else None
            parts.append(f"\x1b[{_ANSI[style]}m{text}{_RESET}" if style in _ANSI else text)
        return "  ".join(parts).rstrip()

    lines = [f"{bold}{title}{reset}"] if title else []
    lines.append(bold + line([c.header for c in columns]) + reset)
    lines += [line([_one_line(cell) for cell in row]) for row in rows]
    _write("\n".join(lines) + "\n")


def _one_line(cell: str) -> str:
    return cell.replace("\n", " ").replace("\t", " ")


def _colour() -> bool:
    return stdout_is_terminal() and not os.environ.get("NO_COLOR")


def write_bytes(data: bytes) -> None:
    """Write binary output (a drawing) on stdout."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        _silence_stdout()


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `repx list jobs | head`: the reader has seen enough
        _silence_stdout()


def _silence_stdout() -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
