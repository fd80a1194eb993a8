"""Node-local lab copies (``artifact_store = "node-local"``): the lab unpacked once per node.

On clusters whose shared file system is slow, jobs read the lab from a copy on the node's
own disk. The copy is unpacked from the lab's archive (``repx export``'s format, on the
shared file system) by the first task that needs it on that node; the others wait for it
and reuse it::

    <node_local_path>/<lab id>/            the lab, unpacked by lab.archive.unpack_to
                                           (a temporary directory renamed into place)
    <node_local_path>/<lab id>.lock        flock(2): one task at a time looks or unpacks
    <node_local_path>/<lab id>.complete    CopyMarker, written after the rename

A copy counts only with its marker, its lab metadata and the files the caller is about to
run (one small read and a few ``stat`` calls, never a read of the archive). A task killed
before the rename leaves a temporary directory, removed by the next unpack on this host;
one killed between the rename and the marker leaves a copy without a marker, removed and
unpacked again; so is a copy a scratch cleaner thinned out. A complete copy is never
removed, so jobs running from it are safe.

The archive: a lab given as one (``--lab lab.tar``) is read where it is; a directory lab
is written once into the output store, ``<base>/archives/<lab id>.tar``
(:func:`stage_archive`). Jobs' paths (:class:`~repx.run.spec.JobSpec`,
:class:`~repx.run.runtime.Runtime`) that start with the lab's root are moved to the copy
(:func:`relocate_spec`, :func:`relocate_runtime`); outputs stay in the output store.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repx.errors import RepxError
from repx.lab import archive
from repx.lab.loader import LAB_METADATA, LoadedLab
from repx.run.runtime import Runtime
from repx.run.spec import JobSpec, NodeLocalLab

MARKER_FORMAT: Final = "repx-node-copy/1"
#: ``<base>/archives/``: the archives of directory labs run with node-local copies.
ARCHIVES: Final = "archives"
LOCK_SUFFIX: Final = ".lock"
MARKER_SUFFIX: Final = ".complete"


class NodeLocalError(RepxError):
    """The node-local copy cannot be made (one line)."""


class CopyMarker(BaseModel):
    """``<lab id>.complete``: the copy beside it is whole."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    format: Literal["repx-node-copy/1"] = MARKER_FORMAT
    lab_id: str
    archive: str
    host: str
    pid: int
    unpacked: float = Field(description="seconds since the epoch")


@dataclass(frozen=True)
class NodeCopy:
    """The node-local copy, and whether this call unpacked it."""

    path: Path
    unpacked: bool


def ensure_copy(
    archive_path: Path, root: Path, lab_id: str, expect: Sequence[str] = ()
) -> NodeCopy:
    """The complete copy of the lab ``lab_id`` under ``root``, unpacked from ``archive_path``
    now unless a complete one is there (``expect``: paths relative to the lab that must be
    in it, e.g. the executables about to run). Concurrent callers (on one node) wait on the
    lock; exactly one of them unpacks."""
    if not lab_id or "/" in lab_id or lab_id.startswith("."):
        raise NodeLocalError(f"'{lab_id}' is not a lab id")
    final = root / lab_id
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NodeLocalError(f"node_local_path {root}: cannot create it: {exc.strerror}") from None
    marker = root / f"{lab_id}{MARKER_SUFFIX}"
    with _locked(root / f"{lab_id}{LOCK_SUFFIX}"):
        if _complete(marker, final, lab_id, expect):
            return NodeCopy(final, unpacked=False)
        try:
            _unpack(archive_path, final, marker, lab_id, expect)
        except OSError as exc:
            raise NodeLocalError(f"{final}: {exc.strerror or exc}") from None
    return NodeCopy(final, unpacked=True)


def _unpack(
    archive_path: Path, final: Path, marker: Path, lab_id: str, expect: Sequence[str]
) -> None:
    """Replace what is at ``final`` (incomplete) with the archive's lab, then mark it."""
    marker.unlink(missing_ok=True)
    _remove_partial(final)
    if not os.access(archive_path, os.R_OK):
        raise NodeLocalError(
            f"the lab archive {archive_path} is not readable on this node: put it on a"
            " file system the nodes share"
        )
    archive.unpack_to(archive_path, final)
    absent = [rel for rel in expect if not os.path.lexists(final / rel)]
    if absent:  # marked complete, every task would unpack it again
        raise NodeLocalError(f"the lab archive {archive_path} lacks {absent[0]}: rebuild it")
    record = CopyMarker(
        lab_id=lab_id,
        archive=os.fspath(archive_path),
        host=socket.gethostname(),
        pid=os.getpid(),
        unpacked=time.time(),
    )
    _write_atomic(marker, record.model_dump_json() + "\n")


