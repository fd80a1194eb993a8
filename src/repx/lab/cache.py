"""A per-lab cache of what ``lab/lab-metadata.json`` says besides its integrity list.

Opening a lab reads its header (:class:`~repx.lab.models.LabHeader`: format, lab id, paths,
job count) from ``$XDG_CACHE_HOME/repx/labs/<lab id>-<hash of the lab's path>.json``
instead of parsing the whole file, whose integrity list is most of it (37 MB for 100,000
jobs). The cache is written after a full, successful read of the file (so every check of
the file passed: format, fields, listed paths), atomically (a temporary file renamed over
it), and trusted only when its key matches the file: the lab id the file starts with
(``{"lab_id":"<id>",``, see docs/lab-format.md), the lab's resolved path, and the file's
device, inode, size, modification and change times. Anything else — no such entry, another
key, an unreadable, torn or foreign file — is a miss: the file is read whole and the entry
rewritten. A cache that cannot be written (read-only home) only costs the full read.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import time
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from repx.dirs import cache_dir
from repx.lab.models import LabHeader

logger = logging.getLogger(__name__)

CACHE_FORMAT: Final = "repx-lab-cache/1"
#: A file changed less than this long ago is not cached: a second change within the file
#: system's timestamp granularity (a few ms) that keeps the size would keep the key too.
SETTLE_NS: Final = 2_000_000_000
#: The first member of lab-metadata.json as the lab builder writes it.
_LAB_ID: Final = re.compile(rb'\A\{"lab_id":"([0-9a-z]{32})",')


class CacheKey(BaseModel):
    """What the cached header was read from: one version of one lab-metadata.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lab_id: str
    path: str
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


class _Entry(BaseModel):
    """A cache file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["repx-lab-cache/1"]
    key: CacheKey
    header: LabHeader


def key_of(metadata: Path) -> CacheKey | None:
    """The key of ``lab/lab-metadata.json`` as it is now (None: it cannot be cached, e.g. a
    file that does not start with the lab id member)."""
    try:
        with metadata.open("rb") as f:
            st = os.fstat(f.fileno())
            head = f.read(64)
    except OSError:
        return None
    found = _LAB_ID.match(head)
    if found is None:
        return None
    return CacheKey(
        lab_id=found.group(1).decode(),
        path=os.fspath(metadata),
        dev=st.st_dev,
        ino=st.st_ino,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
    )


def entry_path(key: CacheKey) -> Path:
    """Where the entry of ``key``'s lab lives (one per lab id and path)."""
    where = hashlib.sha256(os.fsencode(key.path)).hexdigest()[:16]
    return cache_dir() / "labs" / f"{key.lab_id}-{where}.json"


def read_header(key: CacheKey) -> LabHeader | None:
    """The cached header of the file ``key`` describes, or None (a miss)."""
    path = entry_path(key)
    try:
        entry = _Entry.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValidationError) as exc:
        logger.debug("ignoring the lab cache %s: %s", path, exc)
        return None
    if entry.key != key or entry.header.lab_id != key.lab_id:
        return None  # another version of the file (or of the cache): never trusted
    return entry.header


def write_header(key: CacheKey, header: LabHeader) -> None:
    """Cache ``header`` (read whole from the file ``key`` describes), atomically; not when
    the file changed within :data:`SETTLE_NS` (its key may not tell the next change)."""
    if time.time_ns() - max(key.mtime_ns, key.ctime_ns) < SETTLE_NS:
        return
    path = entry_path(key)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    data = _Entry(format=CACHE_FORMAT, key=key, header=header).model_dump_json() + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(data, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        logger.debug("cannot write the lab cache %s: %s", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
