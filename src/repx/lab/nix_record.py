"""Compare a lab in the Nix store with Nix's own record of the path (its NAR hash).

The lab's integrity list can be rewritten together with the files it describes; the NAR
hash in Nix's database cannot (short of editing the database). ``repx verify`` recomputes
the NAR serialisation of the lab and compares its sha256 with ``nix path-info``'s.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import process
from repx.errors import ProgramNotFoundError

#: Nix's base-32 alphabet; Nix writes digests least significant 5 bits last.
_NIX32: Final = "0123456789abcdfghijklmnpqrsvwxyz"
#: Bytes read at a time from big files.
_CHUNK: Final = 1 << 20


@dataclass(frozen=True)
class NixRecord:
    """Outcome of the comparison: ``recorded`` is None when Nix knows nothing of the path."""

    recorded: str | None
    computed: str | None

    @property
    def matches(self) -> bool:
        """True when Nix recorded the path and its content still has that NAR hash."""
        return self.recorded is not None and self.recorded == self.computed


def check_nix_record(root: Path) -> NixRecord | None:
    """Compare ``root`` with Nix's record; None when nix is not available."""
    recorded = recorded_nar_hash(root)
    if recorded is None:
        return None if process.which("nix") is None else NixRecord(None, None)
    return NixRecord(recorded, nar_sha256(root))


def recorded_nar_hash(path: Path) -> str | None:
    """The sha256 (hex) Nix recorded for the NAR of store path ``path``, or None."""
    if process.which("nix") is None:
        return None
    try:
        result = process.run(
            ["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", path],
            check=False,
        )
    except ProgramNotFoundError:
        return None
    if result.returncode != 0:
        return None
    try:
        data = json.loads(result.stdout)
    except ValueError:
        return None
    # nix < 2.19 prints a list of objects, later versions an object keyed by path
    infos = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(infos, list):
        return None
    for info in infos:
        if isinstance(info, dict) and isinstance(info.get("narHash"), str):
            return hash_hex(info["narHash"])
    return None


def hash_hex(text: str) -> str | None:
    """A Nix sha256 in SRI (``sha256-<base64>``) or ``sha256:<nix32|hex>`` form, as hex."""
    if text.startswith("sha256-"):
        return base64.b64decode(text[7:]).hex()
    algo, _, digest = text.partition(":")
    if algo != "sha256":
        return None
    if len(digest) == 64:
        return digest
    if len(digest) == 52:
        return _nix32_decode(digest, 32).hex()
    return None


def _nix32_decode(text: str, size: int) -> bytes:
    out = bytearray(size)
    for n, char in enumerate(reversed(text)):
        digit = _NIX32.index(char)
        bit = n * 5
        i, j = divmod(bit, 8)
        out[i] |= (digit << j) & 0xFF
        if i + 1 < size:
            out[i + 1] |= digit >> (8 - j)
    return bytes(out)


def nar_sha256(root: Path) -> str:
    """sha256 (hex) of the NAR serialisation of ``root`` (as ``nix hash path``)."""
    return nar_digest(os.fspath(root)).hexdigest()


#: ``(disk path, path relative to the root, its lstat) -> the link target the NAR gives
#: it, or None for what the disk says``: how a walk sees symbolic links.
LinkOf = Callable[[str, str, os.stat_result], bytes | None]


def _disk_link(path: str, rel: str, info: os.stat_result) -> bytes | None:
    return os.fsencode(os.readlink(path)) if stat.S_ISLNK(info.st_mode) else None  # noqa: PTH115


def nar_digest(root: str, link_of: LinkOf = _disk_link) -> hashlib._Hash:
    """The sha256 of the NAR serialisation of the tree at ``root``; ``link_of`` decides
    which entries are symbolic links and their targets (default: the disk's)."""
    digest = hashlib.sha256()
    put(digest, b"nix-archive-1")
    _node(digest, root, "", link_of)
    return digest


def put(digest: hashlib._Hash, data: bytes) -> None:
    digest.update(len(data).to_bytes(8, "little"))
    digest.update(data)
    if pad := -len(data) % 8:
        digest.update(b"\0" * pad)


def put_contents(digest: hashlib._Hash, path: bytes | str, size: int) -> None:
    """The ``contents`` field of a regular file's NAR node: size, bytes, padding."""
    put(digest, b"contents")
    digest.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:  # noqa: PTH123 (bytes path)
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if pad := -size % 8:
        digest.update(b"\0" * pad)


def _node(digest: hashlib._Hash, path: str, rel: str, link_of: LinkOf) -> None:
    info = os.lstat(path)
    put(digest, b"(")
    put(digest, b"type")
    target = link_of(path, rel, info)
    if target is not None:
        put(digest, b"symlink")
        put(digest, b"target")
        put(digest, target)
    elif stat.S_ISDIR(info.st_mode):
        put(digest, b"directory")
        for name in sorted(os.listdir(os.fsencode(path))):  # noqa: PTH208 (bytes order, as Nix)
            put(digest, b"entry")
            put(digest, b"(")
            put(digest, b"name")
            put(digest, name)
            put(digest, b"node")
            text = os.fsdecode(name)
            inner = f"{rel}/{text}" if rel else text
            _node(digest, f"{path}/{text}", inner, link_of)  # str paths: the hot loop
            put(digest, b")")
    elif stat.S_ISREG(info.st_mode):
        put(digest, b"regular")
        if info.st_mode & stat.S_IXUSR:
            put(digest, b"executable")
            put(digest, b"")
        put_contents(digest, path, info.st_size)
    else:
        raise OSError(f"{path}: not a file, directory or symlink")
    put(digest, b")")