def read_marker(marker: Path) -> CopyMarker | None:
    """The marker, or None when it is missing or unreadable."""
    try:
        return CopyMarker.model_validate_json(marker.read_bytes())
    except (OSError, ValidationError):
        return None


def _complete(marker: Path, final: Path, lab_id: str, expect: Sequence[str]) -> bool:
    found = read_marker(marker)
    if found is None or found.lab_id != lab_id or not (final / LAB_METADATA).is_file():
        return False
    return all(os.path.lexists(final / rel) for rel in expect)


def _remove_partial(final: Path) -> None:
    """A copy without its marker (a task killed after the rename): renamed aside first, so
    that a kill during the removal leaves a temporary directory the next unpack removes."""
    if not os.path.lexists(final):
        return
    if final.is_symlink() or not final.is_dir():
        final.unlink()
        return
    aside = final.with_name(f".{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}")
    final.rename(aside)
    shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise NodeLocalError(f"{path}: cannot open the lock file: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # blocks while another task unpacks
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


# -- the submitting side ------------------------------------------------------------------


def stage_archive(lab: LoadedLab, given: Path, base: Path) -> Path:
    """The archive nodes unpack: ``given`` when it is one, else ``<base>/archives/<lab id>.tar``
    (written once: an existing one is whole, :func:`repx.lab.archive.write` renames it into
    place)."""
    if archive.is_archive(given):
        return Path(os.path.abspath(given))  # noqa: PTH100 (the user's path, as given)
    out = base / ARCHIVES / f"{lab.meta.lab_id}{archive.PLAIN}"
    if not out.is_file():
        archive.write(lab.root, out)
    return out


def node_local_lab(lab: LoadedLab, archive_path: Path, root: Path) -> NodeLocalLab:
    """The manifest entry of a lab whose tasks use node-local copies under ``root``."""
    return NodeLocalLab(
        root=os.fspath(root),
        lab_id=lab.meta.lab_id,
        archive=os.fspath(archive_path),
        source=os.fspath(lab.root),
    )


# -- moving paths to the copy ---------------------------------------------------------------


def relocate_path(path: str, old: str, new: str) -> str:
    """``path`` under ``new`` when it is ``old`` or under it, else ``path``."""
    if path == old:
        return new
    if path.startswith(old.rstrip("/") + "/"):
        return new + path[len(old.rstrip("/")) :]
    return path


def lab_paths(specs: Sequence[JobSpec], old: str) -> list[str]:
    """The executables of ``specs`` relative to the lab root ``old`` (what
    :func:`ensure_copy` is to find in a copy)."""
    prefix = old.rstrip("/") + "/"
    found: dict[str, None] = {}
    for spec in specs:
        paths = [spec.executable, *(spec.pieces.executables.values() if spec.pieces else ())]
        found.update((p[len(prefix) :], None) for p in paths if p.startswith(prefix))
    return list(found)


def relocate_spec(spec: JobSpec, old: str, new: str) -> JobSpec:
    """``spec`` reading the lab at ``new`` instead of ``old`` (outputs unchanged)."""
    update: dict[str, object] = {
        "lab_root": relocate_path(spec.lab_root, old, new),
        "executable": relocate_path(spec.executable, old, new),
        "parameters_file": relocate_path(spec.parameters_file, old, new),
    }
    if spec.pieces is not None:
        executables = {k: relocate_path(v, old, new) for k, v in spec.pieces.executables.items()}
        update["pieces"] = spec.pieces.model_copy(update={"executables": executables})
    return spec.model_copy(update=update)


def relocate_runtime(runtime: Runtime, old: str, new: str) -> Runtime:
    """``runtime`` with its lab paths (host-tools, store copy, images) at ``new``."""
    return runtime.model_copy(
        update={
            "path": relocate_path(runtime.path, old, new),
            "bwrap": relocate_path(runtime.bwrap, old, new) if runtime.bwrap else runtime.bwrap,
            "store": relocate_path(runtime.store, old, new) if runtime.store else runtime.store,
            "image": relocate_path(runtime.image, old, new) if runtime.image else runtime.image,
            "run_images": {k: relocate_path(v, old, new) for k, v in runtime.run_images.items()},
        }
    )
