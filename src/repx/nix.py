"""One small typed function per nix verb repx uses (Nix ≥ 2.8, flakes)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from repx import process
from repx.errors import NixError, ProcessError
from repx.nix_log import (
    BuildStatus,
    MissingAttribute,
    NixLogParser,
    find_missing_attribute,
    trim_plain_stderr,
)

logger = logging.getLogger(__name__)

#: Enables flakes whatever the user's nix.conf says.
_BASE: Final = ("nix", "--extra-experimental-features", "nix-command flakes")


class MissingAttributeError(NixError):
    """``nix build`` failed on a missing attribute (e.g. a package the package set lacks)."""

    def __init__(self, message: str, details: str, missing: MissingAttribute) -> None:
        super().__init__(message, details)
        self.missing = missing


JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]


def build(
    flake_ref: str,
    out_link: Path | None,
    *,
    verbose: bool = False,
    on_log_line: Callable[[str], None] | None = None,
    on_status: Callable[[BuildStatus], None] | None = None,
    override_inputs: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    show_trace: bool = False,
) -> Path:
    """Build ``flake_ref`` and return its output store path.

    ``out_link`` gets the GC-root symlink (None: no link). Progress is parsed from nix's
    internal-json log: ``on_status`` receives :class:`BuildStatus` snapshots,
    ``on_log_line`` warnings and (when ``verbose``) every build log line. A failure on a
    missing attribute raises :class:`MissingAttributeError`.
    """
    args: list[str | Path] = [*_BASE, "build", flake_ref, "--json", "--log-format", "internal-json"]
    args += ["--out-link", out_link] if out_link is not None else ["--no-link"]
    args += _override_flags(override_inputs)
    if show_trace:
        args.append("--show-trace")
    parser = NixLogParser(
        on_status=on_status, on_log_line=on_log_line, verbose=verbose, full_errors=show_trace
    )
    try:
        result = process.stream(args, on_stderr_line=parser.feed, cwd=cwd)
    except ProcessError:
        message, report = f"nix build of '{flake_ref}' failed", parser.failure_report()
        missing = find_missing_attribute(parser.errors)
        if missing is not None:
            raise MissingAttributeError(message, report, missing) from None
        raise NixError(message, report) from None
    return _out_path(result.stdout, flake_ref)


def flake_new(template_ref: str, dest: Path) -> None:
    """Copy a flake template (``<flake>#<name>``) into ``dest`` (``nix flake new``)."""
    _run([*_BASE, "flake", "new", "--template", template_ref, dest], what="nix flake new")


def eval_json(
    installable: str | None = None,
    *,
    expr: str | None = None,
    apply: str | None = None,
    impure: bool = False,
    cwd: Path | None = None,
) -> JsonValue:
    """Evaluate an installable (or a Nix expression) to JSON and return it parsed."""
    if (installable is None) == (expr is None):
        raise ValueError("give exactly one of installable or expr")
    args: list[str | Path] = [*_BASE, "eval", "--json"]
    args += [installable] if installable is not None else ["--expr", expr or ""]
    if apply is not None:
        args += ["--apply", apply]
    if impure:
        args.append("--impure")
    stdout = _run(args, what="nix eval", cwd=cwd)
    try:
        value: JsonValue = json.loads(stdout)
    except ValueError as exc:
        raise NixError(f"nix eval printed invalid JSON: {exc}") from None
    return value


def flake_metadata(
    flake_ref: str, *, override_inputs: Mapping[str, str] | None = None, cwd: Path | None = None
) -> JsonValue:
    """Return ``nix flake metadata --json`` of a flake (its source path and locked inputs)."""
    args: list[str | Path] = [*_BASE, "flake", "metadata", "--json", flake_ref]
    stdout = _run([*args, *_override_flags(override_inputs)], what="nix flake metadata", cwd=cwd)
    try:
        value: JsonValue = json.loads(stdout)
    except ValueError as exc:
        raise NixError(f"nix flake metadata printed invalid JSON: {exc}") from None
    return value


def log(installable: str, *, cwd: Path | None = None) -> str:
    """Return the build log of a derivation or flake output (``nix log``)."""
    return _run([*_BASE, "log", installable], what="nix log", cwd=cwd)


def add_gc_root(link: Path, store_path: Path) -> None:
    """Make the symlink ``link`` (pointing at ``store_path``) an indirect Nix GC root."""
    _run(
        ["nix-store", "--add-root", link, "--indirect", "--realise", store_path],
        what="nix-store --add-root",
    )


def delete_paths(paths: Sequence[Path]) -> tuple[list[Path], list[Path]]:
    """Ask Nix to delete store paths; return (deleted, kept because still referenced).

    One ``nix-store --delete`` per path: Nix refuses a whole call when one path is alive
    (a ``result`` link, a profile, another path's reference), and that one is reported.
    """
    deleted: list[Path] = []
    alive: list[Path] = []
    for path in paths:
        done = process.run(["nix-store", "--delete", path], check=False)
        (deleted if done.returncode == 0 else alive).append(path)
    return deleted, alive


def _run(args: Sequence[str | Path], *, what: str, cwd: Path | None = None) -> str:
    try:
        return process.run(args, cwd=cwd).stdout
    except ProcessError as exc:
        raise NixError(f"{what} failed", trim_plain_stderr(exc.stderr)) from None


def _override_flags(overrides: Mapping[str, str] | None) -> list[str]:
    flags: list[str] = []
    for name, ref in (overrides or {}).items():
        flags += ["--override-input", name, ref]
    return flags


def _out_path(stdout: str, flake_ref: str) -> Path:
    """Extract the ``out`` path from ``nix build --json`` output."""
    try:
        built = json.loads(stdout)
        return Path(built[0]["outputs"]["out"])
    except (ValueError, KeyError, IndexError, TypeError):
        raise NixError(
            f"nix build of '{flake_ref}' printed unexpected output", stdout[:500]
        ) from None
