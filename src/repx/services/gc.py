"""``repx gc``: remove what no kept lab needs from an output store; pins.

Kept labs: every pinned lab, the lab given with ``--lab`` (default ``result``) when it
exists, and the ``keep_recent`` most recently run labs that still exist (``labs/``
records, written by every ``repx run``). Everything a kept lab's jobs need stays: their
outputs (successes and failures). Removed:
- ``outputs/<job>`` of every job no kept lab has;
- ``failed-out/`` (what a failed attempt left in its ``$out``) of the jobs kept: the logs
  and the result record stay, so ``repx status`` still tells why they failed;
- attempt directories left by dead processes (``.work/``);
- with ``nix``: the store paths of labs that ran here and are kept no more, unless Nix
  still needs them (a ``result`` link, a profile, another path referring to them).

Safety: collection holds the store-wide use lock exclusively (``run/store_usage.py``): it
does not start while a ``repx run`` uses the store, and runs wait until it ends. Each
output directory is removed under its job's lock (a SLURM task holding it is skipped),
by a rename out of ``outputs/`` first, so that a crash never leaves a half-deleted output
at its final path.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from repx import nix, process
from repx.errors import LabError, RepxError, UsageError
from repx.lab.loader import LoadedLab, open_lab
from repx.run import lab_records
from repx.run.lab_records import LabRecord, Pin
from repx.run.store import FAILED_OUT, STORE_INFO, Store
from repx.run.store_usage import exclusive_use

#: Labs kept besides pins and the current one (RepX keeps 5 automatic roots too).
DEFAULT_KEEP_RECENT: Final = 5
NIX_STORE: Final = "/nix/store/"

KeptBecause = Literal["pinned", "current", "recent"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class KeptLab(_Model):
    """A lab whose jobs' outputs gc keeps."""

    lab_id: str
    path: str
    why: KeptBecause
    pin: str | None = None
    jobs: int


class Removal(_Model):
    """One directory gc removes (or would remove)."""

    kind: Literal["output", "failed-out", "work"]
    job: str
    path: str
    bytes: int


class GcReport(_Model):
    """What ``repx gc`` removed (``dry_run``: would remove); ``--json`` prints it."""

    base: str
    dry_run: bool
    kept: tuple[KeptLab, ...]
    removed: tuple[Removal, ...]
    skipped_in_use: tuple[str, ...] = ()
    forgotten_labs: tuple[str, ...] = ()
    nix_deleted: tuple[str, ...] = ()
    nix_alive: tuple[str, ...] = ()
    bytes: int

    def count(self, kind: str) -> int:
        """How many removals of one kind."""
        return sum(1 for r in self.removed if r.kind == kind)

    def size(self, kind: str) -> int:
        """Bytes of the removals of one kind."""
        return sum(r.bytes for r in self.removed if r.kind == kind)


class PinRow(_Model):
    """One line of ``repx gc list``: a pinned or recorded lab."""

    name: str | None
    lab_id: str
    path: str
    kind: Literal["pinned", "current", "recent", "old"]
    exists: bool
    last_used: float | None
    jobs: int | None
    bytes: int | None = None


class GcList(_Model):
    """``repx gc list --json``."""

    base: str
    labs: tuple[PinRow, ...]


@dataclass(frozen=True)
class _Kept:
    lab: LoadedLab
    info: KeptLab


def collect(
    base: Path,
    *,
    current: Path | None,
    keep_recent: int = DEFAULT_KEEP_RECENT,
    dry_run: bool = False,
    with_nix: bool = False,
) -> GcReport:
    """Remove (``dry_run``: list) what no kept lab needs; return what was done."""
    if keep_recent < 0:
        raise UsageError("--keep-recent must be 0 or more")
    store = Store.existing(base, strict=True)
    if not (store.root / STORE_INFO).exists():  # no run used it: nothing to collect
        return GcReport(base=os.fspath(store.root), dry_run=dry_run, kept=(), removed=(), bytes=0)
    try:
        if dry_run:
            return _collect(store, current, keep_recent, dry_run=True, with_nix=with_nix)
        with exclusive_use(store.root):
            return _collect(store, current, keep_recent, dry_run=False, with_nix=with_nix)
    finally:
        store.close()


