"""Option parsers shared by several commands."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import typer


def parse_base(value: str) -> Path:
    """``--base``: a directory; an empty value is refused (``Path("")`` would be ``.``)."""
    from repx.config import EMPTY_BASE  # noqa: PLC0415 (keep `repx --help` fast)

    if not value.strip():
        raise typer.BadParameter(EMPTY_BASE)
    return Path(value)


def option_defaults(command: object, values: Mapping[str, object]) -> dict[str, Any]:
    """A click ``default_map`` giving ``values`` to every sub-command option of that name
    (``command``: a click group; typer does not export click's types). Options given before
    a command become the defaults of its own options of the same name."""
    result: dict[str, Any] = {}
    for name, sub in getattr(command, "commands", {}).items():
        # paths as text: the command's option parses them again (``--base``'s checks)
        entry: dict[str, Any] = {
            p.name: str(values[p.name]) if isinstance(values[p.name], Path) else values[p.name]
            for p in getattr(sub, "params", ())
            if p.name in values
        }
        entry.update(option_defaults(sub, values))
        if entry:
            result[name] = entry
    return result
