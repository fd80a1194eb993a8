"""The output store: where job results live, outside the read-only lab.

```
<base>/repx-store.json               marks the directory (format version)
<base>/outputs/<job>/out/            the job's $out — exists only for a successful job
<base>/outputs/<job>/repx/           inputs.json parameters.json stdout.log stderr.log
                                     result.json and a SUCCESS or FAIL marker
<base>/outputs/<job>/failed-out/     what a failed attempt left in $out (kept for debugging)
<base>/outputs/<job>/failed-rerun/   a failed attempt of a job whose success stays (run --force)
<base>/completions.jsonl             one JobResult per line, appended after each commit
<base>/completions.index             where each job's last record lies in it (repx run)
<base>/.work/<job>.<nonce>/          attempts in progress ({out,repx}/)
<base>/locks/<job>.lock              per-job lock, held while an attempt is in progress
```

Commit protocol: an attempt works in ``.work/<job>.<nonce>`` while holding the job's lock;
when it ends its markers are written and the directory is renamed to ``outputs/<job>``
(rename(2) is atomic), then a line is appended to ``completions.jsonl``. So
``outputs/<job>/out`` exists exactly when the job succeeded, and a crash at any point leaves
either the previous state or the new one, plus a stale ``.work`` directory whose lock is no
longer held (the next run deletes it). An attempt replaces a committed one by exchanging
the two directories (``renameat2(RENAME_EXCHANGE)``, one atomic step; two renames where the
file system cannot), and a failed attempt never replaces an intact success (``run
--force``): it is kept in ``outputs/<job>/failed-rerun`` and the success stays the job's
result.

``completions.jsonl`` is an index, so that status reads need not walk the tree: a job's
last attempt is its last record, committed when ``outputs/<job>`` is listed (one
``readdir``). A record lost to a crash (or a concurrent reader) between the rename and the
append is recovered from ``result.json``: for a committed job without a record (a success or
a failure), and for a committed ``out/`` whose record is not a success. A success whose
files were damaged afterwards is told by :meth:`Store.damage` (a few ``lstat`` calls); torn
lines are skipped.

Locks are Linux open-file-description locks (``F_OFD_SETLK`` on the whole lock file), not
``flock``: :meth:`Store.is_locked` tests one with ``F_OFD_GETLK`` on a read-only descriptor,
so that inspecting never takes a lock nor writes to the store (NFS passes the test to its
lock manager). An OFD lock belongs to the open file description: a child process that
inherits :attr:`JobLock.fd` (without ``O_CLOEXEC``) keeps the lock held until the last
descriptor of it is closed, even after the process that took it died. Closing some other
descriptor of the same file does not release it (unlike POSIX record locks).
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH112, PTH118, PTH208

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from pydantic import ValidationError
from pydantic_core import from_json

from repx.errors import RepxError
from repx.run import completions_index, protocol
from repx.run.protocol import (
    COMPLETIONS,
    FAIL_MARKER,
    FAILED_OUT,
    FAILED_RERUN,
    LOCKS,
    OUT,
    OUTPUTS,
    REPX,
    RESULT,
    SUCCESS_MARKER,
    WORK,
)
from repx.run.store_models import STORE_FORMAT, JobResult, JobStatus, StoreInfo

logger = logging.getLogger(__name__)

__all__ = [
    "COMPLETIONS",
    "FAILED_OUT",
    "FAILED_RERUN",
    "FAIL_MARKER",
    "LOCKS",
    "OUT",
    "OUTPUTS",
    "REPX",
    "RESULT",
    "SUCCESS_MARKER",
    "WORK",
    "JobLock",
    "Store",
    "StoreError",
    "StoreIndex",
]

STORE_INFO: Final = "repx-store.json"
_TRASH_SUFFIX: Final = protocol.TRASH_SUFFIX
#: Refuse to start when the base directory has less free space than this.
MIN_FREE_BYTES: Final = 4 * 1024 * 1024


class StoreError(RepxError):
    """The output store (base directory) cannot be used."""

    exit_code = 2


@dataclass
class JobLock:
    """A held per-job lock: an open file with an exclusive OFD lock on the whole of it.

    The lock lives as long as some process has ``fd`` (or a duplicate, also an inherited
    one: job processes inherit it, so that orphans of a killed run keep it held) open.
    """

    job: str
    fd: int

    def release(self) -> None:
        """Unlock, then close our descriptor.

        The explicit unlock frees the lock at once even when processes of the ended attempt
        (killed an instant ago, not yet gone) still share the open file description.
        """
        if self.fd >= 0:
            protocol.unlock(self.fd)
            self.fd = -1


@dataclass
class StoreIndex:
    """What the store holds, read once: the last record of each job and the committed ids."""

    records: dict[str, dict[str, object]]
    committed: set[str]
    torn_lines: int = 0
    #: Committed attempts whose record was lost (or disagreed), read from result.json.
    recovered: list[JobResult] = field(default_factory=list)

    def succeeded(self, job: str) -> bool:
        """True when the job has a committed successful attempt."""
        record = self.records.get(job)
        return (
            record is not None
            and record.get("status") == JobStatus.SUCCEEDED
            and job in self.committed
        )

    def last_status(self, job: str) -> JobStatus | None:
        """Status of the job's last recorded attempt (None: never recorded, or output gone)."""
        record = self.records.get(job)
        if record is None:
            return None
        status = JobStatus(str(record.get("status")))
        if status is JobStatus.SUCCEEDED and job not in self.committed:
            return None  # deleted by hand: as if never run
        return status

    def result(self, job: str) -> JobResult | None:
        """The job's last recorded attempt as a model."""
        record = self.records.get(job)
        return None if record is None else JobResult.model_validate(record)


