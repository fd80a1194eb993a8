"""The labs a ``result`` link pointed at, build after build (what ``repx diff`` compares).

``$XDG_STATE_HOME/repx/builds/<key>.json`` per out-link (key: a hash of its absolute path),
kept outside the experiment's repository so that it never shows in ``git status`` nor in
the flake's source. ``nix build`` replaces the link; this remembers what it replaced.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from repx.dirs import state_dir

HISTORY_FORMAT: Final = "repx-build-history/1"
#: Builds remembered per out-link.
KEEP: Final = 20

logger = logging.getLogger(__name__)


class BuildEntry(BaseModel):
    """One successful build: the lab the link then pointed at."""

    model_config = ConfigDict(frozen=True)

    lab: str
    lab_id: str
    time: float


class BuildHistory(BaseModel):
    """The builds of one out-link, oldest first."""

    model_config = ConfigDict(frozen=True)

    format: str = HISTORY_FORMAT
    out_link: str
    builds: tuple[BuildEntry, ...] = ()


def history_file(out_link: Path) -> Path:
    """Where the history of ``out_link`` is kept."""
    key = hashlib.sha256(os.path.abspath(out_link).encode()).hexdigest()[:24]  # noqa: PTH100
    return state_dir() / "builds" / f"{key}.json"


def read_history(out_link: Path) -> BuildHistory:
    """The recorded builds of ``out_link`` (none when nothing was recorded)."""
    path = history_file(out_link)
    try:
        return BuildHistory.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return BuildHistory(out_link=os.path.abspath(out_link))  # noqa: PTH100


def record_build(out_link: Path, lab: Path, lab_id: str) -> None:
    """Append a build (a repeated build of the same lab is not a new entry)."""
    history = read_history(out_link)
    if history.builds and history.builds[-1].lab_id == lab_id:
        return
    entry = BuildEntry(lab=os.fspath(lab), lab_id=lab_id, time=time.time())
    updated = history.model_copy(update={"builds": (*history.builds, entry)[-KEEP:]})
    path = history_file(out_link)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        tmp.write_text(updated.model_dump_json(indent=1) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:  # history is a convenience: never fail a build for it
        logger.warning("cannot record the build in %s: %s", path, exc.strerror)


def previous_build(out_link: Path, current_lab_id: str) -> BuildEntry | None:
    """The newest recorded build of ``out_link`` before the lab ``current_lab_id``."""
    builds = read_history(out_link).builds
    ids = [b.lab_id for b in builds]
    end = (
        len(builds) - 1 - ids[::-1].index(current_lab_id) if current_lab_id in ids else len(builds)
    )
    for entry in reversed(builds[:end]):
        if entry.lab_id != current_lab_id:
            return entry
    return None
