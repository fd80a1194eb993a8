"""bubblewrap: the argv that sandboxes a job, and a check that bubblewrap works here.

The sandbox is hermetic: its root is an empty tmpfs (made read-only once assembled) into
which only what the caller names is bound — the Nix store (the host's, or a lab's
``store/`` copy on hosts without Nix), the paths given read-only and writable, a fresh
``/dev``, ``/proc`` and ``/tmp``, and a few symlinks (``/bin/sh``). Nothing of the host's
``/usr``, ``/etc``, ``/home``, ``/run`` or ``/var`` is visible, every namespace is
unshared (no network, no abstract sockets), the process has no capabilities (even when
repx runs as root), and it is killed with its parent.

Two ways to widen that view, each explicit: ``image`` (a lab image's root file system,
part of the lab) and ``host_root`` (the host's top-level directories, read-only: the
impure ``mount_host_paths`` mode).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

from repx import process
from repx.errors import ProgramNotFoundError

NIX_STORE: Final = "/nix/store"
_STORE_PREFIX: Final = NIX_STORE + "/"
#: Top-level directories the sandbox always replaces (or that must not be shared).
_REPLACED: Final = frozenset({"proc", "dev", "tmp"})
#: Drop every capability: root outside must not be root inside (remount, chown, ptrace).
_NO_CAPABILITIES: Final = ("--cap-drop", "ALL")
#: A user namespace: the job's uid is mapped, its capabilities count only inside, and it
#: may not create nested user namespaces (where it would regain them).
_USER_NAMESPACE: Final = ("--unshare-user", "--disable-userns")


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
    host_root: bool = False,
    links: Mapping[str, str] | None = None,
    userns: bool = True,
    chdir: Path | None = None,
) -> list[str]:
    """bwrap options (everything but the program and the command).

    ``store``: a directory bound at ``/nix/store`` in place of the host's ``/nix/store``.
    ``image``: a lab image's root file system whose top-level entries form the sandbox
    root (containerMode "unified"). ``host_root``: the host's top-level entries instead
    (impure). ``links``: symlinks to create (path -> target), e.g. ``/bin/sh``.
    ``readonly`` and ``writable`` paths are bound at the same place, in that order, after
    ``/tmp`` is replaced (so paths under ``/tmp`` stay visible). ``userns``: run in a user
    namespace (False where the kernel refuses one; capabilities are dropped either way).
    """
    args: list[str] = []
    if image is not None:
        args += _root_entries(image, skip={"nix", *_REPLACED})
    elif host_root:
        args += _root_entries(Path("/"), skip={"nix", *_REPLACED})
    if store is not None:
        args += ["--ro-bind", os.fspath(store), NIX_STORE]
    else:
        # -try: a lab without store paths runs on a host without /nix too
        args += ["--ro-bind-try", NIX_STORE, NIX_STORE]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
    for link, target in (links or {}).items():
        args += ["--symlink", target, link]
    for path in readonly:
        p = os.fspath(path)
        # Every bind costs time in the kernel (~0.2 ms, serialised between sandboxes):
        # skip what is visible already.
        if not _visible(p, store is not None, host_root and image is None):
            args += ["--ro-bind", p, p]
    for path in writable:
        args += ["--bind", os.fspath(path), os.fspath(path)]
    # The root tmpfs itself read-only: a job writing to `/results.csv` by mistake fails
    # loudly instead of writing into memory that vanishes.
    args += ["--remount-ro", "/", "--unshare-all"]
    if userns:
        args += _USER_NAMESPACE
    args += [*_NO_CAPABILITIES, "--die-with-parent"]
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


def _visible(path: str, own_store: bool, host_root: bool) -> bool:
    """True when ``path`` is visible in the sandbox without a bind of its own."""
    if path.startswith(_STORE_PREFIX):
        return not own_store  # the host's store is bound whole
    if not host_root:
        return False
    top = path.split("/", 2)[1] if path.startswith("/") else ""
    return top not in _REPLACED and top != "nix"


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
