"""Crash safety: `kill -9` of `repx run` at random moments, then resume; concurrent runs."""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import threading
import time

import pytest
from runlab import (
    assert_store_consistent,
    build_lab,
    completions,
    repx,
    repx_argv,
    run_jobs,
    success_counts,
)

from labfactory import RunSpec, StageSpec, write_lab
from repx.run.store import Store

pytestmark = pytest.mark.slow

TRIALS = 5


@pytest.fixture(scope="module")
def lab():
    return build_lab("pipeline")


def _tokens(base, jobs):
    """job -> the token its committed successful execution wrote."""
    found = {}
    for job in jobs:
        token = base / "outputs" / job / "out" / "token"
        if token.exists():
            found[job] = token.read_text()
    return found


def _wait_unlocked(base, jobs, timeout=30.0):
    """Orphaned native jobs of a killed repx hold their lock until they end: let them."""
    deadline = time.monotonic() + timeout
    store = Store(base)
    for job in jobs:
        while store.is_locked(job):  # tests the lock without taking it
            assert time.monotonic() < deadline, f"{job} stays locked"
            time.sleep(0.05)


def test_kill_9_at_random_moments_then_resume(lab, tmp_path):
    rng = random.Random(5)  # reproducible "random" moments
    base = tmp_path / "base"
    jobs = run_jobs(lab, "sweep")
    work = [j for j in jobs if j.endswith("-work")]
    seen_tokens: dict[str, str] = {}
    for trial in range(TRIALS):
        runtime = "native" if trial % 2 == 0 else "bwrap"
        proc = subprocess.Popen(
            repx_argv(
                "run", "sweep", "--lab", lab, "--base", base, "-j", "2", "--runtime", runtime
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.15, 0.9))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _wait_unlocked(base, jobs)
        # Nothing partial is visible, and committed outputs never change afterwards.
        assert_store_consistent(base, lab)
        tokens = _tokens(base, work)
        for job, token in seen_tokens.items():
            assert tokens.get(job) == token, f"trial {trial}: {job} was re-executed"
        seen_tokens = tokens

    resumed = repx("run", "sweep", "--lab", lab, "--base", base, "--json")
    assert resumed.returncode == 0, resumed.stderr
    started = {e["job"] for e in resumed.events() if e["event"] == "started"}
    assert not started & set(seen_tokens), "a job that had succeeded ran again"
    assert not list((base / ".work").iterdir()), "stale attempts were not discarded"
    assert_store_consistent(base, lab)
    final = _tokens(base, work)
    assert set(final) == set(work)
    for job, token in seen_tokens.items():
        assert final[job] == token
    # Each job succeeded exactly once over all the trials and the resume.
    assert success_counts(base) == dict.fromkeys(jobs, 1)
    total = next(j for j in jobs if j.endswith("-total"))
    assert (base / "outputs" / total / "out" / "total.txt").read_text() == "36\n"


