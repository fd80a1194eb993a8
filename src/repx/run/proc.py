"""Start job processes without waiting for them, and wait for many at once.

:mod:`repx.process` runs one program to completion; a scheduler needs non-blocking
starts and "wait for whichever of these exits first, or a timeout". This module does it
with pidfds (Linux ≥ 5.3) polled together with a wake-up fd, and reaps with ``wait4`` to
record CPU time and peak memory. (It belongs next to :mod:`repx.process`; it is kept here
until that module grows a non-blocking API.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shlex
import signal
import subprocess
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final

logger = logging.getLogger(__name__)

#: Poll interval when pidfds are unavailable (old kernels).
_FALLBACK_TICK: Final = 0.01


@dataclass
class Child:
    """A started process (the leader of its own session and process group)."""

    pid: int
    pidfd: int
    popen: subprocess.Popen[bytes]


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
) -> Child:
    """Start ``argv`` in a new session (and process group) with exactly ``env``.

    Never through a shell. The child inherits only its standard streams.
    """
    if isinstance(argv, str):
        raise TypeError("argv must be a sequence, never a shell string")
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug("starting: %s", shlex.join(argv))
    popen = subprocess.Popen(  # noqa: S603 (an argv list, never a shell)
        argv,
        env=env,
        cwd=cwd,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    try:
        pidfd = os.pidfd_open(popen.pid)
    except (AttributeError, OSError):
        pidfd = -1
    return Child(popen.pid, pidfd, popen)


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
    code = os.waitstatus_to_exitcode(status)
    child.popen.returncode = code  # so that Popen never waits for it again
    if child.pidfd >= 0:
        os.close(child.pidfd)
        child.pidfd = -1
    return Exit(code, usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def signal_group(child: Child, sig: signal.Signals) -> None:
    """Send ``sig`` to the child's process group (the job and everything it started)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)


def _wait_any_fallback(
    children: Collection[Child], timeout: float | None, wake_fd: int | None
) -> list[Child]:
    waited = 0.0
    while True:
        done = [
            c
            for c in children
            if os.waitid(os.P_PID, c.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        ]
        if done:
            return done
        if wake_fd is not None and select.select([wake_fd], [], [], 0)[0]:
            return []
        if timeout is not None and waited >= timeout:
            return []
        select.select([], [], [], _FALLBACK_TICK)
        waited += _FALLBACK_TICK