def _collect(
    store: Store, current: Path | None, keep_recent: int, *, dry_run: bool, with_nix: bool
) -> GcReport:
    kept, forgotten, old = _kept_labs(store.root, current, keep_recent)
    needed = {job for k in kept for job in k.lab.jobs}
    planned = list(_planned(store, needed))
    removed: list[Removal] = []
    busy: list[str] = []
    for removal in planned:
        if dry_run or _remove(store, removal):
            removed.append(removal)
        else:
            busy.append(removal.job)
    deleted: list[Path] = []
    alive: list[Path] = []
    if with_nix and old:
        paths = [Path(r.path) for r in old]
        if dry_run:
            alive = paths  # not asked: Nix decides at collection time
        else:
            deleted, alive = nix.delete_paths(paths)
            gone = {os.fspath(p) for p in deleted}
            forgotten += [r for r in old if r.path in gone]
    if not dry_run:
        for record in forgotten:
            lab_records.forget(store.root, record.lab_id)
    return GcReport(
        base=os.fspath(store.root),
        dry_run=dry_run,
        kept=tuple(k.info for k in kept),
        removed=tuple(removed),
        skipped_in_use=tuple(busy),
        forgotten_labs=tuple(r.lab_id for r in forgotten),
        nix_deleted=tuple(map(os.fspath, deleted)),
        nix_alive=() if dry_run else tuple(map(os.fspath, alive)),
        bytes=sum(r.bytes for r in removed),
    )


def _kept_labs(
    root: Path, current: Path | None, keep_recent: int
) -> tuple[list[_Kept], list[LabRecord], list[LabRecord]]:
    """(kept labs, records of labs that are gone, records of existing labs not kept)."""
    kept: dict[str, _Kept] = {}
    for pin in lab_records.pins(root):
        try:
            lab = open_lab(Path(pin.path))
        except LabError as exc:
            raise RepxError(
                f"pinned lab '{pin.name}' cannot be read ({exc.message}): gc removes nothing;"
                f" restore it, or unpin it with 'repx gc unpin {pin.name}'"
            ) from None
        kept.setdefault(lab.meta.lab_id, _Kept(lab, _info(lab, "pinned", pin.name)))
    if current is not None:
        try:
            lab = open_lab(current)
        except LabError:
            pass  # no current lab (e.g. no result link here): nothing more to keep
        else:
            kept.setdefault(lab.meta.lab_id, _Kept(lab, _info(lab, "current")))
    forgotten: list[LabRecord] = []
    old: list[LabRecord] = []
    recent = 0
    for record in lab_records.lab_records(root):
        if record.lab_id in kept:
            continue
        try:
            lab = open_lab(Path(record.path))
        except LabError:
            forgotten.append(record)
            continue
        if lab.meta.lab_id != record.lab_id:  # the path now holds another lab
            forgotten.append(record)
            continue
        if recent < keep_recent:
            recent += 1
            kept[record.lab_id] = _Kept(lab, _info(lab, "recent"))
        elif record.path.startswith(NIX_STORE):
            old.append(record)
    return list(kept.values()), forgotten, old


def _info(lab: LoadedLab, why: KeptBecause, pin: str | None = None) -> KeptLab:
    return KeptLab(
        lab_id=lab.meta.lab_id, path=os.fspath(lab.root), why=why, pin=pin, jobs=len(lab.jobs)
    )


def _planned(store: Store, needed: set[str]) -> Iterable[Removal]:
    try:
        names = sorted(p.name for p in store.outputs.iterdir())
    except FileNotFoundError:
        names = []
    for job in names:
        if job.startswith("."):
            continue
        directory = store.outputs / job
        if job not in needed:
            yield Removal(
                kind="output", job=job, path=os.fspath(directory), bytes=disk_usage(directory)
            )
        elif (failed := directory / FAILED_OUT).is_dir():
            yield Removal(
                kind="failed-out", job=job, path=os.fspath(failed), bytes=disk_usage(failed)
            )
    for job, work in sorted(store.attempts_in_progress().items()):
        if not store.is_locked(job):
            yield Removal(kind="work", job=job, path=os.fspath(work), bytes=disk_usage(work))


