"""The output store's on-disk protocol, with the standard library only.

The one owner of what an attempt does to the store (the layout and commit protocol are
described in :mod:`repx.run.store`): the names, the job lock (an OFD lock), the attempt
directory, the commit (markers, ``failed-out``, the atomic replace, the completion
record), the outcome of an attempt and the fields of its record, and the test hook of
the lifecycle's phases. :mod:`repx.run.store` and :mod:`repx.run.job` build on it, and so
does :mod:`repx.run.light_task`, the SLURM task that runs a precomputed job without
importing pydantic: nothing here may import more than the standard library, and the
modules a light task does not need on its common path (ctypes, shutil, typing) are
imported where they are used.
"""

# Per-job hot path: os functions on str paths (measured ~3x cheaper than pathlib).
# ruff: noqa: PTH102, PTH103, PTH104, PTH108, PTH110, PTH112, PTH113, PTH114, PTH118, PTH123, SIM105

from __future__ import annotations

import errno
import fcntl
import os
import signal
import stat
import struct
from enum import StrEnum

TYPE_CHECKING = False  # not typing's (see the module docstring)
if TYPE_CHECKING:
    import ctypes
    from collections.abc import Sequence
    from typing import Final

COMPLETIONS: Final = "completions.jsonl"
OUTPUTS: Final = "outputs"
WORK: Final = ".work"
LOCKS: Final = "locks"
#: Names inside an attempt (and committed) directory.
OUT: Final = "out"
REPX: Final = "repx"
FAILED_OUT: Final = "failed-out"
#: A failed attempt of a job whose committed success stays (``repx run --force``).
FAILED_RERUN: Final = "failed-rerun"
RESULT: Final = "result.json"
SUCCESS_MARKER: Final = "SUCCESS"
FAIL_MARKER: Final = "FAIL"
INPUTS_JSON: Final = "inputs.json"
PARAMETERS_JSON: Final = "parameters.json"
STDOUT_LOG: Final = "stdout.log"
STDERR_LOG: Final = "stderr.log"
TRASH_SUFFIX: Final = ".trash"
#: Reason of a job stopped by a signal (or Ctrl-C) to repx.
INTERRUPTED: Final = "interrupted"
#: Bytes of the owner line written into a lock file.
_OWNER_WIDTH: Final = 120
#: ``struct flock`` (Linux): l_type, l_whence, l_start, l_len, l_pid, padded to 32 bytes.
FLOCK: Final = struct.Struct("@hhqqi4x")
#: Test hook: the lifecycle sends itself SIGTERM at this phase (see :func:`checkpoint`).
_SIGNAL_AT: Final = os.environ.get("REPX_TEST_SIGNAL_AT", "")


class JobStatus(StrEnum):
    """How an attempt to run a job ended."""

    #: exit status 0 and every declared output exists
    SUCCEEDED = "succeeded"
    #: the job ran and failed (non-zero exit, killed, or a declared output missing)
    FAILED = "failed"
    #: the job could not be started (e.g. its executable or the sandbox is unusable)
    ERROR = "error"
    #: stopped by Ctrl-C or a signal to repx
    INTERRUPTED = "interrupted"


# -- the job lock -------------------------------------------------------------------------


def open_lock(locks: str, job: str) -> int:
    """Open (creating it) ``locks/<job>.lock`` for locking."""
    path = os.path.join(locks, f"{job}.lock")
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(locks, exist_ok=True)
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)


