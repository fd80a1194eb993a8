"""Is ``result`` older than the experiment it was built from? (``repx run`` warns.)

A failed ``repx build`` leaves ``result`` pointing at the previous lab, and a later
``repx run`` would run that one without a word. The check is cheap and conservative: only
for a ``result``-style symlink with a ``flake.nix`` beside it (an experiment checkout), it
compares the link's own modification time (``nix build`` replaces the link) with the
newest of the files the flake can see (``git ls-files``: tracked, and untracked but not
ignored). Anything it cannot read makes it say nothing rather than guess.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

from repx import git


def stale_warning(lab_link: Path) -> str | None:
    """One line when a source of the experiment changed after ``lab_link`` was built."""
    if not lab_link.is_symlink():
        return None
    experiment = Path(os.path.abspath(lab_link)).parent  # noqa: PTH100 (keep the link itself)
    if not (experiment / "flake.nix").is_file() or not git.available():
        return None
    try:
        built = lab_link.lstat().st_mtime
    except OSError:
        return None
    files = git.source_files(experiment)
    if not files:
        return None
    newest: tuple[float, Path] | None = None
    for path in files:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue  # deleted since git listed it
        if newest is None or mtime > newest[0]:
            newest = (mtime, path)
    if newest is None or newest[0] <= built:  # nanosecond mtimes: no slack needed
        return None
    when = datetime.datetime.fromtimestamp(built).strftime("%Y-%m-%d %H:%M")
    name = os.path.relpath(newest[1], experiment)
    return (
        f"{name} changed after {lab_link} was built ({when}): this run uses that older lab;"
        " rebuild first with `repx build` (or `repx run --build`)"
    )
