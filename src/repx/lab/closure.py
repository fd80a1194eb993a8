"""The store paths a lab refers to instead of copying them: ``lab/closure.json``.

A lab built by Nix holds ``store/<name>`` and ``host-tools/<hash>`` as links to store paths,
so every revision shares them. ``lab/closure.json`` (written by nix/lib/closure-info.sh)
records, per link, the store path, the NAR hash and size Nix recorded for it, and the
symbolic links inside it. A lab in the store is trusted by Nix's own record; a copy that
carries the paths (``repx export``, ``cp -rL``, ``rsync -rL``) is checked here: the NAR hash
of the copied tree must be the recorded one. A dereferencing copy replaced the inner links
by what they point to; such a link counts as the recorded link when its copy has the content
of what the link leads to (itself checked as part of its own entry).
"""

# os.path rather than pathlib: these walks visit every entry of big store paths.
# ruff: noqa: PTH116, PTH118, PTH120

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from repx.errors import LabError
from repx.lab.models import LabPath
from repx.lab.nix_record import hash_hex, nar_digest

CLOSURE_FORMAT: Final = "repx-closure/1"
_STORE: Final = "/nix/store/"
_CHUNK: Final = 1 << 20
#: Directory levels followed below a dereferenced link before it counts as a loop.
_MAX_DEPTH: Final = 256


def _two_components(value: str) -> str:
    # store/<name> or host-tools/<hash>: the integrity check finds entries by that prefix
    if value.count("/") != 1 or not all(value.split("/")):
        raise ValueError(f"'{value}' is not of the form <directory>/<name>")
    return value


def _store_path(value: str) -> str:
    name = value.removeprefix(_STORE)
    if name == value or not name or "/" in name:
        raise ValueError(f"'{value}' is not a store path (/nix/store/<name>)")
    return value


def _nar_hash(value: str) -> str:
    if hash_hex(value) is None:
        raise ValueError(f"'{value}' is not a sha256 NAR hash")
    return value


class ClosureEntry(BaseModel):
    """One store path the lab links to, as Nix recorded it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    path: Annotated[LabPath, AfterValidator(_two_components)] = Field(
        description="the link in the lab: store/<name> or host-tools/<hash>"
    )
    store_path: Annotated[str, AfterValidator(_store_path)]
    nar_hash: Annotated[str, AfterValidator(_nar_hash)] = Field(
        description="sha256 of the path's NAR, as Nix prints it"
    )
    nar_size: int = Field(ge=0)
    symlinks: dict[str, str] = Field(
        default_factory=dict, description="every link inside the path: relative path -> target"
    )


class Closure(BaseModel):
    """``lab/closure.json``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    format: str
    entries: tuple[ClosureEntry, ...]
    #: each run's own closure (the store paths of its "per-run" image)
    runs: dict[str, tuple[str, ...]] = {}


def load(root: Path, rel: str) -> Closure:
    """Read ``rel`` (the lab's ``closure`` file) under ``root``; one-line LabError if bad."""
    path = root / rel
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LabError(f"{rel}: cannot read: {exc.strerror}") from None
    try:
        closure = Closure.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise LabError(f"{rel}: {where}: {first['msg']}") from None
    if closure.format != CLOSURE_FORMAT:
        raise LabError(
            f"{rel}: format '{closure.format}', this repx reads '{CLOSURE_FORMAT}'; "
            "rebuild the lab with this repx"
        )
    return closure


@dataclass
class _Copy:
    """State of one NAR computation over a copied store path."""

    root: Path  # the lab
    entry: ClosureEntry
    #: (disk path of a dereferenced link, where its target is in the lab)
    derefs: list[tuple[str, str]]


def check_copy(root: Path, disk: str, entry: ClosureEntry) -> str | None:
    """Why the copy at ``root/disk`` is not ``entry``'s store path; None when it is."""
    state = _Copy(root, entry, [])

    def link_of(path: str, rel: str, info: os.stat_result) -> bytes | None:
        # A link the store path has may be a copy of its target here (cp -rL): the NAR
        # still says link, and the content is compared with the target's afterwards.
        if stat.S_ISLNK(info.st_mode):
            return os.fsencode(os.readlink(path))  # noqa: PTH115
        listed = entry.symlinks.get(rel)
        if listed is None:
            return None
        state.derefs.append((path, _in_lab(state, path, listed)))
        return os.fsencode(listed)

    try:
        digest = nar_digest(os.path.join(root, disk), link_of)
    except OSError as exc:
        return f"cannot read the copy of {entry.store_path}: {exc.strerror or exc}"
    if digest.hexdigest() != hash_hex(entry.nar_hash):
        return f"content differs from {entry.store_path} (NAR hash {entry.nar_hash})"
    cache: dict[str, str] = {}
    for copied, target in state.derefs:
        try:
            same = deref_digest(copied, cache) == deref_digest(target, cache)
        except OSError:
            same = False
        if not same:
            rel = os.path.relpath(copied, root)
            return f"'{rel}' replaces a link of {entry.store_path} by other content"
    return None


def _in_lab(state: _Copy, link: str, target: str) -> str:
    """Where ``target`` of the link at ``link`` is in the copied lab (store/ is /nix/store)."""
    if target.startswith(_STORE):
        return os.path.join(state.root, "store", target.removeprefix(_STORE))
    return os.path.normpath(os.path.join(os.path.dirname(link), target))


def deref_digest(path: str, cache: dict[str, str], depth: int = 0) -> str:
    """A digest of what ``path`` holds with every link followed: equal for equal content."""
    if depth > _MAX_DEPTH:
        raise OSError(f"{path}: too deep (a link loop?)")
    real = os.path.realpath(path)
    if real in cache:
        return cache[real]
    info = os.stat(path)
    digest = hashlib.sha256()
    if stat.S_ISDIR(info.st_mode):
        digest.update(b"d")
        for name in sorted(os.listdir(path)):  # noqa: PTH208
            digest.update(os.fsencode(name) + b"\0")
            digest.update(deref_digest(os.path.join(path, name), cache, depth + 1).encode())
    else:
        digest.update(b"x" if info.st_mode & stat.S_IXUSR else b"f")
        with open(path, "rb") as f:  # noqa: PTH123
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    cache[real] = digest.hexdigest()
    return cache[real]


def by_path(closure: Closure | None) -> Mapping[str, ClosureEntry]:
    """The entries by their path in the lab (empty without a closure file)."""
    return {} if closure is None else {e.path: e for e in closure.entries}
