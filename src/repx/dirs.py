"""Per-user directories of repx (XDG base directories)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/repx`` (default ``~/.cache/repx``); not created here."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "repx"


def nix_store_dir() -> Path:
    """Return the Nix store directory (``$NIX_STORE_DIR`` or ``/nix/store``)."""
    return Path(os.environ.get("NIX_STORE_DIR") or "/nix/store")


def state_dir() -> Path:
    """Return ``$XDG_STATE_HOME/repx`` (default ``~/.local/state/repx``); not created here."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "repx"
