"""A SLURM task of one plain job without pydantic: ``python -I -S light_task.py TASKS INDEX``.

The submit host precomputed everything the job needs (:mod:`repx.run.slurm_light`: argv,
environment and working directory — the bwrap or native command line —, inputs.json,
the declared outputs, the record's fields) into the task's line of ``TASKS``; this
program, which imports the standard library and :mod:`repx.run.protocol` only, runs the
job's lifecycle exactly as :func:`repx.run.job.run_job` does: the job's OFD lock (held by
the job's processes too), the attempt directory, its logs, the job in its own session,
the outcome, ``result.json``, the markers, the atomic commit and the completion record.
SIGTERM/SIGINT at any moment end the job recorded as interrupted (a second one kills).

Whatever it does not cover it hands to the full task (``python -m repx.run.slurm_task
MANIFEST INDEX``, by ``exec`` before anything is written): a node where a precomputed
path is missing (no bwrap there, a /nix/store without the lab's paths, the lab not
visible, an upstream output the sandbox binds), a job whose lock another process holds
(the full task waits for it and ends orphans), a committed result it cannot read.
"""

# Standard library only, and as few modules as can be (no pathlib, contextlib, typing):
# ruff: noqa: PTH103, PTH109, PTH110, PTH112, PTH118, PTH120, PTH123, PTH208, SIM105

from __future__ import annotations

import json
import os
import signal
import sys
import time

if __package__ in (None, ""):  # run as a file: python -I -S .../repx/run/light_task.py
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(__file__))))

from repx.run import protocol

TYPE_CHECKING = False  # not typing's: importing typing costs a light task ~10% of its time
if TYPE_CHECKING:
    from typing import Any, NoReturn

#: The format of the tasks file (first line: the header, then one line per task).
LIGHT_FORMAT = "repx-light-tasks/1"
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


class _Fallback(Exception):
    """Hand the task to the full Python task (nothing was written)."""


class _Job:
    """The attempt in progress and the stop requests (what the signal handler sees)."""

    def __init__(self) -> None:
        self.requested = 0
        self.pid = 0  # the job's process (its group leader) while it runs
        self.exited = False
        self.interrupted = False
        self.prepared = False
        self.signalled = False

    def handle(self, signum: int, frame: object) -> None:
        """SIGTERM/SIGINT: record it; signal the job's group (SIGKILL from the second on)."""
        self.requested += 1
        if self.prepared:
            self.interrupted = True
            self.signal_job()

    def signal_job(self) -> None:
        if self.pid and not self.exited:
            self.signalled = True
            sig = signal.SIGKILL if self.requested > 1 else signal.SIGTERM
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass


