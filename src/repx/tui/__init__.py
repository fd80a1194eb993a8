"""``repx tui``: the live board (textual). :func:`run_tui` is what the CLI calls."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from repx.config import RuntimeKind
from repx.errors import RepxError
from repx.services.location import Location

#: Size (columns, lines) of a ``--screenshot``.
SCREENSHOT_SIZE = (120, 36)


def run_tui(
    where: Location,
    run: str | None = None,
    *,
    interval: float = 1.0,
    runtime: RuntimeKind | None = None,
    screenshot: Path | None = None,
    size: tuple[int, int] = SCREENSHOT_SIZE,
) -> None:
    """Open the board; with ``screenshot``, render one frame headless into that SVG file."""
    try:  # textual only when used
        tui_app: ModuleType = importlib.import_module("repx.tui.app")
    except ModuleNotFoundError as exc:
        if "textual" not in (exc.name or str(exc)):
            raise
        raise RepxError(
            "repx tui needs the Python package textual, which this installation lacks"
            " (pip install 'textual>=8.2,<9'); `repx status --watch` works without it"
        ) from None
    from repx.tui.board import Board  # noqa: PLC0415

    board = Board(where, run, runtime)
    app = tui_app.RepxTui(board, interval=interval, poll=screenshot is None)
    try:
        if screenshot is not None:
            tui_app.screenshot(app, screenshot, size)
        else:
            app.run()
    finally:
        board.stop_reruns()
        app.restore_logging()
