"""Thin typed wrappers around the git verbs repx uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from repx import process
from repx.errors import GitError, ProcessError


def available() -> bool:
    """Tell whether git is installed."""
    return process.which("git") is not None


def find_repo_root(path: Path) -> Path | None:
    """Return the top of the git work tree containing ``path``, or None outside a repo."""
    start = path if path.is_dir() else path.parent
    result = process.run(["git", "-C", start, "rev-parse", "--show-toplevel"], check=False)
    if result.returncode != 0:
        return None
    return Path(result.stdout.strip())


def init(path: Path) -> None:
    """Create an empty git repository in ``path``."""
    _git(["init", "--quiet", path])


def add_all(path: Path) -> None:
    """Stage every change under ``path`` (and nothing outside it)."""
    _git(["-C", path, "add", "--all", "--", "."])


def add(repo_dir: Path, paths: Sequence[Path]) -> None:
    """Stage exactly ``paths`` (relative to ``repo_dir`` or absolute)."""
    if paths:
        _git(["-C", repo_dir, "add", "--", *paths])


def is_tracked(repo_dir: Path, path: Path) -> bool:
    """Tell whether ``path`` is tracked or staged in the repository at ``repo_dir``."""
    result = process.run(
        ["git", "-C", repo_dir, "ls-files", "--error-unmatch", "--", path], check=False
    )
    return result.returncode == 0


def source_files(repo_dir: Path) -> list[Path] | None:
    """Files a flake in ``repo_dir`` sees: tracked or untracked-but-not-ignored (None: no repo)."""
    result = process.run(
        ["git", "-C", repo_dir, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        check=False,
    )
    if result.returncode != 0:
        return None
    return [repo_dir / name for name in result.stdout.split("\0") if name]


def _git(args: Sequence[str | Path]) -> None:
    try:
        process.run(["git", *args])
    except ProcessError as exc:
        raise GitError(f"git {args[0]} failed", exc.stderr.strip()) from None
