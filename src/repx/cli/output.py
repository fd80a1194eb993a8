"""Shared output helpers: results to stdout, messages to stderr, JSON, logging."""

from __future__ import annotations

import logging
import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console


@cache
def err_console() -> Console:
    """The rich console for messages and progress (stderr)."""
    from rich.console import Console  # noqa: PLC0415 (keep CLI start-up light)

    return Console(stderr=True, highlight=False)


@cache
def out_console() -> Console:
    """The rich console for results (stdout)."""
    from rich.console import Console  # noqa: PLC0415

    return Console(highlight=False)


def message(text: str) -> None:
    """Print a message for the user on stderr."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def print_json(model: BaseModel) -> None:
    """Print a model as indented JSON on stdout (the only output, for scripts)."""
    sys.stdout.write(model.model_dump_json(indent=2) + "\n")
    sys.stdout.flush()


def stderr_is_terminal() -> bool:
    """Tell whether stderr is an interactive terminal (progress display is worth it)."""
    return sys.stderr.isatty()


def setup_logging(verbose: bool) -> None:
    """Send repx's log records to stderr: debug level with ``verbose``, else warnings."""
    logger = logging.getLogger("repx")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.WARNING)


def human_size(size: int) -> str:
    """Render a byte count as ``12.3 MiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """Render a duration as ``1.2 s`` or ``3 min 04 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s"