def try_lock(fd: int, *, wait: bool = False) -> bool:
    """Take the exclusive OFD lock on the whole of ``fd``'s file (False: another holder
    has it; ``wait``: block until it is free)."""
    command = fcntl.F_OFD_SETLKW if wait else fcntl.F_OFD_SETLK
    try:
        fcntl.fcntl(fd, command, FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    except OSError as exc:
        if not wait and exc.errno in (errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def is_locked(locks: str, job: str) -> bool:
    """True when some process holds the job's lock right now (``F_OFD_GETLK`` on a
    read-only descriptor: nothing is created or written)."""
    try:
        fd = os.open(os.path.join(locks, f"{job}.lock"), os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False  # never locked here
    try:
        answer = fcntl.fcntl(fd, fcntl.F_OFD_GETLK, FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0))
    finally:
        os.close(fd)
    return bool(FLOCK.unpack(answer)[0] != fcntl.F_UNLCK)


def note_owner(fd: int, host: str) -> None:
    """Write ``pid N on HOST`` into the lock file (fixed width: one write, no truncation)."""
    owner = f"pid {os.getpid()} on {host}"[:_OWNER_WIDTH].ljust(_OWNER_WIDTH)
    try:
        os.pwrite(fd, f"{owner}\n".encode(), 0)
    except OSError:
        pass


def unlock(fd: int) -> None:
    """Unlock, then close ``fd``: the lock is free at once even when processes of the
    ended attempt still share the open file description."""
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, FLOCK.pack(fcntl.F_UNLCK, os.SEEK_SET, 0, 0, 0))
    except OSError:
        pass
    os.close(fd)


# -- attempts and the commit --------------------------------------------------------------


def new_attempt(work_root: str, job: str) -> tuple[str, str]:
    """Create ``.work/<job>.<nonce>/{out,repx}`` (the caller holds the lock)."""
    nonce = os.urandom(6).hex()  # what secrets.token_hex(6) does
    work = os.path.join(work_root, f"{job}.{nonce}")
    os.mkdir(work)
    os.mkdir(os.path.join(work, OUT))
    os.mkdir(os.path.join(work, REPX))
    return work, nonce


def intact_success(final: str) -> bool:
    """True when ``outputs/<job>`` holds a success (its marker and ``out/``)."""
    return os.path.isfile(os.path.join(final, REPX, SUCCESS_MARKER)) and os.path.isdir(
        os.path.join(final, OUT)
    )


def commit(work: str, final: str, result_json: str, succeeded: bool, *, keep: bool) -> str | None:
    """Write the markers and move the attempt ``work`` to ``final`` (caller holds the lock).

    A failed attempt's ``out`` becomes ``failed-out`` first. ``keep``: the job's intact
    success stays (a failed ``run --force`` rerun): the attempt goes to
    ``final/failed-rerun`` and None is returned (nothing to record); otherwise ``final``
    (the caller then appends the completion record).
    """
    repx = os.path.join(work, REPX)
    with open(os.path.join(repx, RESULT), "w", encoding="utf-8") as f:
        f.write(result_json + "\n")
    marker = SUCCESS_MARKER if succeeded else FAIL_MARKER
    os.close(os.open(os.path.join(repx, marker), os.O_WRONLY | os.O_CREAT, 0o644))
    if not succeeded:
        try:
            os.rename(os.path.join(work, OUT), os.path.join(work, FAILED_OUT))
        except FileNotFoundError:
            pass
        if keep:
            replace(work, os.path.join(final, FAILED_RERUN))
            return None
    replace(work, final)
    return final


def open_completions(path: str) -> int:
    """A descriptor that appends to ``completions.jsonl``."""
    return os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)


