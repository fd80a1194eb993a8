"""process.py: the only place that starts programs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repx import process
from repx.errors import ProcessError, ProgramNotFoundError


def test_run_captures_text():
    result = process.run(
        [sys.executable, "-c", "import sys; print('out'); print('err', file=sys.stderr)"]
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "out\n", "err\n")


def test_run_check_raises_with_stderr():
    with pytest.raises(ProcessError) as info:
        process.run([sys.executable, "-c", "import sys; sys.exit('boom')"])
    assert info.value.returncode == 1
    assert info.value.stderr == "boom\n"
    assert process.run([sys.executable, "-c", "raise SystemExit(3)"], check=False).returncode == 3


def test_run_env_adds_to_environment(monkeypatch):
    monkeypatch.setenv("REPX_BASE", "kept")
    code = "import os; print(os.environ['REPX_BASE'], os.environ['REPX_EXTRA'])"
    assert process.run([sys.executable, "-c", code], env={"REPX_EXTRA": "x"}).stdout == "kept x\n"


def test_run_input_text():
    code = "import sys; print(sys.stdin.read().upper())"
    assert process.run([sys.executable, "-c", code], input_text="abc").stdout == "ABC\n"


def test_missing_program():
    with pytest.raises(ProgramNotFoundError, match="'no-such-program-repx' was not found on PATH"):
        process.run(["no-such-program-repx"])
    with pytest.raises(ProgramNotFoundError):
        process.stream(["no-such-program-repx"], on_stderr_line=print)


def test_shell_strings_are_refused():
    with pytest.raises(TypeError, match="never a shell string"):
        process.run("echo hi")


def test_stream_hands_over_stderr_lines_and_returns_stdout():
    code = (
        "import sys\n"
        "for i in range(3): print(f'line {i}', file=sys.stderr, flush=True)\n"
        "print('x' * 200000)"
    )
    lines: list[str] = []
    result = process.stream([sys.executable, "-c", code], on_stderr_line=lines.append)
    assert lines == ["line 0", "line 1", "line 2"]
    assert result.stdout == "x" * 200000 + "\n"
    assert result.stderr == "line 0\nline 1\nline 2"


def test_stream_failure_raises():
    with pytest.raises(ProcessError) as info:
        process.stream(
            [sys.executable, "-c", "import sys; sys.exit('bad')"], on_stderr_line=lambda _: None
        )
    assert info.value.stderr == "bad"


def test_stream_interrupt_stops_the_child():
    """An exception in the callback (as Ctrl-C would raise) interrupts and reaps the child."""
    code = "import os, sys, time\nprint(os.getpid(), file=sys.stderr, flush=True)\ntime.sleep(60)"
    pids: list[int] = []

    def interrupt(line: str) -> None:
        pids.append(int(line))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        process.stream([sys.executable, "-c", code], on_stderr_line=interrupt)
    with pytest.raises(ProcessLookupError):  # gone and reaped
        os.kill(pids[0], 0)


def test_argv_is_logged_at_debug_level(caplog):
    with caplog.at_level(logging.DEBUG, logger="repx.process"):
        process.run([sys.executable, "-c", "pass", "two words"])
    assert any("running:" in r.message and "'two words'" in r.message for r in caplog.records)


# -- job processes: spawn, wait_any, reap, and the crash-recovery helpers --------------


def _spawn(code, **kwargs):
    argv = [sys.executable, "-c", code]
    child = process.spawn(
        argv,
        env={"PATH": os.environ["PATH"], **kwargs.pop("env", {})},
        cwd="/",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **kwargs,
    )
    _exec_seen(child.pid, argv)
    return child


def _exec_seen(pid: int, argv: list[str]) -> None:
    """Wait until /proc shows the child after its exec: spawn may return while the child
    still has our memory, so its environ is still ours (what made a holders() test flaky)."""
    want = b"".join(a.encode() + b"\0" for a in argv)
    deadline = time.monotonic() + 30
    while True:
        try:
            seen = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return  # already gone (a quick child): nothing to wait for
        if seen == want or time.monotonic() > deadline:
            return
        time.sleep(0.001)


def test_spawn_wait_any_reap():
    quick = _spawn("import sys; sys.exit(3)")
    slow = _spawn("import time; time.sleep(30)")
    try:
        assert os.getpgid(slow.pid) == slow.pid  # its own group
        exited = []
        while not exited:
            exited = process.wait_any([quick, slow], 30)
        assert exited == [quick] and process.has_exited(quick)
        assert process.reap(quick).returncode == 3
        assert process.has_exited(quick)  # reaped: still "exited", never signalled again
        assert not process.has_exited(slow)
        assert process.wait_any([slow], 0) == []
        process.signal_group(slow, signal.SIGTERM)
        assert process.wait_any([slow], 30) == [slow]
        assert process.reap(slow).returncode == -signal.SIGTERM
    finally:
        for child in (quick, slow):
            if not child.reaped:
                process.signal_group(child, signal.SIGKILL)
                process.reap(child)


def test_holders_and_kill_groups(tmp_path):
    path = tmp_path / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        marked = _spawn("import time; time.sleep(30)", pass_fds=(fd,), env={"REPX_JOB_ID": "j"})
        unmarked = _spawn("import time; time.sleep(30)", pass_fds=(fd,))
    finally:
        os.close(fd)
    try:
        found = process.holders(str(path), "REPX_JOB_ID=j")
        assert found == [process.Holder(marked.pid, marked.pid)]  # not the unmarked one
        assert process.holders(str(path), "REPX_JOB_ID=other") == []
        assert process.is_alive(marked.pid)
        process.kill_groups(found)
        assert process.wait_any([marked], 30) == [marked]
        assert process.reap(marked).returncode == -signal.SIGKILL
        assert not process.has_exited(unmarked)
    finally:
        for child in (marked, unmarked):
            if not child.reaped:
                process.signal_group(child, signal.SIGKILL)
                process.reap(child)


def test_holders_survive_a_descriptor_closed_while_they_look(tmp_path, monkeypatch):
    """A process that opens and closes files (Python starting up) must not be skipped when
    one of its descriptors vanishes between listing /proc/PID/fd and looking at it (the real
    race is beside: test_holders_and_kill_groups)."""
    path = tmp_path / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
    try:
        holder = _spawn("import time; time.sleep(30)", pass_fds=(fd,), env={"REPX_JOB_ID": "j"})
    finally:
        os.close(fd)
    real_stat = Path.stat
    vanished = []

    def stat(self, *args, **kwargs):
        if self.parent.name == "fd" and self.parent.parent.name == str(holder.pid) and not vanished:
            vanished.append(self)
            raise FileNotFoundError(self)  # closed since the listing
        return real_stat(self, *args, **kwargs)

    try:
        monkeypatch.setattr(Path, "stat", stat)
        found = process.holders(str(path), "REPX_JOB_ID=j")
        monkeypatch.undo()
        assert vanished, "the descriptor race was not simulated"
        assert found == [process.Holder(holder.pid, holder.pid)], (found, vanished, holder.pid)
    finally:
        monkeypatch.undo()
        process.signal_group(holder, signal.SIGKILL)
        process.reap(holder)


def test_is_alive_sees_zombies_as_dead():
    child = _spawn("pass")
    try:
        while not process.wait_any([child], 30):
            pass
        assert not process.is_alive(child.pid)  # a zombie until reaped
    finally:
        process.reap(child)


def test_has_env_reads_a_live_process_environment():
    child = subprocess.Popen(
        ["sleep", "30"], env={**os.environ, "REPX_TEST_MARK": "1"}, stdin=subprocess.DEVNULL
    )
    try:
        # Popen may return before the child's exec shows in /proc (its environ is still ours)
        cmdline = Path(f"/proc/{child.pid}/cmdline")
        deadline = time.monotonic() + 30
        while not cmdline.read_bytes().startswith(b"sleep"):
            assert time.monotonic() < deadline, "sleep never started"
        assert process.has_env(child.pid, "REPX_TEST_MARK")
        assert not process.has_env(child.pid, "REPX_TEST_MAR")  # whole names only
    finally:
        child.kill()
        child.wait()
    assert not process.has_env(child.pid, "REPX_TEST_MARK")  # gone
