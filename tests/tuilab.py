"""A tiny real lab for ``repx status --watch`` and ``repx tui`` tests (no Nix).

Run ``sweep``: ``simulate`` over seeds 1, 2, 3 then ``stats`` after each; ``simulate`` with
seed 3 fails while the file ``fail_flag`` exists (so a rerun can succeed). Run ``hold``: one
``wait`` job that blocks reading a FIFO until a test writes a line into it. Jobs print
known lines to stdout and stderr. Jobs run with the native runtime (the host's tools).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from labfactory import FactoryLab, RunSpec, StageSpec, write_lab

REPX = [sys.executable, "-m", "repx"]
#: Upper bound of every wait on a condition (a hung test fails instead of hanging).
PATIENCE = 60.0

SIMULATE = """\
seed=$(jq -r .seed "$params"); flag=$(jq -r .fail_flag "$params")
echo "simulating seed $seed"
echo "seed $seed on stderr" >&2
if [ "$seed" = 3 ] && [ -e "$flag" ]; then
  echo "seed 3 is unlucky" >&2
  exit 3
fi
cat "$params" > "$out/result.json"
"""

WAIT = """\
fifo=$(jq -r .fifo "$params")
echo "waiting on the fifo"
read -r line < "$fifo"
echo "released: $line"
cat "$params" > "$out/result.json"
"""


@dataclass(frozen=True)
class TinyLab:
    """The written lab, its store and the files that steer its jobs."""

    factory: FactoryLab
    base: Path
    fail_flag: Path
    fifo: Path

    @property
    def root(self) -> Path:
        return self.factory.root

    def job(self, run: str, stage: str, index: int = 0) -> str:
        return self.factory.stage_jobs[(run, stage)][index]

    def seed_job(self, seed: int) -> str:
        """The ``simulate`` job of ``seed``."""
        for job in self.factory.stage_jobs[("sweep", "simulate")]:
            params = json.loads((self.root / "jobs" / job / "parameters.json").read_text())
            if params.get("seed") == seed:
                return job
        raise KeyError(seed)

    def run_args(self, *args: str) -> list[str]:
        return [*REPX, "run", "-l", str(self.root), "--base", str(self.base),
                "--runtime", "native", *args]  # fmt: skip

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``repx run ARGS`` to its end."""
        return subprocess.run(self.run_args(*args), capture_output=True, text=True, check=False)

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``repx run ARGS`` in the background (stop it by pid: :func:`stop`)."""
        return subprocess.Popen(
            self.run_args(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )

    def release(self, line: str = "go") -> bool:
        """Write ``line`` into the FIFO when the ``wait`` job reads it (False: no reader)."""
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return False
            raise
        try:
            os.write(fd, f"{line}\n".encode())
        finally:
            os.close(fd)
        return True


def write_tiny_lab(tmp_path: Path) -> TinyLab:
    """Write the lab; the seed-3 job fails until ``fail_flag`` is removed."""
    fail_flag = tmp_path / "fail-seed-3"
    fail_flag.write_text("")
    fifo = tmp_path / "hold.fifo"
    os.mkfifo(fifo)
    runs = (
        RunSpec(
            "sweep",
            parameters={"seed": [1, 2, 3], "fail_flag": [str(fail_flag)]},
            stages=(
                StageSpec("simulate", params=("seed", "fail_flag"), script=SIMULATE),
                StageSpec("stats", after=("simulate",)),
            ),
        ),
        RunSpec(
            "hold",
            parameters={"fifo": [str(fifo)]},
            stages=(StageSpec("wait", params=("fifo",), script=WAIT),),
        ),
    )
    factory = write_lab(tmp_path / "lab", runs)
    return TinyLab(factory, tmp_path / "runs", fail_flag, fifo)


def wait_until(condition: Callable[[], object], what: str, timeout: float = PATIENCE) -> None:
    """Poll ``condition`` until it is true (fails the test after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stop(proc: subprocess.Popen[str]) -> None:
    """End a process a test started (its whole session), by pid."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
    proc.communicate()


def end_jobs(lab: TinyLab) -> None:
    """SIGKILL what is left of the lab's job processes (found by pid through their locks)."""
    from repx import process  # noqa: PLC0415

    for job in lab.factory.job_ids:
        lock = lab.base / "locks" / f"{job}.lock"
        if lock.exists():
            process.kill_groups(process.holders(str(lock), f"REPX_JOB_ID={job}"))
