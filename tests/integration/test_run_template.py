"""`repx run` on the default template's lab, built by real nix: the example's results, runtimes,
resume, status, log; and the minimal template staying shell-only.

The default template: run ``simulation`` (a numpy Ising-model simulation, 2 seeds x 4
temperatures = 8 jobs) and run ``analysis`` after it (a pandas aggregate of the gathered sweep,
then a matplotlib plot): 10 jobs.
"""

from __future__ import annotations

import csv
import json
import struct
import subprocess
from pathlib import Path

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

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lab():
    return build_lab("template")


def _only(jobs: dict[str, dict], stage: str) -> str:
    [job] = [j for j, entry in jobs.items() if entry["stage"] == stage]
    return job


def test_the_example_aggregates_the_sweep_and_plots_a_png(lab, tmp_path):
    base = tmp_path / "base"
    result = repx("run", "--lab", lab, "--base", base)
    assert result.returncode == 0, result.stderr
    assert "10 succeeded" in result.stderr
    jobs = lab_jobs(lab)
    simulations = {j: e for j, e in jobs.items() if e["stage"] == "simulate"}
    assert set(simulations) == run_jobs(lab, "simulation")
    sweep = {(e["params"]["seed"], e["params"]["temperature"]) for e in simulations.values()}
    assert sweep == {(s, t) for s in (1, 2) for t in (1.5, 2.0, 2.3, 3.0)}

    # the aggregate: one row per simulate job, with that job's parameters (from the gather)
    summary = base / "outputs" / _only(jobs, "aggregate") / "out" / "summary.csv"
    with summary.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    params = sorted(next(iter(simulations.values()))["params"])
    assert set(rows[0]) == {*params, "magnetisation", "susceptibility", "energy", "specific_heat"}
    assert sorted(tuple(float(row[p]) for p in params) for row in rows) == sorted(
        tuple(float(e["params"][p]) for p in params) for e in simulations.values()
    )
    # physics as a sanity check: ordered well below Tc = 2.269, disordered above it
    magnetisation = [(float(r["temperature"]), float(r["magnetisation"])) for r in rows]
    assert all(m > 0.9 for t, m in magnetisation if t == 1.5)
    assert all(m < 0.3 for t, m in magnetisation if t == 3.0)

    # the plot: a PNG (signature, then the IHDR chunk with the figure's size in pixels)
    plot = base / "outputs" / _only(jobs, "plot") / "out" / "plot.png"
    data = plot.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (900, 360)
    # matplotlib got a writable config directory: no warning about HOME in the job's log
    assert "Matplotlib" not in (plot.parents[1] / "repx" / "stderr.log").read_text()


def test_native_and_bwrap_outputs_are_byte_identical(lab, tmp_path):
    native = repx("run", "--lab", lab, "--base", tmp_path / "native", "--runtime", "native")
    sandboxed = repx("run", "--lab", lab, "--base", tmp_path / "bwrap", "--runtime", "bwrap")
    assert native.returncode == 0, native.stderr
    assert sandboxed.returncode == 0, sandboxed.stderr
    jobs = sorted(lab_jobs(lab))
    assert len(jobs) == 10
    assert outputs_digest(tmp_path / "native", jobs) == outputs_digest(tmp_path / "bwrap", jobs)
    results = [
        json.loads((tmp_path / base / "outputs" / jobs[0] / "repx" / "result.json").read_text())
        for base in ("native", "bwrap")
    ]
    assert [r["runtime"] for r in results] == ["native", "bwrap"]
    assert "results: " in native.stderr


def test_second_run_does_nothing(lab, tmp_path):
    base = tmp_path / "base"
    assert repx("run", "--lab", lab, "--base", base).returncode == 0
    again = repx("run", "--lab", lab, "--base", base, "--json")
    assert again.returncode == 0, again.stderr
    events = again.events()
    assert events[0]["event"] == "plan"
    assert events[0]["to_run"] == 0 and events[0]["cached"] == 10
    assert not [e for e in events if e["event"] == "started"]
    assert set(success_counts(base).values()) == {1}
    assert_store_consistent(base, lab)


def test_store_layout_and_inputs(lab, tmp_path):
    base = tmp_path / "base"
    assert repx("run", "--lab", lab, "--base", base, "--runtime", "native").returncode == 0
    jobs = lab_jobs(lab)
    aggregate = _only(jobs, "aggregate")
    repx_dir = base / "outputs" / aggregate / "repx"
    assert {p.name for p in repx_dir.iterdir()} == {
        "SUCCESS",
        "gather-traces.json",
        "inputs.json",
        "parameters.json",
        "result.json",
        "stderr.log",
        "stdout.log",
    }
    inputs = json.loads((repx_dir / "inputs.json").read_text())
    assert inputs == {"traces": str(repx_dir / "gather-traces.json")}
    gathered = json.loads((repx_dir / "gather-traces.json").read_text())
    assert {e["job"] for e in gathered} == run_jobs(lab, "simulation")
    for entry in gathered:
        assert entry["path"] == str(base / "outputs" / entry["job"] / "out" / "trace.csv")
        assert entry["params"] == jobs[entry["job"]]["params"]
    assert (repx_dir / "parameters.json").read_bytes() == (
        lab / jobs[aggregate]["parameters_file"]
    ).read_bytes()
    result = json.loads((repx_dir / "result.json").read_text())
    assert result["status"] == "succeeded" and result["exit_code"] == 0
    assert result["lab_id"] == json.loads((lab / "lab/lab-metadata.json").read_text())["lab_id"]
    lines = (base / "completions.jsonl").read_text().splitlines()
    assert len(lines) == 10
    assert not list((base / ".work").iterdir())


def test_select_one_run_runs_its_dependency_first(lab, tmp_path):
    base = tmp_path / "base"
    result = repx("run", "analysis", "--lab", lab, "--base", base, "--json", "-j", "1")
    assert result.returncode == 0, result.stderr
    started = [e["job"] for e in result.events() if e["event"] == "started"]
    assert len(started) == 10
    # hard dependency: after every simulation job; within the run, the plot after its table
    assert [j.rsplit("-", 1)[1] for j in started[-2:]] == ["aggregate", "plot"]
    assert set(started[:-2]) == run_jobs(lab, "simulation")


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
    assert "8 job(s) would run" in result.stderr
    assert not base.exists()


def test_unknown_selector_lists_valid_names(lab, tmp_path):
    result = repx("run", "nope", "--lab", lab, "--base", tmp_path / "base")
    assert result.returncode == 2
    assert "unknown run, group or job 'nope'" in result.stderr
    assert "simulation, analysis" in result.stderr and "@all" in result.stderr
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
    assert sum(s == "succeeded" for s in states.values()) == 8
    table = repx("status", "analysis", "--lab", lab, "--base", base)
    assert "aggregate" in table.stdout and "plot" in table.stdout
    simulate = next(j for j in states if j.endswith("-simulate"))
    log = repx("log", simulate[:8], "--base", base, "--stderr")
    assert log.returncode == 0, log.stderr
    missing = repx("log", "zzzz", "--base", base)
    assert missing.returncode == 2 and "unknown job 'zzzz'" in missing.stderr


def test_minimal_template_stays_shell_only(built_lab):
    """The minimal template's lab closure has no Python (nor anything but the base tools)."""
    lab = built_lab("minimal")
    closure = subprocess.run(
        ["nix-store", "--query", "--requisites", str(lab.result.resolve())],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert closure
    assert not [p for p in closure if "python" in Path(p).name]
    stages = (lab.experiment / "nix").rglob("*")
    assert not [p for p in stages if p.suffix == ".py"]
