"""The only module that starts outside programs.

We use :mod:`subprocess` with argv lists rather than the ``sh`` library: ``sh`` runs
commands on a pseudo-terminal by default (nix then switches to its interactive progress
output), its API is untyped (``Any`` would leak through mypy strict), it starts helper
threads per call, and we need exact control over killing the child on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
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
