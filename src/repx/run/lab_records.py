"""Which labs used an output store, and which are pinned (what ``repx gc`` keeps).

```
<base>/labs/<lab-id>.json    LabRecord: written by every ``repx run`` of that lab
<base>/pins/<name>.json      Pin: ``repx gc pin``
<base>/pins/<name>.lab       symlink to the pinned lab (a Nix GC root when Nix is here)
```

Records are small JSON files replaced atomically (write, then rename), one per lab, so
that concurrent runs of different labs never write the same file and a crash leaves the
old record or the new one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path
from typing import Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repx.errors import UsageError

LABS: Final = "labs"
PINS: Final = "pins"
RECORD_FORMAT: Final = "repx-lab-record/1"
PIN_FORMAT: Final = "repx-pin/1"
PIN_NAME: Final = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}$")
_M = TypeVar("_M", bound=BaseModel)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LabRecord(_Model):
    """``labs/<lab-id>.json``: a lab that ran into this store, and when."""

    format: str = RECORD_FORMAT
    lab_id: str
    path: str = Field(description="absolute path of the lab root when it last ran")
    lab_version: str = ""
    job_count: int = Field(ge=0)
    first_used: float = Field(description="seconds since the epoch")
    last_used: float = Field(description="seconds since the epoch")


class Pin(_Model):
    """``pins/<name>.json``: a lab whose outputs ``repx gc`` never removes."""

    format: str = PIN_FORMAT
    name: str
    lab_id: str
    path: str = Field(description="absolute path of the pinned lab root")
    created: float = Field(description="seconds since the epoch")


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def record_use(
    root: Path, *, lab_id: str, path: Path, lab_version: str, job_count: int
) -> LabRecord:
    """Note that the lab ``lab_id`` (at ``path``) is running into the store at ``root``."""
    now = time.time()
    target = root / LABS / f"{lab_id}.json"
    previous = _read(target, LabRecord)
    record = LabRecord(
        lab_id=lab_id,
        path=os.fspath(path),
        lab_version=lab_version,
        job_count=job_count,
        first_used=previous.first_used if previous else now,
        last_used=now,
    )
    _write_atomic(target, record.model_dump_json(indent=1) + "\n")
    return record


def lab_records(root: Path) -> list[LabRecord]:
    """Every lab record of the store, most recently used first."""
    records = [r for p in _json_files(root / LABS) if (r := _read(p, LabRecord)) is not None]
    return sorted(records, key=lambda r: r.last_used, reverse=True)


def forget(root: Path, lab_id: str) -> None:
    """Remove a lab's record (its lab is gone)."""
    with contextlib.suppress(FileNotFoundError):
        (root / LABS / f"{lab_id}.json").unlink()


def check_pin_name(name: str) -> str:
    """``name`` if it is a valid pin name, else a usage error saying what is allowed."""
    if not PIN_NAME.match(name):
        raise UsageError(
            f"invalid pin name {name!r}: use letters, digits and _ . + - (not starting with . or -)"
        )
    return name


def pins(root: Path) -> list[Pin]:
    """Every pin of the store, by name."""
    found = [p for f in _json_files(root / PINS) if (p := _read(f, Pin)) is not None]
    return sorted(found, key=lambda p: p.name)


def pin_link(root: Path, name: str) -> Path:
    """The symlink that keeps a pinned lab alive (registered as a Nix GC root)."""
    return root / PINS / f"{name}.lab"


def write_pin(root: Path, pin: Pin) -> None:
    """Create or replace the pin ``pin.name`` and its link to the lab."""
    link = pin_link(root, pin.name)
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.{secrets.token_hex(4)}")
    tmp.symlink_to(pin.path)
    tmp.replace(link)
    _write_atomic(root / PINS / f"{pin.name}.json", pin.model_dump_json(indent=1) + "\n")


def remove_pin(root: Path, name: str) -> bool:
    """Remove a pin; False when there was none of that name."""
    found = False
    for path in (root / PINS / f"{name}.json", pin_link(root, name)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            found = True
    return found


def _json_files(directory: Path) -> list[Path]:
    try:
        return [p for p in directory.iterdir() if p.name.endswith(".json") and p.name[0] != "."]
    except FileNotFoundError:
        return []


def _read(path: Path, model: type[_M]) -> _M | None:
    try:
        return model.model_validate_json(path.read_bytes())
    except (OSError, ValidationError):
        return None
