"""Failure propagation: a failing job blocks its dependents; soft and hard run dependencies."""

from __future__ import annotations

import json

import pytest
from runlab import assert_store_consistent, build_lab, lab_jobs, repx, run_jobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab():
    return build_lab("pipeline")


def _by_stage(lab, run):
    jobs = lab_jobs(lab)
    members = run_jobs(lab, run)
    return {
        "work": {j: jobs[j]["params"]["i"] for j in members if j.endswith("-work")},
        "total": next(j for j in members if j.endswith("-total")),
    }


def _failing_job(lab):
    return next(j for j, i in _by_stage(lab, "broken")["work"].items() if i == 3)


def test_stop_after_first_failure(lab, tmp_path):
    base = tmp_path / "base"
    result = repx("run", "@failing", "--lab", lab, "--base", base, "-j", "1", "--json")
    assert result.returncode == 1
    events = result.events()
    summary = events[-1]
    assert summary["event"] == "summary"
    failing = _failing_job(lab)
    [failed] = summary["failed"]
    assert failed["job"] == failing and failed["exit_code"] == 3
    assert failed["stderr_tail"] == ["work 3: failing on purpose"]
    assert failed["params"] == {"fail": 3, "i": 3, "pause": "0"}  # wherever a job is named
    assert all("i" in e["params"] for e in events if e["event"] == "started")
    assert failed["log"] == str(base / "outputs" / failing / "repx" / "stderr.log")
    # Nothing starts after the failure; what depends on it is blocked.
    order = [e["job"] for e in events if e["event"] in ("started", "blocked")]
    started = [e["job"] for e in events if e["event"] == "started"]
    assert started[-1] == failing
    blocked = {e["job"] for e in events if e["event"] == "blocked"}
    assert _by_stage(lab, "broken")["total"] in blocked
    assert run_jobs(lab, "after-hard") <= blocked
    assert summary["not_started"] == 7 - len(order)
    # The failure is committed with its logs, never as visible output.
    committed = base / "outputs" / failing
    assert (committed / "repx" / "FAIL").exists()
    assert not (committed / "out").exists()
    assert (committed / "failed-out").is_dir()
    assert_store_consistent(base, lab)
    text = repx("run", "@failing", "--lab", lab, "--base", base, "-j", "1")
    assert "failed: work fail=3 i=3 pause=0: exit 3 — work 3: failing on purpose" in text.stderr


def test_continue_on_failure_and_soft_dependency(lab, tmp_path):
    base = tmp_path / "base"
    result = repx(
        "run", "@failing", "--lab", lab, "--base", base, "--continue-on-failure", "--json"
    )
    assert result.returncode == 1
    finished = {e["job"]: e["status"] for e in result.events() if e["event"] == "finished"}
    blocked = {e["job"] for e in result.events() if e["event"] == "blocked"}
    stages = _by_stage(lab, "broken")
    failing = _failing_job(lab)
    assert finished[failing] == "failed"
    assert all(finished[j] == "succeeded" for j in stages["work"] if j != failing)
    assert blocked == {stages["total"], *run_jobs(lab, "after-hard")}
    # soft: runs once "broken" has finished, although it failed
    [soft] = run_jobs(lab, "after-soft")
    assert finished[soft] == "succeeded"
    assert (base / "outputs" / soft / "out" / "note.txt").read_text() == "soft\n"
    summary = result.events()[-1]
    assert summary["succeeded"] == 4 and summary["blocked"] == 2

    # The next run retries only the failed job (and what it blocked).
    again = repx("run", "@failing", "--lab", lab, "--base", base, "--json")
    started = {e["job"] for e in again.events() if e["event"] == "started"}
    assert started == {failing}
    attempts = [
        json.loads(line)["attempt"]
        for line in (base / "completions.jsonl").read_text().splitlines()
        if json.loads(line)["job"] == failing
    ]
    assert len(set(attempts)) == 2
    assert_store_consistent(base, lab)


def test_independent_run_unaffected(lab, tmp_path):
    base = tmp_path / "base"
    assert repx("run", "broken", "--lab", lab, "--base", base).returncode == 1
    ok = repx("run", "sweep", "--lab", lab, "--base", base, "--runtime", "native")
    assert ok.returncode == 0, ok.stderr
    total = _by_stage(lab, "sweep")["total"]
    assert (base / "outputs" / total / "out" / "total.txt").read_text() == "36\n"