def test_interrupt_records_running_jobs_as_interrupted(lab, tmp_path):
    base = tmp_path / "base"
    proc = subprocess.Popen(
        repx_argv("run", "sweep", "--lab", lab, "--base", base, "-j", "2", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until jobs run
        if '"event":"started"' in line:
            break
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    interrupted = [r for r in completions(base) if r["status"] == "interrupted"]
    assert interrupted, out
    assert '"interrupted":true' in out
    assert_store_consistent(base, lab)
    assert not list((base / ".work").iterdir())
    resumed = repx("run", "sweep", "--lab", lab, "--base", base)
    assert resumed.returncode == 0, resumed.stderr
    assert set(success_counts(base).values()) == {1}


def test_two_concurrent_runs_share_the_work(lab, tmp_path):
    base = tmp_path / "base"
    argv = repx_argv("run", "sweep", "--lab", lab, "--base", base, "-j", "2", "--json")
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    jobs = run_jobs(lab, "sweep")
    # No job ran twice: one successful execution each, the other run used its result.
    assert success_counts(base) == dict.fromkeys(jobs, 1)
    started = [line for out, _ in outputs for line in out.splitlines() if '"started"' in line]
    assert len(started) == len(jobs)
    assert_store_consistent(base, lab)
    assert os.listdir(base / ".work") == []


# -- kill -9 never leaves two attempts of one job running -----------------------------

KILL_TRIALS = 6
TICKS = 30


def _stamping_lab(root):
    """A sweep of 4 jobs of ~1.5 s; each attempt appends ``start``/``tick``/``end`` lines
    (with its ``<job>.<nonce>``) to a FIFO outside the store: the lines arrive in the
    order they were written, by every attempt, orphans included (under bwrap too: the
    FIFO's directory is bound read-only with --mount-path, and a FIFO there stays
    writable)."""
    (root / "stamps").mkdir(parents=True)
    fifo = root / "stamps" / "fifo"  # outside the lab (every lab entry is checked)
    script = (
        "a=${out%/out}; a=${a##*/}\n"
        f'echo "start $a" > {fifo}\n'
        "i=0\n"
        f'while [ $i -lt {TICKS} ]; do echo "tick $a" > {fifo}; sleep 0.05; i=$((i+1)); done\n'
        f'echo "end $a" > {fifo}\n'
        'cat "$params" > "$out/result.json"'
    )
    runs = (
        RunSpec(
            "stamps",
            parameters={"seed": [1, 2, 3, 4]},
            stages=(StageSpec("tick", params=("seed",), script=script),),
        ),
    )
    factory = write_lab(root / "lab", runs, static_tools=True)  # runs in the hermetic sandbox
    os.mkfifo(fifo)
    return factory.root, fifo, factory.job_ids


class _Stamps:
    """Reads the FIFO in a thread; ``lines`` grows in arrival order."""

    def __init__(self, fifo):
        self.fd = os.open(fifo, os.O_RDWR)  # a writer of our own: never EOF, never blocks
        self.lines: list[tuple[str, str]] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        with os.fdopen(self.fd, "r", closefd=False) as f:
            for line in f:
                if line == "quit\n":
                    return
                kind, attempt = line.split()
                with self.cond:
                    self.lines.append((kind, attempt))
                    self.cond.notify_all()

    def wait_for(self, predicate, timeout=60.0):
        with self.cond:
            assert self.cond.wait_for(lambda: predicate(self.lines), timeout), self.lines[-5:]

    def close(self):
        os.write(self.fd, b"quit\n")
        self.thread.join(10)
        os.close(self.fd)


def _job_processes(jobs):
    """pid -> job of every live process carrying one of ``jobs`` as REPX_JOB_ID."""
    wanted = {f"REPX_JOB_ID={j}".encode(): j for j in jobs}
    found = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{name}/stat", "rb") as f:
                if f.read().rsplit(b")", 1)[1].split()[0] == b"Z":
                    continue
        except OSError:
            continue
        for entry in env:
            if entry in wanted:
                found[int(name)] = wanted[entry]
    return found


def _overlaps(lines):
    """Pairs of attempts of one job whose stamps interleave."""
    spans: dict[str, list[int]] = {}
    for i, (_, attempt) in enumerate(lines):
        spans.setdefault(attempt, [i, i])[1] = i
    by_job: dict[str, list[tuple[int, int, str]]] = {}
    for attempt, (first, last) in spans.items():
        by_job.setdefault(attempt.rpartition(".")[0], []).append((first, last, attempt))
    bad = []
    for attempts in by_job.values():
        attempts.sort()
        for (_, last, a), (first, _, b) in itertools.pairwise(attempts):
            if first < last:
                bad.append((a, b))
    return bad


@pytest.mark.parametrize("runtime", ["native", "bwrap"])
def test_kill_9_never_runs_two_attempts_of_a_job_at_once(tmp_path, runtime):
    if runtime == "bwrap" and shutil.which("bwrap") is None:
        pytest.skip("bwrap not installed")
    lab, fifo, jobs = _stamping_lab(tmp_path / "l")
    base = tmp_path / "base"
    stamps = _Stamps(fifo)
    common = ("--lab", lab, "--base", base, "--runtime", runtime, "--mount-path", fifo.parent)
    argv = repx_argv("run", *common, "-j", "2")
    survivors = []
    try:
        for _ in range(KILL_TRIALS):
            seen = {a for kind, a in stamps.lines if kind == "start"}
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            # the kill provably hits a running job: a new attempt has started and ticked
            stamps.wait_for(
                lambda lines, seen=seen, proc=proc: (
                    any(k == "tick" and a not in seen for k, a in lines) or proc.poll() is not None
                )
            )
            if proc.poll() is not None:
                assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
                break  # everything is done: nothing left to kill
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            survivors.append(len(_job_processes(jobs)))
        final = repx("run", *common)
        assert final.returncode == 0, final.stderr
        left = _job_processes(jobs)
        assert not left, f"job processes outlived the resume: {left}"
    finally:
        for pid in _job_processes(jobs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        stamps.close()
    assert len(survivors) >= 2, "the runs ended before they could be killed"
    overlaps = _overlaps(stamps.lines)
    print(f"{runtime}: {len(survivors)} kills, job processes alive right after each: {survivors},")
    print(f"  {len(overlaps)} pair(s) of attempts of one job overlapping")
    assert overlaps == []
    assert success_counts(base) == dict.fromkeys(jobs, 1)
    assert not list((base / ".work").iterdir())
