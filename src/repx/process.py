"""The only module that starts outside programs (tools and job processes).

Two kinds of calls, one place:

- a tool run to completion: :func:`run` (captured output) and :func:`stream` (stderr line
  by line), for nix, git, sbatch, bwrap probes, sha256sum...;
- job processes started without waiting: :func:`spawn` starts one in its own session,
  :func:`wait_any` waits for whichever of many exits first (pidfds polled together with a
  wake-up fd, Linux >= 5.3), :func:`reap` collects it with ``wait4`` (CPU time and peak
  memory) after killing what is left of its process group.

We use :mod:`subprocess` with argv lists rather than the ``sh`` library; the measured
reasons are in docs/architecture.md ("process layer").
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx.errors import ProcessError, ProgramNotFoundError

logger = logging.getLogger(__name__)

Arg = str | os.PathLike[str]

#: Seconds a child gets to exit after SIGINT/SIGTERM before it is killed.
_GRACE_SECONDS: Final = 5.0
#: Stderr lines a streamed call keeps for error reports.
_STREAM_TAIL_LINES: Final = 2000
#: Poll interval of :func:`wait_any` when pidfds are unavailable (old kernels).
_FALLBACK_TICK: Final = 0.01


@dataclass(frozen=True)
class ProcessResult:
    """The outcome of a finished program."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def which(program: str) -> Path | None:
    """Return the path of ``program`` on PATH, or None."""
    found = shutil.which(program)
    return Path(found) if found else None


