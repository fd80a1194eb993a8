"""Option parsers shared by several commands."""

from __future__ import annotations

from pathlib import Path

import typer


def parse_base(value: str) -> Path:
    """``--base``: a directory; an empty value is refused (``Path("")`` would be ``.``)."""
    from repx.config import EMPTY_BASE  # noqa: PLC0415 (keep `repx --help` fast)

    if not value.strip():
        raise typer.BadParameter(EMPTY_BASE)
    return Path(value)