def _remove(store: Store, removal: Removal) -> bool:
    """Remove one planned directory under its job's lock; False when the job is in use."""
    lock = store.try_lock(removal.job)
    if lock is None:
        return False
    try:
        path = Path(removal.path)
        if not path.exists():
            return True
        # Out of outputs/ first (atomic), then delete: a crash leaves trash in .work that
        # the next run discards, never a half-deleted output at its final path.
        store.work.mkdir(parents=True, exist_ok=True)
        trash = store.work / f"{removal.job}.gc{secrets.token_hex(4)}.trash"
        path.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
        return True
    finally:
        lock.release()


def disk_usage(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (as ``du``; symlinks not followed)."""
    total = 0
    try:
        top = os.lstat(path)
    except FileNotFoundError:
        return 0
    total += top.st_blocks * 512
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                total += (Path(dirpath) / name).lstat().st_blocks * 512
            except FileNotFoundError:
                continue
    return total


# -- pins ---------------------------------------------------------------------------------


def pin(base: Path, lab_path: Path, name: str | None) -> Pin:
    """Pin a lab: gc keeps its outputs, and Nix keeps the lab (an indirect GC root)."""
    lab = open_lab(lab_path)
    pin_name = lab_records.check_pin_name(name or lab.meta.lab_id[:12])
    store = Store.open(base)
    try:
        entry = Pin(
            name=pin_name, lab_id=lab.meta.lab_id, path=os.fspath(lab.root), created=time.time()
        )
        lab_records.write_pin(store.root, entry)
        if os.fspath(lab.root).startswith(NIX_STORE) and process.which("nix-store"):
            nix.add_gc_root(lab_records.pin_link(store.root, pin_name), lab.root)
        return entry
    finally:
        store.close()


def unpin(base: Path, name: str) -> None:
    """Remove a pin (the lab's outputs become collectable when no other reason keeps them)."""
    store = Store.existing(base, strict=True)
    try:
        if not lab_records.remove_pin(store.root, name):
            names = ", ".join(p.name for p in lab_records.pins(store.root)) or "none"
            raise UsageError(f"no pin named '{name}' in {store.root} (pins: {names})")
    finally:
        store.close()


def list_labs(base: Path, *, current: Path | None, keep_recent: int, sizes: bool) -> GcList:
    """Pinned and recorded labs of a store, with what gc would do to them."""
    store = Store.existing(base, strict=True)
    try:
        kept = _kept_labs_lenient(store.root, current, keep_recent)
        rows: list[PinRow] = []
        records = {r.lab_id: r for r in lab_records.lab_records(store.root)}
        for entry in lab_records.pins(store.root):
            record = records.get(entry.lab_id)
            rows.append(_row(store, entry.name, entry.lab_id, entry.path, "pinned", record, sizes))
        pinned = {p.lab_id for p in lab_records.pins(store.root)}
        for record in records.values():
            if record.lab_id in pinned:
                continue
            kind = kept.get(record.lab_id, "old")
            rows.append(_row(store, None, record.lab_id, record.path, kind, record, sizes))
        return GcList(base=os.fspath(store.root), labs=tuple(rows))
    finally:
        store.close()


def _kept_labs_lenient(
    root: Path, current: Path | None, keep_recent: int
) -> dict[str, Literal["pinned", "current", "recent", "old"]]:
    """Why gc keeps each kept lab (by id); an unreadable pin counts as kept (never fails)."""
    try:
        kept, _forgotten, _old = _kept_labs(root, current, keep_recent)
    except RepxError:
        return {p.lab_id: "pinned" for p in lab_records.pins(root)}
    return {k.info.lab_id: k.info.why for k in kept}


def _row(  # noqa: PLR0917 (one call site, every field of a row)
    store: Store,
    name: str | None,
    lab_id: str,
    path: str,
    kind: Literal["pinned", "current", "recent", "old"],
    record: LabRecord | None,
    sizes: bool,
) -> PinRow:
    try:
        lab: LoadedLab | None = open_lab(Path(path))
    except LabError:
        lab = None
    size = None
    if sizes and lab is not None:
        size = sum(disk_usage(store.outputs / job) for job in lab.jobs)
    return PinRow(
        name=name,
        lab_id=lab_id,
        path=path,
        kind=kind,
        exists=lab is not None,
        last_used=record.last_used if record else None,
        jobs=len(lab.jobs) if lab is not None else (record.job_count if record else None),
        bytes=size,
    )
