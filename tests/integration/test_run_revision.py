"""Incremental runs across lab revisions, and parameter values a shell would mangle."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runlab import build_lab, lab_jobs, repx, success_counts

pytestmark = pytest.mark.slow


def _change_seed(flake: Path) -> None:
    run = flake / "nix" / "runs" / "simulation.nix"
    text = run.read_text()
    assert "seed = [ 1 2 ];" in text
    run.write_text(text.replace("seed = [ 1 2 ];", "seed = [ 1 4 ];"))


def test_changed_parameter_reruns_exactly_the_affected_jobs(tmp_path):
    old = build_lab("sweep")
    new = build_lab("sweep", edit=_change_seed, variant="seed4")
    base = tmp_path / "base"
    assert repx("run", "--lab", old, "--base", base).returncode == 0
    result = repx("run", "--lab", new, "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    started = {e["job"] for e in result.events() if e["event"] == "started"}
    old_jobs, new_jobs = lab_jobs(old), lab_jobs(new)
    assert started == set(new_jobs) - set(old_jobs)
    # seed 4 at the 4 temperatures, and everything downstream of them
    changed = sorted(new_jobs[j]["stage"] for j in started)
    assert changed == ["aggregate", "plot", *["simulate"] * 4]
    assert all(new_jobs[j]["params"]["seed"] == 4 for j in started if j.endswith("-simulate"))
    assert set(success_counts(base).values()) == {1}
    plan = result.events()[0]
    assert plan["cached"] == 4 and plan["to_run"] == 6


def test_hostile_parameter_values_reach_the_script_intact(tmp_path):
    lab = build_lab("hostile")
    pwned = Path("/tmp/repx-hostile-pwned")
    pwned.unlink(missing_ok=True)
    for runtime in ("native", "bwrap"):
        base = tmp_path / runtime
        result = repx("run", "--lab", lab, "--base", base, "--runtime", runtime)
        assert result.returncode == 0, result.stderr
        jobs = lab_jobs(lab)
        assert len(jobs) == 13
        for job, spec in jobs.items():
            value = spec["params"]["value"]
            out = (base / "outputs" / job / "out" / "value.txt").read_bytes()
            assert out == value.encode(), (job, value)
            params = json.loads((base / "outputs" / job / "repx" / "parameters.json").read_text())
            assert params == {"value": value}
    assert not pwned.exists()
