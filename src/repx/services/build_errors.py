"""Build errors in the user's terms: store paths of the experiment's source mapped back to
its files, and a file git does not track named as such.

A flake in a git repository is copied to ``/nix/store/<hash>-source`` with the files git
knows only; a stage file created but never ``git add``-ed then fails evaluation with
``getting status of '/nix/store/…-source/nix/stages/plot.nix': No such file or directory``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from repx import git

#: ``/nix/store/<32 base-32 chars>-source/<relative path>``
_SOURCE_PATH: Final = re.compile(r"/nix/store/[0-9a-df-np-sv-z]{32}-source/([^'\"\s:]+)")
_MISSING: Final = re.compile(
    r"(?:getting status of|path) '/nix/store/[0-9a-df-np-sv-z]{32}-source/([^']+)'"
    r"(?::| does not exist)"
)


def experiment_dir(flake_ref: str) -> Path | None:
    """The experiment checkout a flake reference names, when it is a local directory."""
    ref = flake_ref.removeprefix("path:").removeprefix("git+file://")
    path = Path(ref.split("?", 1)[0].split("#", 1)[0] or ".")
    return path.resolve() if path.is_dir() else None


def untracked_file(text: str, experiment: Path) -> str | None:
    """One line when nix missed a file of ``experiment`` that exists but git does not know."""
    found = _MISSING.search(text)
    if found is None:
        return None
    rel = found.group(1)
    local = experiment / rel
    if not local.exists():
        return f"{rel} does not exist in {experiment} (a file the experiment refers to)"
    if git.available() and not git.is_tracked(experiment, local):
        return (
            f"{rel} is not tracked by git: git add it"
            " (a flake in a git repository sees only the files git knows)"
        )
    return None


def map_source_paths(text: str, experiment: Path) -> str:
    """Replace the experiment's source store paths in ``text`` by its own files' paths."""

    def local(match: re.Match[str]) -> str:
        rel = match.group(1)
        return rel if (experiment / rel).exists() else match.group(0)

    return _SOURCE_PATH.sub(local, text)
