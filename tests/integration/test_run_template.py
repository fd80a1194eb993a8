"""`repx run` on the default template's lab, built by real nix: runtimes, resume, status, log."""

from __future__ import annotations

import json

import pytest
from runlab import (
    assert_store_consistent,
    build_lab,
    lab_jobs,
    outputs_digest,
    repx,
    run_jobs,
    success_counts,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab():
    return build_lab("template")


def test_native_and_bwrap_outputs_are_byte_identical(lab, tmp_path):
    native = repx("run", "--lab", lab, "--base", tmp_path / "native", "--runtime", "native")
    sandboxed = repx("run", "--lab", lab, "--base", tmp_path / "bwrap", "--runtime", "bwrap")
    assert native.returncode == 0, native.stderr
    assert sandboxed.returncode == 0, sandboxed.stderr
    jobs = sorted(lab_jobs(lab))
    assert len(jobs) == 8
    assert outputs_digest(tmp_path / "native", jobs) == outputs_digest(tmp_path / "bwrap", jobs)
    results = [
        json.loads((tmp_path / base / "outputs" / jobs[0] / "repx" / "result.json").read_text())
        for base in ("native", "bwrap")
    ]
    assert [r["runtime"] for r in results] == ["native", "bwrap"]
    report = next(j for j in jobs if j.endswith("-report"))
    text = (tmp_path / "native" / "outputs" / report / "out" / "report.md").read_text()
    assert text.startswith("# Estimating pi")
    assert "results: " in native.stderr


def test_second_run_does_nothing(lab, tmp_path):
    base = tmp_path / "base"
    assert repx("run", "--lab", lab, "--base", base).returncode == 0
    again = repx("run", "--lab", lab, "--base", base, "--json")
    assert again.returncode == 0, again.stderr
    events = again.events()
    assert events[0]["event"] == "plan"
    assert events[0]["to_run"] == 0 and events[0]["cached"] == 8
    assert not [e for e in events if e["event"] == "started"]
    assert set(success_counts(base).values()) == {1}
    assert_store_consistent(base, lab)


def test_store_layout_and_inputs(lab, tmp_path):
    base = tmp_path / "base"
    assert repx("run", "--lab", lab, "--base", base, "--runtime", "native").returncode == 0
    jobs = lab_jobs(lab)
    aggregate = next(j for j in jobs if j.endswith("-aggregate"))
    repx_dir = base / "outputs" / aggregate / "repx"
    assert {p.name for p in repx_dir.iterdir()} == {
        "SUCCESS",
        "gather-estimates.json",
        "inputs.json",
        "parameters.json",
        "result.json",
        "stderr.log",
        "stdout.log",
    }
    inputs = json.loads((repx_dir / "inputs.json").read_text())
    assert inputs == {"estimates": str(repx_dir / "gather-estimates.json")}
    gathered = json.loads((repx_dir / "gather-estimates.json").read_text())
    simulate = {j for j in jobs if j.endswith("-simulate")}
    assert {e["job"] for e in gathered} == simulate
    for entry in gathered:
        assert entry["path"] == str(base / "outputs" / entry["job"] / "out" / "estimate.json")
        assert entry["params"] == jobs[entry["job"]]["params"]
    assert (repx_dir / "parameters.json").read_bytes() == (
        lab / jobs[aggregate]["parameters_file"]
    ).read_bytes()
    result = json.loads((repx_dir / "result.json").read_text())
    assert result["status"] == "succeeded" and result["exit_code"] == 0
    assert result["lab_id"] == json.loads((lab / "lab/lab-metadata.json").read_text())["lab_id"]
    lines = (base / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 8
    assert not list((base / ".work").iterdir())


def test_select_one_run_runs_its_dependency_first(lab, tmp_path):
    base = tmp_path / "base"
    result = repx("run", "report", "--lab", lab, "--base", base, "--json", "-j", "1")
    assert result.returncode == 0, result.stderr
    started = [e["job"] for e in result.events() if e["event"] == "started"]
    assert len(started) == 8
    assert started[-1].endswith("-report")  # hard dependency: after every simulation job
    assert set(started[:-1]) == run_jobs(lab, "simulation")


def test_select_job_prefix_runs_only_its_upstream(lab, tmp_path):
    simulate = sorted(j for j in lab_jobs(lab) if j.endswith("-simulate"))[0]
    base = tmp_path / "base"
    result = repx("run", simulate[:6], "--lab", lab, "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    started = {e["job"] for e in result.events() if e["event"] == "started"}
    assert started == {simulate}


def test_dry_run_lists_and_runs_nothing(lab, tmp_path):
    base = tmp_path / "base"
    result = repx("run", "simulation", "--lab", lab, "--base", base, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert "7 job(s) would run" in result.stderr
    assert not base.exists()


def test_unknown_selector_lists_valid_names(lab, tmp_path):
    result = repx("run", "nope", "--lab", lab, "--base", tmp_path / "base")
    assert result.returncode == 2
    assert "unknown run, group or job 'nope'" in result.stderr
    assert "simulation, report" in result.stderr and "@all" in result.stderr
    assert not (tmp_path / "base").exists()
    group = repx("run", "@nope", "--lab", lab, "--base", tmp_path / "base")
    assert group.returncode == 2 and "groups: @all" in group.stderr


def test_status_and_log(lab, tmp_path):
    base = tmp_path / "base"
    before = repx("status", "--lab", lab, "--base", base, "--json")
    assert before.returncode == 0, before.stderr
    states = {j["id"]: j["status"] for j in json.loads(before.stdout)["jobs"]}
    assert sorted(set(states.values())) == ["pending", "waiting"]
    assert repx("run", "simulation", "--lab", lab, "--base", base).returncode == 0
    after = json.loads(repx("status", "--lab", lab, "--base", base, "--json").stdout)
    states = {j["id"]: j["status"] for j in after["jobs"]}
    assert sum(s == "succeeded" for s in states.values()) == 7
    table = repx("status", "simulation", "--lab", lab, "--base", base)
    assert "simulate" in table.stdout and "aggregate" in table.stdout
    simulate = next(j for j in states if j.endswith("-simulate"))
    log = repx("log", simulate[:8], "--base", base, "--stderr")
    assert log.returncode == 0, log.stderr
    missing = repx("log", "zzzz", "--base", base)
    assert missing.returncode == 2 and "unknown job 'zzzz'" in missing.stderr
