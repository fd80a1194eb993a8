"""What a new lab revision changes against one already on an SSH target.

Every lab lists its entries with their content hashes (``lab/lab-metadata.json``: files,
symbolic links, empty directories). repx keeps the listing of each lab it synced to a
target (``$XDG_CACHE_HOME/repx/ssh/<target key>/<lab id>.json``); the next revision is then
made there from a hard-linked copy of that lab plus only the entries that differ, so rsync
neither sends nor even lists the unchanged ones (docs/remote.md, "Incremental").
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, ValidationError

from repx.dirs import cache_dir
from repx.lab.loader import LoadedLab

#: The file every revision changes (it lists the others); never in its own listing.
METADATA: Final = "lab/lab-metadata.json"
#: Above this share of changed entries a plain rsync (with --link-dest) is as good.
MAX_CHANGED_SHARE: Final = 0.5


class Listing(BaseModel):
    """A lab's entries: path -> what it is (``f:<sha256>:<x>``, ``l:<target>``, ``d``)."""

    model_config = ConfigDict(frozen=True)

    lab_id: str
    entries: dict[str, str]


def listing_of(lab: LoadedLab) -> Listing:
    """The entries of ``lab`` as its metadata lists them."""
    entries: dict[str, str] = {}
    meta = lab.integrity_list()
    for f in meta.files:
        entries[f.path] = f"f:{f.sha256}:{int(f.executable)}"
    for s in meta.symlinks:
        entries[s.path] = f"l:{s.target}"
    for d in meta.empty_dirs:
        entries[d] = "d"
    return Listing(lab_id=lab.meta.lab_id, entries=entries)


@dataclass(frozen=True)
class Delta:
    """How to make the new lab from a copy of the old one."""

    #: entries to send (new or changed content), the metadata file included
    send: tuple[str, ...]
    #: entries of the old lab to remove from the copy first (gone, or of another kind or
    #: mode: rsync must create them anew rather than change a hard-linked inode)
    remove: tuple[str, ...]


def delta(old: Listing, new: Listing) -> Delta | None:
    """What turns ``old`` into ``new`` (None: too much changed to be worth it)."""
    send: list[str] = []
    remove: list[str] = []
    for path, what in new.entries.items():
        before = old.entries.get(path)
        if before == what:
            continue
        send.append(path)
        if before is not None and not (
            before[:2] == what[:2] == "f:" and _mode(before) == _mode(what)
        ):
            remove.append(path)  # a file whose content alone changed keeps its old copy as basis
    remove += [path for path in old.entries if path not in new.entries]
    if len(send) > MAX_CHANGED_SHARE * max(1, len(new.entries)):
        return None
    send.append(METADATA)
    return Delta(tuple(send), tuple(sorted(remove)))


def _mode(what: str) -> str:
    return what.rsplit(":", 1)[-1]


def _directory(target_key: str) -> Path:
    return cache_dir() / "ssh" / hashlib.sha256(target_key.encode()).hexdigest()[:16]


def remember(target_key: str, listing: Listing) -> None:
    """Record that ``listing``'s lab is complete on the target (atomic write)."""
    directory = _directory(target_key)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{listing.lab_id}.json"
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(listing.model_dump_json())
    tmp.replace(path)


def recall(target_key: str, lab_ids: list[str]) -> Listing | None:
    """The listing of the first of ``lab_ids`` (labs there, newest first) known here."""
    directory = _directory(target_key)
    for lab_id in lab_ids:
        try:
            return Listing.model_validate_json((directory / f"{lab_id}.json").read_bytes())
        except (OSError, ValidationError, json.JSONDecodeError):
            continue
    return None
