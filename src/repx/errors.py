"""The repx error hierarchy; only ``repx.cli.main`` turns these into exit codes."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Final

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class RepxError(Exception):
    """Base class of every error repx reports to the user without a traceback."""

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class UsageError(RepxError):
    """The command line or its arguments are wrong."""

    exit_code = 2


class LabError(RepxError):
    """A lab is missing, malformed, or of an unsupported format version."""

    exit_code = 2


class TemplateError(RepxError):
    """A template is unknown or cannot be copied without overwriting files."""

    exit_code = 2


class ProgramNotFoundError(RepxError):
    """An outside program repx needs (nix, git, ...) is not installed."""

    exit_code = 2

    def __init__(self, program: str) -> None:
        super().__init__(f"'{program}' was not found on PATH")
        self.program = program


class ProcessError(RepxError):
    """An outside program exited with a non-zero status."""

    exit_code = 1

    def __init__(self, args: Sequence[str], returncode: int, stdout: str, stderr: str) -> None:
        super().__init__(f"'{' '.join(args[:3])}' exited with status {returncode}", _tail(stderr))
        self.argv = tuple(args)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


class NixError(RepxError):
    """A nix command failed; ``details`` holds nix's trimmed error output."""

    exit_code = 1

    @property
    def stderr(self) -> str:
        """The trimmed error output of nix."""
        return self.details


class GitError(RepxError):
    """A git command failed."""

    exit_code = 1


class BuildValidationError(RepxError):
    """nix built something that is not a valid repx lab."""

    exit_code = 1


class CacheError(RepxError):
    """The repx cache directory cannot be used."""

    exit_code = 1


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def one_line(text: str) -> str:
    """Escape control characters (newlines, tabs, …) so that ``text`` prints on one line.

    Error messages quote names and values read from files; a damaged file must not be able
    to break the one-line ``error: …`` form.
    """
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def describe_path(path: Path, root: Path) -> str:
    """Render ``path`` relative to ``root`` when possible (for error messages)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
