"""``completions.index``: where each job's last record lies in ``completions.jsonl``.

``completions.jsonl`` is the output store's log of commits (one JSON record per line,
appended; see :mod:`repx.run.store`). Telling the state of a few jobs (``repx show job``)
from it means parsing every record: 0.5 s at 100,000. This index, beside it, says where
the last record of each job lies, for the part of the log it covers::

    repx-completions-index/1<TAB><bytes of the log covered><TAB><dev>:<inode> of the log
    <job id><TAB><byte offset><TAB><byte length>
    …

A reader takes the records it needs at their offsets and parses the rest of the log (what
was appended since the index was written) as before; so the index is never the only truth:
it only saves parsing records of other jobs. It is ignored — the log is parsed whole —
when it does not describe this log (another inode: the log was replaced; the log shorter
than the covered part; a covered part not ending a line), is unreadable or torn, or a
record at an offset is not that job's.

``repx run`` writes it after committing (:func:`update`): the entries of the old index plus
those of the records appended since, as a temporary file renamed over the old one, so a
reader sees the old index or the new one. Runs that end together each write an index of a
prefix of the log; whichever rename comes last, it is a true one. Inspection never writes it.
"""

# ruff: noqa: PTH123 (os-level reads of the store's files)

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from pydantic_core import from_json

from repx.run.store_models import JobStatus

logger = logging.getLogger(__name__)

INDEX: Final = "completions.index"
FORMAT: Final = "repx-completions-index/1"


def _identity(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


def _load(root: Path, log: os.stat_result) -> tuple[bytes, int] | None:
    """(the index's bytes, the log bytes it covers) when it describes ``log``."""
    try:
        data = (root / INDEX).read_bytes()
    except OSError:
        return None
    head, _, _ = data.partition(b"\n")
    parts = head.decode("ascii", errors="replace").split("\t")
    if len(parts) != 3 or parts[0] != FORMAT or not parts[1].isdigit():
        return None
    covered = int(parts[1])
    if parts[2] != _identity(log) or covered > log.st_size or not data.endswith(b"\n"):
        return None
    return data, covered


def _is_record(value: object) -> bool:
    """A record the store's reader takes (others are skipped as torn lines)."""
    return (
        isinstance(value, dict)
        and isinstance(value.get("job"), str)
        and value.get("status") in _STATUSES
    )


_STATUSES: Final = frozenset(s.value for s in JobStatus)


def lines_from(data: bytes, start: int) -> Iterable[tuple[int, bytes]]:
    """(offset, line) of each non-empty line of ``data`` from ``start`` (a line start)."""
    at = start
    for line in data[start:].split(b"\n"):
        if line.strip():
            yield at, line
        at += len(line) + 1


def lookup(
    root: Path, log_path: Path, jobs: Iterable[str]
) -> tuple[dict[str, dict[str, object]], int] | None:
    """(job -> its last record, the log offset parsing must go on from) for ``jobs``, from
    the index; None when there is no usable index (parse the log whole)."""
    try:
        with open(log_path, "rb") as f:
            log = os.fstat(f.fileno())
            loaded = _load(root, log)
            if loaded is None:
                return None
            data, covered = loaded
            found: dict[str, dict[str, object]] = {}
            for job in jobs:
                key = b"\n" + job.encode() + b"\t"
                at = data.find(key)
                if at < 0:
                    continue  # no record of it in the covered part
                end = data.index(b"\n", at + len(key))
                offset, _, length = data[at + len(key) : end].partition(b"\t")
                f.seek(int(offset))
                raw = f.read(int(length))
                record = from_json(raw)
                if not _is_record(record) or record["job"] != job:
                    logger.debug("%s: the entry of %s is not its record", root / INDEX, job)
                    return None
                found[job] = record
            return found, covered
    except (OSError, ValueError):
        return None


def update(root: Path, log_path: Path) -> None:
    """Bring the index up to the end of the log (best effort: a failure only costs readers
    a whole parse)."""
    try:
        with open(log_path, "rb") as f:
            log = os.fstat(f.fileno())
            data = f.read()
    except OSError:
        return
    end = data.rfind(b"\n") + 1  # a torn last line is not covered
    entries: dict[str, tuple[int, int]] = {}
    start = 0
    loaded = _load(root, log)
    if loaded is not None and loaded[1] <= end and (loaded[1] == 0 or data[loaded[1] - 1] == 10):
        index, start = loaded
        if start == end:
            return  # nothing appended since
        for row in index.split(b"\n")[1:]:
            if row:
                job, at, length = row.decode().split("\t")
                entries[job] = (int(at), int(length))
    for offset, line in lines_from(data[:end], start):
        try:
            record = json.loads(line)
        except ValueError:
            continue  # torn or garbled: readers skip it too
        if _is_record(record):
            entries[record["job"]] = (offset, len(line))
    rows = [f"{FORMAT}\t{end}\t{_identity(log)}"]
    rows += [f"{job}\t{offset}\t{length}" for job, (offset, length) in sorted(entries.items())]
    tmp = root / f".{INDEX}.{os.getpid()}.tmp"
    try:
        tmp.write_text("\n".join(rows) + "\n", encoding="utf-8")
        tmp.replace(root / INDEX)
    except OSError as exc:
        logger.debug("cannot write %s: %s", root / INDEX, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()
