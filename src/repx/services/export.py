"""``repx export``: write a lab and its closure into one archive for hosts without Nix."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from repx.errors import UsageError
from repx.lab import archive
from repx.lab.loader import open_lab

#: Called once with the total byte count; returns the per-file progress callback.
ProgressFactory = Callable[[int], archive.Progress]


@dataclass(frozen=True)
class ExportResult:
    """What ``repx export`` wrote."""

    path: Path
    size_bytes: int
    lab_id: str
    file_count: int
    seconds: float


def export_lab(lab: Path, out: Path, progress: ProgressFactory | None = None) -> ExportResult:
    """Write the lab at ``lab`` (a directory, ``result`` link or archive) to ``out``."""
    if not archive.is_archive(out):
        raise UsageError(f"{out}: the archive must end with {archive.PLAIN} or {archive.ZSTD}")
    started = time.monotonic()
    loaded = open_lab(lab)  # refuses what is not a lab, in one line
    entries = archive.members(loaded.root)
    files = [m for m in entries if m.kind == "file"]
    report = progress(sum(m.size for m in files)) if progress is not None else None
    archive.write(loaded.root, out, report, entries)
    return ExportResult(
        out, out.stat().st_size, loaded.meta.lab_id, len(files), time.monotonic() - started
    )