class Store:
    """An output store rooted at a base directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.outputs = root / OUTPUTS
        self.work = root / WORK
        self.locks = root / LOCKS
        self.completions = root / COMPLETIONS
        self.host = socket.gethostname()
        self._append_fd = -1
        #: Stale attempt directories whose lock was busy when we looked (job -> names).
        self._busy_stale: dict[str, list[str]] = {}
        #: Committed successes found damaged: not done, whatever the disk says (distrust).
        self._distrusted: set[str] = set()
        #: Intact successes to run again (run --force): not done, yet kept if the rerun fails.
        self._rerun: set[str] = set()

    # -- opening ----------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open (creating it if needed) a store for writing; check it is usable.

        Refuses a non-empty directory that is not a store, an unwritable one, and one with
        less than :data:`MIN_FREE_BYTES` free. Nothing is created when a check fails.
        """
        store = cls(root)
        store._check_or_init()
        store._repair_completions_tail()
        return store

    @classmethod
    def existing(cls, root: Path, *, strict: bool = False) -> Store:
        """A store for reading only (it may not exist: then it is empty).

        ``strict``: refuse a directory that exists and is not a store (not empty, no
        ``repx-store.json``), or a file.
        """
        store = cls(root)
        info = root / STORE_INFO
        if info.exists():
            _read_info(info)
        elif strict and root.exists():
            if not root.is_dir():
                raise StoreError(f"{root} is not a directory; choose another --base")
            if any(not _is_store_entry(entry.name) for entry in root.iterdir()):
                raise StoreError(
                    f"{root} is not a repx output store (no {STORE_INFO}); check --base"
                    " or the target's base"
                )
        return store

    def _check_or_init(self) -> None:
        root = self.root
        info = root / STORE_INFO
        if root.is_dir():
            if info.exists():
                _read_info(info)
            elif any(not _is_store_entry(entry.name) for entry in root.iterdir()):
                raise StoreError(
                    f"{root} is not empty and is not a repx output store (no {STORE_INFO});"
                    " choose another --base"
                )
        elif root.exists():
            raise StoreError(f"base directory {root} exists and is not a directory")
        try:
            root.mkdir(parents=True, exist_ok=True)
            _check_free_space(root)
            probe = root / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
            probe.write_bytes(b"repx")
            probe.unlink()
            for sub in (self.outputs, self.work, self.locks):
                sub.mkdir(exist_ok=True)
            if not info.exists():
                tmp = root / f".{STORE_INFO}.{os.getpid()}"
                tmp.write_text(StoreInfo().model_dump_json() + "\n")
                tmp.replace(info)
        except OSError as exc:
            raise StoreError(f"base directory {root} is not usable: {_describe(exc)}") from None

    def _repair_completions_tail(self) -> None:
        """End a torn last line with a newline so that our appends start on a fresh line."""
        if not self.completions.exists():
            return
        try:
            fd = protocol.open_completions(os.fspath(self.completions))
            try:
                protocol.end_torn_line(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StoreError(f"cannot update {self.completions}: {_describe(exc)}") from None

    def close(self) -> None:
        """Close the completions file."""
        if self._append_fd >= 0:
            os.close(self._append_fd)
            self._append_fd = -1

    # -- paths ------------------------------------------------------------------------

    def output_dir(self, job: str) -> Path:
        """``outputs/<job>``: the committed attempt of a job."""
        return self.outputs / job

    def out_dir(self, job: str) -> Path:
        """``outputs/<job>/out``: the job's outputs (exists only after success)."""
        return self.outputs / job / OUT

    def repx_dir(self, job: str) -> Path:
        """``outputs/<job>/repx``: bookkeeping of the committed attempt."""
        return self.outputs / job / REPX

    # -- reading ----------------------------------------------------------------------

    def read_index(self, only: Collection[str] | None = None) -> StoreIndex:
        """Read completions.jsonl and list outputs/ (no per-job file access).

        ``only``: the index of these jobs (``repx show job``): their records are read where
        ``completions.index`` says they are, and the log after the part it covers; their
        directories under ``outputs/`` are looked up one by one. The same facts as the
        whole index for them (the whole log is parsed when there is no usable index).
        """
        hit = None if only is None else completions_index.lookup(self.root, self.completions, only)
        if only is not None and hit is not None:
            found, covered = hit
            committed = {j for j in only if os.path.lexists(os.path.join(self.outputs, j))}
            try:
                with self.completions.open("rb") as f:
                    f.seek(covered)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            records, torn = _parse_completions(data)
            records = {**found, **{j: r for j, r in records.items() if j in only}}
        else:
            try:
                committed = set(os.listdir(self.outputs))
            except FileNotFoundError:
                committed = set()
            try:
                data = self.completions.read_bytes()
            except FileNotFoundError:
                data = b""
            records, torn = _parse_completions(data)
        if torn:
            logger.warning("%s: ignored %d unreadable line(s)", self.completions, torn)
        index = StoreIndex(records, committed, torn)
        for job in committed:
            record = records.get(job)
            if record is not None and record.get("status") == JobStatus.SUCCEEDED:
                continue
            # Committed but not recorded as succeeded: the record of the committed attempt
            # was lost between rename and append (or is not appended yet), or the record is
            # a committed failure (then it is right and there is no out/).
            if record is None or os.path.isdir(os.path.join(self.outputs, job, OUT)):
                result = self.read_result(job)
                if result is not None and (record is None or result.succeeded):
                    records[job] = result.model_dump(mode="json")
                    index.recovered.append(result)
        return index

    def index_completions(self) -> None:
        """Bring ``completions.index`` up to the end of ``completions.jsonl`` (``repx run``
        does after committing; see :mod:`repx.run.completions_index`)."""
        completions_index.update(self.root, self.completions)

    def read_result(self, job: str) -> JobResult | None:
        """The committed ``result.json`` of a job, or None."""
        path = self.repx_dir(job) / RESULT
        try:
            return JobResult.model_validate_json(path.read_bytes())
        except (OSError, ValidationError):
            return None

    def committed_success(self, job: str, outputs: Sequence[str] = ()) -> bool:
        """Check on disk whether the job has an intact successful committed attempt.

        ``outputs`` are the job's declared outputs (relative to ``out/``). A job passed to
        :meth:`distrust` is not, whatever the disk says, until an attempt is committed.
        """
        if job in self._distrusted or job in self._rerun:
            return False
        return self.damage(job, outputs) is None

    def damage(self, job: str, outputs: Sequence[str] = ()) -> str | None:
        """Why the committed success of ``job`` cannot be used (None: it can).

        The one definition of an intact success (``repx status`` and ``repx run`` use it):
        ``outputs/<job>/out`` is a real directory (not a symlink), the attempt is not
        marked FAIL, and every declared output exists. A few ``lstat`` calls.
        """
        return self.damages([(job, outputs)]).get(job)

    def damages(self, jobs: Iterable[tuple[str, Sequence[str]]]) -> dict[str, str]:
        """:meth:`damage` of many (job, declared outputs): job -> why, for damaged ones."""
        found: dict[str, str] = {}
        try:
            fd = os.open(self.outputs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            return {job: "out/ is missing" for job, _ in jobs}
        try:  # paths relative to outputs/: a short walk per call (10,000 jobs: 30,000 calls)
            for job, outputs in jobs:
                why = protocol.damage(fd, job, outputs)
                if why is not None:
                    found[job] = why
        finally:
            os.close(fd)
        return found

    def rerun(self, jobs: Iterable[str]) -> None:
        """Run ``jobs`` again although their successes are intact (``repx run --force``):
        they are not done until an attempt is committed, and a failed attempt does not
        replace their success (see :meth:`commit`)."""
        self._rerun.update(jobs)

    def distrust(self, jobs: Iterable[str]) -> None:
        """Treat the committed successes of ``jobs`` as not done (they will be rerun).

        ``repx run`` passes the jobs the state owner found damaged, so that the lifecycle
        does not adopt their committed result; committing a new attempt ends it.
        """
        self._distrusted.update(jobs)

    def attempts_in_progress(self) -> dict[str, Path]:
        """Attempt directories under ``.work`` (job -> directory), stale or live."""
        found: dict[str, Path] = {}
        try:
            names = os.listdir(self.work)
        except FileNotFoundError:
            return found
        for name in names:
            if name.startswith(".") or name.endswith(_TRASH_SUFFIX):
                continue
            job, _, _nonce = name.rpartition(".")
            if job:
                found[job] = self.work / name
        return found

    # -- locks ------------------------------------------------------------------------

    def try_lock(self, job: str) -> JobLock | None:
        """Take the job's lock without waiting; None when another holder has it."""
        fd = self._open_lock(job)
        try:
            taken = protocol.try_lock(fd)
        except OSError:
            os.close(fd)
            raise
        if not taken:
            os.close(fd)
            return None
        protocol.note_owner(fd, self.host)
        return JobLock(job, fd)

    def lock(self, job: str) -> JobLock:
        """Take the job's lock, waiting for another holder to release it."""
        fd = self._open_lock(job)
        try:
            protocol.try_lock(fd, wait=True)
        except BaseException:
            os.close(fd)
            raise
        protocol.note_owner(fd, self.host)
        return JobLock(job, fd)

    def lock_holder(self, job: str) -> str:
        """Who holds (or last held) a job's lock, as written by the holder."""
        try:
            return (self.locks / f"{job}.lock").read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def is_locked(self, job: str) -> bool:
        """True when some process holds the job's lock right now.

        Tests without taking the lock (``F_OFD_GETLK``, a read-only descriptor): nothing is
        created or written, and a concurrent :meth:`try_lock` never fails because of it.
        """
        return protocol.is_locked(os.fspath(self.locks), job)

    def _open_lock(self, job: str) -> int:
        return protocol.open_lock(os.fspath(self.locks), job)

    # -- attempts ---------------------------------------------------------------------

    def new_attempt(self, job: str) -> tuple[Path, str]:
        """Create ``.work/<job>.<nonce>/{out,repx}`` (caller holds the lock)."""
        self.discard_leftovers(job)
        work, nonce = protocol.new_attempt(os.fspath(self.work), job)
        return Path(work), nonce

    def commit(self, job: str, work: Path, result: JobResult) -> Path:
        """Write the markers and move an attempt to ``outputs/<job>`` (caller holds the lock).

        A failed attempt's ``out`` becomes ``failed-out`` first, so that ``outputs/<job>/out``
        only ever holds a successful job's outputs. Whatever was committed before (a
        failure, or a success found damaged) is replaced whole.
        """
        final = os.path.join(self.outputs, job)
        keep = not result.succeeded and self._intact_success(job)
        # A failed rerun of a job whose outputs are intact (run --force) is kept beside
        # them, unrecorded: what was computed stays the job's result.
        done = protocol.commit(
            os.fspath(work), final, result.model_dump_json(indent=1), result.succeeded, keep=keep
        )
        self._rerun.discard(job)
        if done is None:
            return Path(final, FAILED_RERUN)
        self._distrusted.discard(job)
        self.append_completion(result)
        return Path(final)

    def _intact_success(self, job: str) -> bool:
        if job in self._distrusted:
            return False
        return protocol.intact_success(os.path.join(self.outputs, job))

    def attempt_repx_dir(self, job: str, attempt: str | None) -> Path:
        """The ``repx/`` directory of one committed attempt (a kept failed rerun, else the
        job's)."""
        rerun = self.outputs / job / FAILED_RERUN / REPX
        if attempt is not None:
            kept = self._attempt_of(rerun / RESULT)
            if kept == attempt:
                return rerun
        return self.repx_dir(job)

    @staticmethod
    def _attempt_of(path: Path) -> str | None:
        try:
            return JobResult.model_validate_json(path.read_bytes()).attempt
        except (OSError, ValidationError):
            return None

    def append_completion(self, result: JobResult) -> None:
        """Append one record to completions.jsonl (one write(2) of a whole line)."""
        try:
            if self._append_fd < 0:
                self._append_fd = protocol.open_completions(os.fspath(self.completions))
            protocol.append_record(self._append_fd, result.model_dump_json())
        except OSError as exc:
            # The commit itself is done; the next index read recovers it from result.json.
            logger.warning("cannot append to %s: %s", self.completions, _describe(exc))

    def discard_attempt(self, work: Path) -> None:
        """Delete an attempt directory that will not be committed."""
        shutil.rmtree(work, ignore_errors=True)

    # -- recovery ---------------------------------------------------------------------

    def clean_stale(self) -> list[str]:
        """Delete attempt directories left by dead processes; return their jobs.

        An attempt is stale when its job's lock is free (a process holding it would be
        alive: the lock goes with the last descriptor of it). Attempts whose lock is held are
        remembered and deleted when this process later takes that lock.
        """
        try:
            names = os.listdir(self.work)
        except FileNotFoundError:
            return []
        removed: list[str] = []
        for name in sorted(names):
            if name.startswith("."):
                continue
            job = _attempt_job(name)
            lock = self.try_lock(job)
            if lock is None:
                self._busy_stale.setdefault(job, []).append(name)
                continue
            try:
                shutil.rmtree(self.work / name, ignore_errors=True)
                removed.append(job)
            finally:
                lock.release()
        if removed:
            logger.info("discarded %d stale attempt(s)", len(removed))
        return removed

    def discard_leftovers(self, job: str) -> None:
        """Delete stale attempts of ``job`` seen while it was locked (caller holds the lock)."""
        for name in self._busy_stale.pop(job, ()):
            shutil.rmtree(self.work / name, ignore_errors=True)

    def recover(self, results: Iterable[JobResult]) -> None:
        """Re-append records recovered by :meth:`read_index`."""
        for result in results:
            self.append_completion(result)


#: The values of a record's ``status``.
_STATUSES: Final = frozenset(s.value for s in JobStatus)


def _parse_completions(data: bytes) -> tuple[dict[str, dict[str, object]], int]:
    """(job -> its last record, lines ignored) of the bytes of ``completions.jsonl``.

    The lines are parsed as one JSON array (one call: 100,000 records in a fraction of the
    time of a ``json.loads`` per line); when that fails (a torn or garbled line), line by
    line, skipping the lines that are not records.
    """
    lines = [line for line in data.split(b"\n") if line.strip()]
    try:
        parsed = from_json(b"[" + b",".join(lines) + b"]") if lines else []
    except ValueError:
        parsed = None
    records: dict[str, dict[str, object]] = {}
    torn = 0
    for i, line in enumerate(lines):
        try:
            record = parsed[i] if parsed is not None else json.loads(line)
            job = record["job"]
            if record["status"] not in _STATUSES:
                raise ValueError(record["status"])
            records[job] = record
        except (ValueError, KeyError, TypeError):
            torn += 1  # a line cut by a crash (or garbage): ignore it
    return records, torn


def _attempt_job(name: str) -> str:
    base = name.removesuffix(_TRASH_SUFFIX)
    job, _, _nonce = base.rpartition(".")
    return job or base


def _read_info(path: Path) -> StoreInfo:
    try:
        return StoreInfo.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {_describe(exc)}") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise StoreError(f"{path}: {first['msg']} (expected {STORE_FORMAT})") from None


def _check_free_space(root: Path) -> None:
    stat = os.statvfs(root)
    free = stat.f_bavail * stat.f_frsize
    if free < MIN_FREE_BYTES:
        raise StoreError(
            f"base directory {root} is full ({free // 1024} KiB free,"
            f" at least {MIN_FREE_BYTES // (1024 * 1024)} MiB needed)"
        )


def _describe(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    return f"{text} ({exc.filename})" if exc.filename else text


def _is_store_entry(name: str) -> bool:
    """True for what a store being initialised (perhaps by a concurrent run) contains
    before its ``repx-store.json`` exists: another run starting on the same new base
    directory must join it, not refuse it."""
    return (
        name in {OUTPUTS, WORK, LOCKS, COMPLETIONS}
        or name.startswith(".probe-")
        or name.startswith(f".{STORE_INFO}.")
    )