def run(
    args: Sequence[Arg],
    *,
    check: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
) -> ProcessResult:
    """Run a program to completion, capturing stdout and stderr as text.

    ``env`` adds to (not replaces) the current environment. With ``check`` a non-zero
    exit raises :class:`ProcessError`.
    """
    argv = _argv(args)
    logger.debug("running: %s", shlex.join(argv))
    try:
        # subprocess.run kills the child when interrupted (KeyboardInterrupt included).
        completed = subprocess.run(  # noqa: S603 (an argv list, never a shell)
            argv,
            check=False,
            text=True,
            capture_output=True,
            cwd=cwd,
            env=_environ(env),
            input=input_text,
            stdin=None if input_text is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise _not_found(argv, exc) from None
    result = ProcessResult(tuple(argv), completed.returncode, completed.stdout, completed.stderr)
    logger.debug("exit status %d: %s", result.returncode, argv[0])
    if check and result.returncode != 0:
        raise ProcessError(argv, result.returncode, result.stdout, result.stderr)
    return result


def run_bytes(args: Sequence[Arg]) -> tuple[int, bytes, str]:
    """Run a program to completion; its exit status, stdout as bytes (a file's content, as
    it is) and stderr as text. Never raises for a non-zero exit."""
    argv = _argv(args)
    logger.debug("running (bytes): %s", shlex.join(argv))
    try:
        completed = subprocess.run(  # noqa: S603 (an argv list, never a shell)
            argv, check=False, capture_output=True, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError as exc:
        raise _not_found(argv, exc) from None
    return completed.returncode, completed.stdout, completed.stderr.decode("utf-8", "replace")


def stream(
    args: Sequence[Arg],
    *,
    on_stderr_line: Callable[[str], None],
    check: bool = True,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ProcessResult:
    """Run a program, handing each stderr line (without newline) to ``on_stderr_line``.

    Stdout is collected and returned; the result's ``stderr`` holds the last lines only.
    On Ctrl-C the child is interrupted, then killed if it does not exit in time.
    """
    argv = _argv(args)
    logger.debug("running (streaming stderr): %s", shlex.join(argv))
    tail: deque[str] = deque(maxlen=_STREAM_TAIL_LINES)
    # stdout goes to a temporary file so a chatty stdout can never block the child while
    # we read stderr line by line (no reader thread needed).
    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as out:
        try:
            proc = subprocess.Popen(  # noqa: S603 (an argv list, never a shell)
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                cwd=cwd,
                env=_environ(env),
            )
        except FileNotFoundError as exc:
            raise _not_found(argv, exc) from None
        try:
            assert proc.stderr is not None
            for raw in proc.stderr:
                line = raw.rstrip("\n")
                tail.append(line)
                on_stderr_line(line)
            returncode = proc.wait()
        except BaseException:
            _terminate(proc)
            raise
        finally:
            if proc.stderr is not None:
                proc.stderr.close()
        out.seek(0)
        stdout = out.read()
    result = ProcessResult(tuple(argv), returncode, stdout, "\n".join(tail))
    logger.debug("exit status %d: %s", returncode, argv[0])
    if check and returncode != 0:
        raise ProcessError(argv, returncode, stdout, result.stderr)
    return result


def _terminate(proc: subprocess.Popen[str]) -> None:
    """Stop a child we are abandoning: SIGINT (nix cleans up on it), then SIGKILL."""
    if proc.poll() is not None:
        return
    logger.debug("interrupting pid %d", proc.pid)
    try:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=_GRACE_SECONDS)
    except subprocess.TimeoutExpired:
        logger.debug("killing pid %d", proc.pid)
        proc.kill()
        proc.wait()


def _argv(args: Sequence[Arg]) -> list[str]:
    if isinstance(args, str):
        raise TypeError("process arguments must be a sequence, never a shell string")
    return [os.fspath(a) for a in args]


def _environ(extra: Mapping[str, str] | None) -> dict[str, str] | None:
    if not extra:
        return None
    env = dict(os.environ)
    env.update(extra)
    return env


def _not_found(argv: list[str], exc: FileNotFoundError) -> Exception:
    logger.debug("cannot start %s: %s", argv[0], exc)
    if exc.filename not in (None, argv[0]):
        return exc  # e.g. a missing working directory, not a missing program
    return ProgramNotFoundError(argv[0])


# -- job processes: start without waiting, wait for many, reap with rusage ---------------


@dataclass
class Child:
    """A started process (the leader of its own session and process group)."""

    pid: int
    pidfd: int
    popen: subprocess.Popen[bytes]
    #: collected by :func:`reap` (its pid may belong to another process by now)
    reaped: bool = False


@dataclass(frozen=True)
class Exit:
    """How a child ended."""

    #: exit status, or minus the signal that killed it
    returncode: int
    cpu_seconds: float
    max_rss_kib: int


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str],
    cwd: str,
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Sequence[int] = (),
) -> Child:
    """Start ``argv`` in a new session (and process group) with exactly ``env``.

    Never through a shell. The child inherits its standard streams and ``pass_fds`` only.
    """
    args = _argv(argv)
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("starting: %s", shlex.join(args))
    popen = subprocess.Popen(  # noqa: S603 (an argv list, never a shell)
        args,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
    )
    try:
        pidfd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        pidfd = -1
    return Child(popen.pid, pidfd, popen)


def interactive(argv: Sequence[str], *, env: dict[str, str], cwd: str) -> int:
    """Run a program in the foreground on this terminal (``repx debug-run``'s shell) with
    exactly ``env``; return its exit status.

    The program shares the terminal's process group, so Ctrl-C reaches it; this process
    ignores SIGINT until it has exited (as a shell does for its foreground job).
    """
    args = _argv(argv)
    logger.debug("running interactively: %s", shlex.join(args))
    try:
        popen = subprocess.Popen(args, env=env, cwd=cwd)  # noqa: S603 (an argv list)
    except FileNotFoundError as exc:
        raise _not_found(args, exc) from None
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return popen.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def has_exited(child: Child) -> bool:
    """True when the child has exited (a child not reaped yet stays reapable)."""
    if child.reaped:
        return True
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def wait_any(
    children: Collection[Child], timeout: float | None, wake_fd: int | None = None
) -> list[Child]:
    """Wait until a child has exited, ``wake_fd`` is readable, or ``timeout`` (seconds).

    Returns the children that have exited (not reaped yet: call :func:`reap`).
    """
    if any(c.pidfd < 0 for c in children):
        return _wait_any_fallback(children, timeout, wake_fd)
    poller = select.poll()
    by_fd = {c.pidfd: c for c in children}
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    if wake_fd is not None:
        poller.register(wake_fd, select.POLLIN)
    millis = None if timeout is None else max(0, int(timeout * 1000))
    events = poller.poll(millis)
    return [by_fd[fd] for fd, _ in events if fd in by_fd]