def read_task(path: str, index: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the header, the task's entry) of a tasks file: two lines are parsed, not all."""
    with open(path, "rb") as f:
        header = json.loads(f.readline())
        if header.get("format") != LIGHT_FORMAT:
            raise ValueError(f"format {header.get('format')!r}, this repx reads {LIGHT_FORMAT}")
        start = f.tell()
        offset = header["offsets"][int(index)]
        if offset < 0:
            raise KeyError(f"no task {index}")
        f.seek(start + offset)
        entry = json.loads(f.readline())
    return header, entry


def _fits_here(header: dict[str, Any]) -> bool:
    """Every precomputed path the job needs exists on this node."""
    need = header["need"]
    return (
        all(os.access(p, os.X_OK) for p in need["executable"])
        and all(os.path.isdir(p) for p in need["dirs"])
        and all(os.path.exists(p) for p in need["exists"])
    )


def run(header: dict[str, Any], entry: dict[str, Any], job: _Job) -> bool:
    """The lifecycle of :func:`repx.run.job.run_job` for one precomputed job; True when it
    succeeded (now or before)."""
    base = header["base"]
    outputs = os.path.join(base, protocol.OUTPUTS)
    job_id = entry["job"]
    final = os.path.join(outputs, job_id)
    host = os.uname().nodename  # socket.gethostname() (the Store's host), without socket
    protocol.checkpoint("waiting")
    if _committed(outputs, job_id, entry["outputs"]):
        return True
    fd = protocol.open_lock(os.path.join(base, protocol.LOCKS), job_id)
    if not protocol.try_lock(fd):
        os.close(fd)
        raise _Fallback  # another holder: the full task waits (and ends orphans)
    protocol.note_owner(fd, host)
    try:
        if _committed(outputs, job_id, entry["outputs"]):
            return True
        protocol.checkpoint("locked")
        start = time.time()
        try:
            work, nonce = _prepare(base, entry)
        except OSError as exc:
            sys.stderr.write(f"repx slurm task: {job_id}: cannot prepare its directory: {exc}\n")
            return False
        job.prepared = True
        if job.requested:
            job.interrupted = True
        protocol.checkpoint("prepared")
        record = dict(start=start, attempt=nonce, host=host)
        if job.interrupted:
            return _finish(header, entry, work, final, record, exit=None, error=None, job=job)
        try:
            status = _spawn(entry, header["work_token"], work, fd, job)
        except OSError as exc:
            why = f"cannot start {entry['executable']}: {exc.strerror or exc}"
            return _finish(header, entry, work, final, record, exit=None, error=why, job=job)
        return _finish(header, entry, work, final, record, exit=status, error=None, job=job)
    finally:
        protocol.unlock(fd)


def _committed(outputs: str, job_id: str, declared: list[str]) -> bool:
    """The job's committed success is intact (as :func:`repx.run.job.committed`)."""
    try:
        dir_fd = os.open(outputs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        if protocol.damage(dir_fd, job_id, declared) is not None:
            return False
    finally:
        os.close(dir_fd)
    try:
        with open(os.path.join(outputs, job_id, protocol.REPX, protocol.RESULT), "rb") as f:
            found = json.load(f)
    except (OSError, ValueError):
        found = None
    if not isinstance(found, dict) or found.get("status") != protocol.JobStatus.SUCCEEDED:
        raise _Fallback  # a success it cannot read: the full task decides
    return True


def _prepare(base: str, entry: dict[str, Any]) -> tuple[str, str]:
    """The attempt directory with parameters.json and inputs.json (as
    :func:`repx.run.job.prepare` for a job without gathered or run inputs)."""
    work, nonce = protocol.new_attempt(os.path.join(base, protocol.WORK), entry["job"])
    try:
        out = os.path.join(work, protocol.OUT)
        repx = os.path.join(work, protocol.REPX)
        for rel in entry["outputs"]:
            parent = os.path.dirname(rel)
            if parent:
                os.makedirs(os.path.join(out, parent), exist_ok=True)
        with (
            open(entry["parameters_file"], "rb") as src,
            open(os.path.join(repx, protocol.PARAMETERS_JSON), "wb") as dst,
        ):
            dst.write(src.read())
        with open(os.path.join(repx, protocol.INPUTS_JSON), "w", encoding="utf-8") as f:
            f.write(json.dumps(entry["inputs"], indent=1, sort_keys=True) + "\n")
    except BaseException:
        import shutil  # noqa: PLC0415 (only on this path)

        shutil.rmtree(work, ignore_errors=True)
        raise
    return work, nonce


def _spawn(
    entry: dict[str, Any], token: str, work: str, lock_fd: int, job: _Job
) -> tuple[int, float, int]:
    """Run the job in its own session, its output in the attempt's logs, the lock's
    descriptor inherited; (exit status or -signal, CPU seconds, max RSS KiB)."""
    argv = [a.replace(token, work) for a in entry["argv"]]
    env = {k: v.replace(token, work) for k, v in entry["env"].items()}
    cwd = entry["cwd"].replace(token, work)
    repx = os.path.join(work, protocol.REPX)
    out_fd = os.open(os.path.join(repx, protocol.STDOUT_LOG), _LOG_FLAGS, 0o644)
    err_fd = os.open(os.path.join(repx, protocol.STDERR_LOG), _LOG_FLAGS, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    here = os.getcwd()
    try:
        _close_on_exec(lock_fd)
        os.set_inheritable(lock_fd, True)
        os.chdir(cwd)
        job.pid = os.posix_spawn(
            argv[0],
            argv,
            env,
            setsid=True,
            # as subprocess's restore_signals: Python ignores these, the job must not
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            file_actions=[
                (os.POSIX_SPAWN_DUP2, null_fd, 0),
                (os.POSIX_SPAWN_DUP2, out_fd, 1),
                (os.POSIX_SPAWN_DUP2, err_fd, 2),
            ],
        )
    finally:
        os.chdir(here)
        os.set_inheritable(lock_fd, False)
        for fd in (out_fd, err_fd, null_fd):
            os.close(fd)
    protocol.checkpoint("spawned")
    if job.requested and not job.signalled:  # the stop came while we were starting it
        job.interrupted = True
        job.signal_job()
    protocol.checkpoint("running")
    os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOWAIT)
    job.exited = True
    protocol.checkpoint("exited")
    # What is left of its group ends with it (as repx.process.reap), then its status.
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, status, usage = os.wait4(job.pid, 0)
    job.pid = 0
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _close_on_exec(keep: int) -> None:
    """Descriptors this process inherited (from SLURM) stay out of the job, as
    subprocess's ``close_fds``: only its standard streams and the lock's pass."""
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd != keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory's own descriptor, closed by now


def _finish(
    header: dict[str, Any],
    entry: dict[str, Any],
    work: str,
    final: str,
    record: dict[str, Any],
    *,
    exit: tuple[int, float, int] | None,
    error: str | None,
    job: _Job,
) -> bool:
    """Decide the outcome, write result.json and the marker, commit, append the record
    (as :func:`repx.run.job.finish`); True when it succeeded."""
    code = exit[0] if exit is not None else None
    missing = protocol.missing_outputs(work, entry["outputs"]) if code == 0 else ()
    status, reason = protocol.outcome(
        code, error=error, interrupted=job.interrupted, missing=missing
    )
    fields = protocol.result_fields(
        entry["job"],
        entry["lab_id"],
        status=status,
        reason=reason,
        host=record["host"],
        runtime=entry["runtime"],
        start=record["start"],
        end=time.time(),
        attempt=record["attempt"],
        exit_code=code,
        cpu_seconds=exit[1] if exit is not None else None,
        max_rss_kib=exit[2] if exit is not None else None,
        impure=entry["impure"],
    )
    protocol.checkpoint("committing")
    succeeded = status is protocol.JobStatus.SUCCEEDED
    try:
        if error is not None:
            with open(os.path.join(work, protocol.REPX, protocol.STDERR_LOG), "a") as log:
                log.write(f"repx: {error}\n")
        keep = not succeeded and protocol.intact_success(final)
        text = json.dumps(fields, indent=1, ensure_ascii=False)
        if protocol.commit(work, final, text, succeeded, keep=keep) is not None:
            _append(header["base"], fields)
    except OSError as exc:
        sys.stderr.write(f"repx slurm task: {entry['job']}: cannot commit: {exc}\n")
        return False
    return succeeded


def _append(base: str, fields: dict[str, Any]) -> None:
    path = os.path.join(base, protocol.COMPLETIONS)
    try:
        fd = protocol.open_completions(path)
        try:
            protocol.end_torn_line(fd)
            protocol.append_record(
                fd, json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
            )
        finally:
            os.close(fd)
    except OSError as exc:  # the commit is done; the next index read recovers the record
        sys.stderr.write(f"repx slurm task: cannot append to {path}: {exc}\n")


def _full_task(header: dict[str, Any], index: str) -> NoReturn:
    """Become the full Python task of this index (nothing of the job was written)."""
    python = header["python"]
    sys.stderr.flush()
    os.execv(python, [python, "-m", "repx.run.slurm_task", header["manifest"], index])


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: python -I -S light_task.py TASKS INDEX\n")
        return 2
    job = _Job()
    # Handlers first: a scancel at any moment from here on is recorded, never lost.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, job.handle)
    try:
        header, entry = read_task(args[0], args[1])
    except (OSError, ValueError, KeyError, IndexError) as exc:
        sys.stderr.write(f"repx slurm task: cannot read {args[0]} task {args[1]}: {exc}\n")
        return 2
    if not _fits_here(header) or not all(os.path.exists(p) for p in entry["bound"]):
        return _full_task(header, args[1])
    try:
        return 0 if run(header, entry, job) else 1
    except _Fallback:
        return _full_task(header, args[1])


if __name__ == "__main__":
    sys.exit(main())
