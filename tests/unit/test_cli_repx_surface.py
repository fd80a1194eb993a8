"""RepX's command-line surface: the forms RepX users type work here (factory labs, no Nix)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from repx.cli import app
from storefake import record_attempt

runner = CliRunner()


def ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    assert "Traceback" not in result.output
    return result.stdout


def tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


@pytest.fixture
def lab(factory_lab, tmp_path):
    return ["--lab", str(factory_lab.root), "--base", str(tmp_path / "runs")]


def test_list_alone_lists_the_runs(lab):
    assert ok("list", *lab) == ok("list", "runs", *lab)
    assert [r[0] for r in tsv(ok("list", *lab))[1:]] == ["simulation", "report"]


def test_list_runs_run_lists_its_jobs(lab):
    assert ok("list", "runs", "report", *lab) == ok("list", "jobs", "report", *lab)
    assert [r[1:] for r in tsv(ok("list", "runs", "report", *lab))[1:]] == [["report", "plot"]]


def test_list_jobs_by_job_prefix(lab, factory_lab):
    job = factory_lab.stage_jobs[("simulation", "stats")][0]
    rows = tsv(ok("list", "jobs", job[:10], *lab))
    assert [r[0] for r in rows[1:]] == [job[:8]]
    stage_form = f"{job[:8]}-stats"
    assert tsv(ok("list", "jobs", stage_form, *lab)) == rows


def test_stage_is_a_substring_and_status_repeats(lab, factory_lab, tmp_path):
    stages = {r[2] for r in tsv(ok("list", "jobs", "-s", "at", *lab))[1:]}
    assert stages == {"simulate", "stats", "aggregate"}
    assert {r[2] for r in tsv(ok("list", "jobs", "--stage", "plo", *lab))[1:]} == {"plot"}
    done = factory_lab.stage_jobs[("simulation", "simulate")][0]
    failed = factory_lab.stage_jobs[("simulation", "simulate")][1]
    record_attempt(tmp_path / "runs", factory_lab.lab_id, done, outputs={"samples.csv": "x\n"})
    record_attempt(tmp_path / "runs", factory_lab.lab_id, failed, status="failed", exit_code=1)
    rows = tsv(ok("list", "jobs", "--status", "succeeded", "--status", "failed", *lab))
    assert sorted((r[0], r[-1]) for r in rows[1:]) == sorted(
        [(done[:8], "succeeded"), (failed[:8], "failed")]
    )


def test_group_by_stage_prints_one_table_per_stage(lab, factory_lab):
    text = ok("list", "jobs", "simulation", "-g", *lab)
    blocks = text.strip().split("\n\n")
    assert [b.splitlines()[0] for b in blocks] == ["[simulate]", "[stats]", "[aggregate]"]
    for block, stage in zip(blocks, ("simulate", "stats", "aggregate"), strict=True):
        rows = tsv(block)[1:]
        assert rows[0] == ["id", "run", "stage"]
        assert len(rows[1:]) == len(factory_lab.stage_jobs[("simulation", stage)])
        assert {r[2] for r in rows[1:]} == {stage}


def test_global_options_before_the_command(factory_lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./result: only the global option names the lab
    base = str(tmp_path / "runs")
    expected = ok("list", "jobs", "--lab", str(factory_lab.root), "--base", base)
    assert ok("-l", str(factory_lab.root), "list", "jobs", "--base", base) == expected
    assert ok("--lab", str(factory_lab.root), "list", "--base", base) == ok(
        "list", "runs", "-l", str(factory_lab.root), "--base", base
    )
    # the command's own option still wins
    other = tmp_path / "missing"
    result = runner.invoke(app, ["-l", str(factory_lab.root), "list", "jobs", "-l", str(other)])
    assert (result.exit_code, result.stderr) == (2, f"error: {other}: no such lab\n")
    result = runner.invoke(app, ["--target", "nope", "-l", str(factory_lab.root), "list"])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: unknown target 'nope' (targets: none configured)\n",
    )


def test_global_scheduler_overrides_the_target(factory_lab, tmp_path):
    # --resources is for SLURM targets only: refused on the local default target, accepted
    # once --scheduler slurm (before the command, as in RepX) makes the target a SLURM one
    resources = tmp_path / "resources.toml"
    resources.write_text("[defaults]\n")
    run = ["run", "--base", str(tmp_path / "runs"), "--resources", str(resources), "--dry-run"]
    local = runner.invoke(app, ["-l", str(factory_lab.root), *run])
    assert local.exit_code == 2 and "applies to SLURM targets only" in local.stderr
    slurm = runner.invoke(app, ["-l", str(factory_lab.root), "--scheduler", "slurm", *run])
    assert "applies to SLURM targets only" not in slurm.stderr


def test_show_output_lists_prints_and_refuses(lab, factory_lab, tmp_path):
    base = tmp_path / "runs"
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    result = runner.invoke(app, ["show", "output", plot[:8], *lab])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: job {plot[:8]}-plot has no outputs in {base}")
    assert "(status: waiting)" in result.stderr and result.stderr.count("\n") == 1
    record_attempt(base, factory_lab.lab_id, plot, outputs={"plots/a.txt": "drawn\n"})
    assert tsv(ok("show", "output", plot[:8], *lab)) == [
        ["path", "size"],
        ["plots/", "-"],
        ["plots/a.txt", "6 B"],
    ]
    listing = json.loads(ok("show", "output", plot[:8], "--json", *lab))
    assert listing["directory"] == str(base / "outputs" / plot / "out")
    assert listing["files"][1] == {"path": "plots/a.txt", "size": 6}
    assert ok("show", "output", plot, "plots/a.txt", *lab) == "drawn\n"
    assert tsv(ok("show", "output", plot, "plots", *lab))[1:] == [["a.txt", "6 B"]]
    for wrong, message in (
        ("../repx/result.json", "is outside the outputs of job"),
        ("nope", "has no output 'nope' (files: plots/, plots/a.txt)"),
    ):
        result = runner.invoke(app, ["show", "output", plot, wrong, *lab])
        assert result.exit_code == 2 and message in result.stderr, result.stderr


def test_trace_params_without_a_job_traces_every_job(lab, factory_lab):
    every = json.loads(ok("trace-params", "--json", "--lab", lab[1]))
    assert sorted(t["job"] for t in every["jobs"]) == sorted(factory_lab.job_ids)
    one = json.loads(ok("trace-params", factory_lab.job_ids[0], "--json", "--lab", lab[1]))
    assert one in every["jobs"]
    rows = tsv(ok("trace-params", "--lab", lab[1]))
    assert rows[0] == ["job", "run", "stage", "parameter", "value", "effective", "from", "depth"]
    assert len(rows) - 1 == sum(len(t["params"]) for t in every["jobs"])


def test_list_options_before_the_list_command_apply_to_it(factory_lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "runs"
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    record_attempt(base, factory_lab.lab_id, job, outputs={"samples.csv": "x\n"})
    lab = ["--lab", str(factory_lab.root), "--base", str(base)]
    assert ok("list", *lab, "jobs") == ok("list", "jobs", *lab)
    assert json.loads(ok("list", *lab, "--json", "deps", job))["job"] == job
    # ... and the command's own option still wins
    result = runner.invoke(app, ["list", *lab, "jobs", "--base", ""])
    assert result.exit_code == 2 and "is empty" in result.stderr


def test_list_groups_group(lab):
    assert tsv(ok("list", "groups", "@all", "--lab", lab[1])) == [
        ["group", "runs", "jobs"],
        ["all", "simulation, report", "14"],
    ]
    result = runner.invoke(app, ["list", "groups", "none", "--lab", lab[1]])
    assert (result.exit_code, result.stderr) == (
        2,
        "error: unknown group 'none' (groups: all)\n",
    )
