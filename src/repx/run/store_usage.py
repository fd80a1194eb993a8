"""The store-wide use lock: ``repx run`` shares it, ``repx gc`` takes it alone.

A garbage collection must never remove what a run is about to adopt or read: the run
decides which outputs are reusable (pruning) long before it reads them as inputs. Per-job
locks cannot express that, so every ``repx run`` holds a *shared* lock on
``<base>/gc.lock`` from before pruning until it ends, and ``repx gc`` takes it *exclusively*
without waiting: while any run uses the store, gc removes nothing. SLURM tasks that run
later on the nodes are protected differently: their lab was recorded as the most recent
one (kept), and gc skips any job whose per-job lock is held.

Linux open-file-description locks, as the per-job locks (``run/store.py``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from repx.errors import RepxError
from repx.run.protocol import FLOCK as _FLOCK

GC_LOCK: Final = "gc.lock"


class StoreBusyError(RepxError):
    """A run uses the output store, so garbage collection must not start."""


def _lock(root: Path, kind: int, *, wait: bool) -> int:
    fd = os.open(root / GC_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    command = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    try:
        fcntl.fcntl(fd, command, _FLOCK.pack(kind, os.SEEK_SET, 0, 0, 0))
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextlib.contextmanager
def shared_use(root: Path) -> Iterator[None]:
    """Hold the store as a run does (waits while a gc is collecting)."""
    fd = _lock(root, fcntl.F_RDLCK, wait=True)
    try:
        yield
    finally:
        os.close(fd)  # closing the only descriptor releases an OFD lock


@contextlib.contextmanager
def exclusive_use(root: Path) -> Iterator[None]:
    """Hold the store alone, or raise :class:`StoreBusyError` at once."""
    try:
        fd = _lock(root, fcntl.F_WRLCK, wait=False)
    except OSError as exc:
        if exc.errno in (errno.EAGAIN, errno.EACCES):
            raise StoreBusyError(
                f"a repx run is using {root}: gc removes nothing while a run uses the store;"
                " run it again when the run has ended"
            ) from None
        raise
    try:
        yield
    finally:
        os.close(fd)
