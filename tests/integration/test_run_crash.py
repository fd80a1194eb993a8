"""Crash safety: `kill -9` of `repx run` at random moments, then resume; concurrent runs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
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