def reap(child: Child) -> Exit:
    """Kill what is left of an exited child's process group, then collect its status.

    A job's processes end with the job: background processes it left behind (or a
    sandbox's init process) are killed. The group id cannot have been reused yet: the
    leader is a zombie until ``wait4``.
    """
    signal_group(child, signal.SIGKILL)
    _, status, usage = os.wait4(child.pid, 0)
    child.reaped = True
    code = os.waitstatus_to_exitcode(status)
    child.popen.returncode = code  # so that Popen never waits for it again
    if child.pidfd >= 0:
        os.close(child.pidfd)
        child.pidfd = -1
    return Exit(code, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def signal_group(child: Child, sig: signal.Signals) -> None:
    """Send ``sig`` to the child's process group (the job and everything it started)."""
    if child.reaped:
        return  # its group id may be reused
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def _wait_any_fallback(
    children: Collection[Child], timeout: float | None, wake_fd: int | None
) -> list[Child]:
    waited = 0.0
    while True:
        done = [c for c in children if has_exited(c)]
        if done:
            return done
        if wake_fd is not None and select.select([wake_fd], [], [], 0)[0]:
            return []
        if timeout is not None and waited >= timeout:
            return []
        select.select([], [], [], _FALLBACK_TICK)
        waited += _FALLBACK_TICK


# -- processes left by a dead run (crash recovery) ---------------------------------------


@dataclass(frozen=True)
class Holder:
    """A process that has a given file open."""

    pid: int
    pgid: int


def is_alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True  # no /proc: trust kill(2)
    # "pid (comm) state ...": comm may hold spaces and parentheses, the state follows the last ")".
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"


def has_env(pid: int, name: str) -> bool:
    """Whether process ``pid`` (of this user) was started with ``name`` in its environment
    (False when it is gone or cannot be read)."""
    prefix = name.encode() + b"="
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return False
    return any(entry.startswith(prefix) for entry in environ.split(b"\0"))


def holders(path: str, env_entry: str) -> list[Holder]:
    """Processes of this user with ``path`` open whose environment contains ``env_entry``.

    ``env_entry`` (``NAME=value``) tells a job's processes from anything else that might
    open the file (another repx between taking a lock and writing its owner line).
    Processes that vanish or cannot be read while we look are skipped.
    """
    try:
        target = Path(path).stat()
    except OSError:
        return []
    wanted = env_entry.encode()
    found: list[Holder] = []
    me = os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        try:
            if wanted not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                st = fd.stat()  # follows the fd's link to the open file
            except OSError:
                continue  # closed since the listing (a process opening and closing files)
            if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
                with contextlib.suppress(OSError):
                    found.append(Holder(pid, os.getpgid(pid)))
                break
    return found


def kill_groups(found: Collection[Holder], sig: signal.Signals = signal.SIGKILL) -> None:
    """Send ``sig`` (SIGKILL) to the process groups of ``found`` (never to this process's
    own group: a holder in it gets the signal alone)."""
    own = os.getpgrp()
    for pgid in sorted({h.pgid for h in found}):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if pgid == own:
                continue
            logger.debug("sending %s to process group %d", sig.name, pgid)
            os.killpg(pgid, sig)
    for holder in found:
        if holder.pgid == own:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(holder.pid, sig)


def has_open(pid: int, path: str) -> bool:
    """True when process ``pid`` (of this host) has the file ``path`` open."""
    try:
        target = Path(path).stat()
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False
    for fd in fds:
        try:
            st = fd.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            return True
    return False