def end_torn_line(fd: int) -> None:
    """End a torn last line (a writer died mid-append) with a newline, so that the next
    record starts on a line of its own (``fd`` from :func:`open_completions`)."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        os.write(fd, b"\n")


def append_record(fd: int, line: str) -> None:
    """Append one record (one write(2) of a whole line)."""
    os.write(fd, (line + "\n").encode())


def damage(outputs_fd: int, job: str, outputs: Sequence[str]) -> str | None:
    """Why the committed success of ``job`` cannot be used (None: it can); paths relative
    to the ``outputs/`` directory open as ``outputs_fd`` (a few ``lstat`` calls)."""
    out = f"{job}/{OUT}"
    try:
        mode = os.lstat(out, dir_fd=outputs_fd).st_mode
    except FileNotFoundError:
        return "out/ is missing"
    except OSError as exc:
        return f"out/ cannot be read ({describe(exc)})"
    if stat.S_ISLNK(mode):
        return "out/ is a symlink"
    if not stat.S_ISDIR(mode):
        return "out/ is not a directory"
    try:
        os.lstat(f"{job}/{REPX}/{FAIL_MARKER}", dir_fd=outputs_fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        return f"its markers cannot be read ({describe(exc)})"
    else:
        return "its committed attempt is marked FAIL"
    for rel in outputs:
        try:
            os.stat(f"{out}/{rel}", dir_fd=outputs_fd)  # follows links, as the job's check does
        except OSError:
            return f"missing output {rel}"
    return None


#: renameat2(2) flag: exchange the two paths atomically.
_RENAME_EXCHANGE: Final = 2
_AT_FDCWD: Final = -100


def replace(source: str, target: str) -> None:
    """Move the directory ``source`` to ``target``, replacing what is there in one step."""
    try:
        os.rename(source, target)
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
            raise
    # Something is committed there: exchange the two (the old one is never missing), then
    # delete the old one, now at ``source``.
    if not _exchange(source, target):
        # no renameat2 here (old kernel, some network file systems): move it aside first
        trash = f"{source}{TRASH_SUFFIX}"
        os.rename(target, trash)
        os.rename(source, target)
        source = trash
    if os.path.isdir(source) and not os.path.islink(source):
        import shutil  # noqa: PLC0415 (see the module docstring)

        shutil.rmtree(source, ignore_errors=True)
    else:
        os.unlink(source)


def _exchange(a: str, b: str) -> bool:
    """Exchange two paths atomically; False when the system cannot."""
    libc = _libc()
    rename = getattr(libc, "renameat2", None) if libc is not None else None
    if rename is None:
        return False
    if rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    import ctypes  # noqa: PLC0415 (see the module docstring)

    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), b)


_LIBC: list[ctypes.CDLL | None] = []


def _libc() -> ctypes.CDLL | None:
    if not _LIBC:
        import ctypes  # noqa: PLC0415 (see the module docstring)

        try:
            _LIBC.append(ctypes.CDLL(None, use_errno=True))
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]


# -- outcome and record -------------------------------------------------------------------


def outcome(
    returncode: int | None,
    *,
    error: str | None,
    interrupted: bool,
    missing: Sequence[str] = (),
) -> tuple[JobStatus, str | None]:
    """Status and reason of an attempt: ``returncode`` None when it did not start
    (``error`` says why; none: it was stopped first), ``missing`` its declared outputs
    absent after exit status 0."""
    if returncode is None:
        if error is None and interrupted:
            return JobStatus.INTERRUPTED, f"{INTERRUPTED} before it started"
        return JobStatus.ERROR, error or "not started"
    # Stopped by repx; a job that had ended successfully when the stop came keeps its result.
    if interrupted and returncode != 0:
        return JobStatus.INTERRUPTED, INTERRUPTED
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return JobStatus.FAILED, f"killed by {name}"
    if returncode != 0:
        return JobStatus.FAILED, f"exit status {returncode}"
    if missing:
        return JobStatus.FAILED, f"declared output(s) missing: {', '.join(missing)}"
    return JobStatus.SUCCEEDED, None


def missing_outputs(work: str, outputs: Sequence[str]) -> list[str]:
    """Declared outputs (relative to ``out/``) that an attempt did not write."""
    out = os.path.join(work, OUT)
    return [rel for rel in outputs if not os.path.exists(os.path.join(out, rel))]


def checkpoint(phase: str) -> None:
    """Test hook: with ``REPX_TEST_SIGNAL_AT=<phase>`` a SIGTERM lands exactly here.

    Phases: ``waiting`` (before the lock), ``locked``, ``prepared`` (before spawn),
    ``spawned`` (after fork, before the child is registered), ``running``, ``exited``
    (the child has exited, not reaped), ``committing``.
    """
    if phase == _SIGNAL_AT:
        os.kill(os.getpid(), signal.SIGTERM)


def describe(exc: OSError) -> str:
    """An OSError in a few words, with the file it concerns."""
    text = exc.strerror or str(exc)
    return f"{text} ({exc.filename})" if exc.filename else text


def result_fields(
    job: str,
    lab_id: str,
    *,
    status: JobStatus,
    reason: str | None,
    host: str,
    runtime: str,
    start: float,
    end: float,
    attempt: str,
    exit_code: int | None,
    cpu_seconds: float | None,
    max_rss_kib: int | None,
    impure: Sequence[str],
) -> dict[str, object]:
    """The fields of an attempt's record (``result.json``, a line of completions.jsonl),
    in the order :class:`repx.run.store_models.JobResult` declares them."""
    return {
        "job": job,
        "status": status.value,
        "exit_code": exit_code,
        "reason": reason,
        "start": start,
        "end": end,
        "host": host,
        "runtime": runtime,
        "lab_id": lab_id,
        "attempt": attempt,
        "cpu_seconds": None if cpu_seconds is None else round(cpu_seconds, 6),
        "max_rss_kib": max_rss_kib,
        "impure": list(impure),
    }
