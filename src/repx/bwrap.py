"""bubblewrap: the argv that sandboxes a job, and a check that bubblewrap works here.

The sandbox: the host's root file system read-only, a fresh ``/dev``, ``/proc`` and
``/tmp``, no network (every namespace unshared), killed with its parent, and writable only
where the caller says. When the host's ``/nix/store`` lacks what the job needs, a lab's
``store/`` copy is bound at ``/nix/store`` instead (hosts without Nix).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from repx import process
from repx.errors import ProgramNotFoundError

NIX_STORE: Final = "/nix/store"
#: Top-level directories the sandbox always replaces (or that must not be shared).
_REPLACED: Final = frozenset({"proc", "dev", "tmp"})


def find(host_tools_bin: Path | None = None) -> Path | None:
    """The bwrap to use: the host's (on PATH), else the lab's host-tools copy, else None."""
    found = process.which("bwrap")
    if found is not None:
        return found
    if host_tools_bin is not None:
        candidate = host_tools_bin / "bwrap"
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def sandbox_options(
    *,
    readonly: Sequence[Path] = (),
    writable: Sequence[Path] = (),
    store: Path | None = None,
    image: Path | None = None,
    chdir: Path | None = None,
) -> list[str]:
    """bwrap options (everything but the program and the command).

    ``readonly`` and ``writable`` paths are bound at the same place, in that order, after
    ``/tmp`` is replaced (so paths under ``/tmp`` stay visible). ``store``: a directory to
    bind at ``/nix/store`` in place of the host's ``/nix``. ``image``: a lab image's root
    file system that replaces the host's root (containerMode "unified").
    """
    args: list[str] = []
    if image is not None:
        args += _root_entries(image, skip={"nix", *_REPLACED})
        args += ["--ro-bind", os.fspath(store) if store is not None else NIX_STORE, NIX_STORE]
    elif store is None:
        args += ["--ro-bind", "/", "/"]
    else:
        args += _root_entries(Path("/"), skip={"nix", *_REPLACED})
        args += ["--ro-bind", os.fspath(store), NIX_STORE]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for path in readonly:
        # Every bind costs time in the kernel (serialised between sandboxes): bind only
        # what the replaced directories hide (everything, under an image).
        if image is not None or _hidden(os.fspath(path), store is not None):
            args += ["--ro-bind", os.fspath(path), os.fspath(path)]
    for path in writable:
        args += ["--bind", os.fspath(path), os.fspath(path)]
    args += ["--unshare-all", "--die-with-parent"]
    if chdir is not None:
        args += ["--chdir", os.fspath(chdir)]
    return args


def command(bwrap: Path, options: Sequence[str], argv: Sequence[str]) -> list[str]:
    """The full argv that runs ``argv`` in the sandbox described by ``options``."""
    return [os.fspath(bwrap), *options, "--", *argv]


def probe(
    bwrap: Path, options: Sequence[str], argv: Sequence[str], env: Mapping[str, str]
) -> str | None:
    """Run ``argv`` (a trivial program) in the sandbox; return None if it works, else why not."""
    try:
        result = process.run(command(bwrap, options, argv), check=False, env=env)
    except ProgramNotFoundError:
        return f"{bwrap} cannot be started"
    except OSError as exc:
        return f"{bwrap} cannot be started: {exc.strerror}"
    if result.returncode == 0:
        return None
    text = (result.stderr or result.stdout).strip().splitlines()
    return text[-1] if text else f"exit status {result.returncode}"


def _hidden(path: str, without_nix: bool) -> bool:
    """True when ``path`` is not visible through the sandbox's view of the host root."""
    top = path.split("/", 2)[1] if path.startswith("/") else ""
    return top in _REPLACED or (without_nix and top == "nix")


def _root_entries(root: Path, skip: set[str]) -> list[str]:
    """Bind every top-level entry of ``root`` but ``skip`` at ``/<name>`` (the sandbox
    root itself is a tmpfs, so other mount points can still be created in it)."""
    args: list[str] = []
    with os.scandir(root) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name in skip:
                continue
            if entry.is_symlink():
                args += ["--symlink", os.readlink(entry.path), f"/{name}"]  # noqa: PTH115
            elif entry.is_dir() or entry.is_file():
                args += ["--ro-bind", entry.path, f"/{name}"]
    return args
