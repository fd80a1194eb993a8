"""`repx run --dry-run` on real revisions of an experiment: why each job would run."""

from __future__ import annotations

import json
import shutil

import pytest
from runlab import GitExperiment

pytestmark = pytest.mark.slow


def test_dry_run_explains_each_job_of_a_new_revision(tmp_path):
    exp = GitExperiment(tmp_path)
    experiment, repx, build = exp.root, exp.repx, exp.build
    base = tmp_path / "base"

    def plan(*args: str) -> dict[tuple[str, object], str]:
        done = repx("run", "--dry-run", "--json", "--base", str(base), *args)
        assert done.returncode == 0, done.stderr
        [summary] = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
        causes = {}
        for job in summary["plan"]:
            seed, samples = job["params"].get("seed"), job["params"].get("samples")
            key = (job["stage"], seed, samples)
            causes[key] = job["cause"]
        return causes

    build()
    assert set(plan().values()) == {"new"}
    ran = repx("run", "--runtime", "native", "--base", str(base))
    assert ran.returncode == 0, ran.stderr
    assert plan() == {}
    # a new revision: the simulate script changes and a seed is added
    stage = experiment / "nix" / "stages" / "simulate.nix"
    stage.write_text(stage.read_text().replace("print c + 0", "print c + 0  # inside count"))
    runs = experiment / "nix" / "runs" / "simulation.nix"
    runs.write_text(runs.read_text().replace("seed = [ 1 2 3 ];", "seed = [ 1 2 3 4 ];"))
    build()
    causes = plan()
    simulate = {k: v for k, v in causes.items() if k[0] == "simulate"}
    assert {v for k, v in simulate.items() if k[1] != 4} == {"script-changed"}
    assert {v for k, v in simulate.items() if k[1] == 4} == {"new-parameter"}
    assert len(simulate) == 8
    others = {k[0]: v for k, v in causes.items() if k[0] != "simulate"}
    assert others == {"aggregate": "upstream-changed", "report": "upstream-changed"}
    text = repx("run", "--dry-run", "--base", str(base))
    assert "dry run: 10 of 10 selected job(s) would run, 0 already done" in text.stderr
    assert "[script-changed] script changed (nix/stages/simulate.nix)" in text.stderr
    # the store's facts: outputs deleted by hand, and --force
    ran = repx("run", "--runtime", "native", "--base", str(base))
    assert ran.returncode == 0, ran.stderr
    listed = json.loads(repx("list", "jobs", "--json", "--base", str(base)).stdout)
    report = next(j["id"] for j in listed["jobs"] if j["stage"] == "report")
    shutil.rmtree(base / "outputs" / report / "out")
    assert plan() == {("report", None, None): "output-missing"}
    aggregate = next(j["id"] for j in listed["jobs"] if j["stage"] == "aggregate")
    forced = plan("--force", aggregate)
    assert forced[("aggregate", None, None)] == "forced"
