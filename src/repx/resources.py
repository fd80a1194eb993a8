"""Locate the repx flake (the Nix library and the templates) that ships with this package."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Final

from repx.errors import RepxError

#: Environment variable that points repx at another copy of its flake directory.
FLAKE_DIR_ENV: Final = "REPX_FLAKE_DIR"
#: Name of the flake copy inside a wheel install (see pyproject's force-include).
_WHEEL_FLAKE: Final = "_flake"


class FlakeNotFoundError(RepxError):
    """The repx flake directory (flake.nix + nix/lib) cannot be found."""

    exit_code = 2


def is_flake_dir(path: Path) -> bool:
    """Tell whether ``path`` looks like the repx flake: a flake.nix next to nix/lib."""
    return (path / "flake.nix").is_file() and (path / "nix" / "lib").is_dir()


@cache
def flake_dir() -> Path:
    """Return the repx flake directory.

    Order: ``$REPX_FLAKE_DIR``; the checkout this module runs from (editable install:
    the first parent with flake.nix and nix/lib); the copy inside a wheel install.
    """
    override = os.environ.get(FLAKE_DIR_ENV)
    if override:
        path = Path(override).resolve()
        if not is_flake_dir(path):
            raise FlakeNotFoundError(
                f"${FLAKE_DIR_ENV}={override} is not a repx flake (needs flake.nix and nix/lib)"
            )
        return path
    here = Path(__file__).resolve().parent
    wheel_copy = here / _WHEEL_FLAKE
    if is_flake_dir(wheel_copy):
        return wheel_copy
    for parent in here.parents:
        if is_flake_dir(parent):
            return parent
    raise FlakeNotFoundError(
        f"cannot find the repx flake next to {here} (set ${FLAKE_DIR_ENV} to the repx checkout)"
    )


def flake_ref(path: Path | None = None) -> str:
    """Return a nix flake reference for the repx flake directory.

    A git checkout is referenced as ``git+file:`` so that nix copies only the tracked
    files: ``path:`` would copy everything, including a virtualenv of hundreds of MB.
    Nix then sees only tracked or staged files of the checkout.
    """
    directory = flake_dir() if path is None else path
    if (directory / ".git").exists():
        return f"git+file://{directory}"
    return f"path:{directory}"


def templates_dir(path: Path | None = None) -> Path:
    """Return the directory that holds one sub-directory per experiment template."""
    return (flake_dir() if path is None else path) / "templates"
