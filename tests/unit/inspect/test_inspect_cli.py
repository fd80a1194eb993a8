"""The inspection commands end to end through the CLI (factory labs, no Nix)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from labfactory import LAB_METADATA, edit_json
from repx.cli import app
from repx.inspect import models
from storefake import record_attempt
from svgdag import parse_svg

runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    assert "internal error" not in result.stderr
    return result


def ok(*args: str) -> str:
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


@pytest.fixture
def lab(factory_lab, tmp_path):
    """--lab and --base options for the factory lab (through a `result` link)."""
    link = tmp_path / "result"
    link.symlink_to(factory_lab.root)
    return ["--lab", str(link), "--base", str(tmp_path / "runs")]


def test_list_runs(lab):
    rows = tsv(ok("list", "runs", *lab))
    assert rows == [
        ["run", "jobs", "stages", "swept", "depends on", "groups"],
        ["simulation", "13", "simulate → stats → aggregate", "seed (3), noise (2)", "-", "all"],
        ["report", "1", "plot", "-", "simulation (hard)", "all"],
    ]
    data = models.RunList.model_validate_json(ok("list", "runs", "--json", *lab))
    assert [r.name for r in data.runs] == ["simulation", "report"]


def test_list_jobs_with_parameter_columns(lab, factory_lab):
    rows = tsv(ok("list", "jobs", "-p", "seed", "-p", "noise", *lab))
    assert rows[0] == ["id", "run", "stage", "seed", "noise"]
    assert len(rows) == 15
    assert [r[2] for r in rows[1:]] == ["simulate"] * 6 + ["stats"] * 6 + ["aggregate", "plot"]
    assert [(r[3], r[4]) for r in rows[1:7]] == [
        ("1", "0.1"),
        ("1", "0.5"),
        ("2", "0.1"),
        ("2", "0.5"),
        ("3", "0.1"),
        ("3", "0.5"),
    ]
    assert [(r[3], r[4]) for r in rows[7:13]] == [(r[3], r[4]) for r in rows[1:7]]
    assert rows[13][3:] == ["{1,2,3}", "{0.1,0.5}"]
    short = rows[1][0]
    assert len(short) == 8
    assert any(j.startswith(short) for j in factory_lab.job_ids)


def test_list_jobs_filters(lab):
    rows = tsv(ok("list", "jobs", "simulation", "--stage", "simulate", "-p", "seed=2", *lab))
    assert [r[1:] for r in rows[1:]] == [["simulation", "simulate", "2"]] * 2
    rows = tsv(ok("list", "jobs", "-p", "seed=1", "-p", "seed=3", "-p", "noise=0.5", *lab))
    assert [(r[2], r[3], r[4]) for r in rows[1:]] == [
        ("simulate", "1", "0.5"),
        ("simulate", "3", "0.5"),
        ("stats", "1", "0.5"),
        ("stats", "3", "0.5"),
    ]
    rows = tsv(ok("list", "jobs", "--status", "pending", *lab))
    assert rows[0][-1] == "status"
    assert {r[-1] for r in rows[1:]} == {"pending"} and len(rows) == 7
    result = invoke("list", "jobs", "--status", "failed", *lab)
    assert (result.exit_code, result.stderr) == (0, "no job matches\n")


def test_list_jobs_status_and_output_paths(lab, factory_lab, tmp_path):
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    record_attempt(tmp_path / "runs", factory_lab.lab_id, job, outputs={"samples.csv": "x\n"})
    rows = tsv(ok("list", "jobs", "--output-paths", *lab))
    assert rows[0] == ["id", "run", "stage", "status", "outputs"]
    row = next(r for r in rows if job.startswith(r[0]))
    assert row[3:] == ["succeeded", str(tmp_path / "runs/outputs" / job / "out/samples.csv")]
    data = json.loads(ok("list", "jobs", "--json", "--output-paths", *lab))
    entry = next(j for j in data["jobs"] if j["id"] == job)
    assert set(entry) == {
        "id",
        "short_id",
        "run",
        "runs",
        "stage",
        "status",
        "reason",
        "slurm_id",
        "params",
        "effective_params",
        "output_paths",
    }
    assert entry["status"] == "succeeded"
    assert set(data) == {"lab_id", "lab", "base", "columns", "jobs"}


def test_list_deps_and_groups(lab, factory_lab):
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    rows = tsv(ok("list", "deps", aggregate[:10], *lab))
    assert rows[0] == ["direction", "input", "job", "stage", "run", "output"]
    assert [r[0] for r in rows[1:]] == ["upstream"] * 6 + ["downstream"]
    assert rows[1][1] == "stats_stats_json (gather)"
    assert rows[-1][3:] == ["plot", "report", "summary.csv"]
    data = models.JobDeps.model_validate_json(ok("list", "deps", aggregate, "--json", *lab))
    assert len(data.upstream) == 6
    assert tsv(ok("list", "groups", "--lab", lab[1])) == [
        ["group", "runs", "jobs"],
        ["all", "simulation, report", "14"],
    ]


def test_show_job(lab, factory_lab, tmp_path):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]
    text = ok("show", "job", stats[:8], *lab)
    fields = dict(
        re.match(r"(\S.*?)\s{2,}(.*)", line).groups()  # type: ignore[union-attr]
        for line in text.splitlines()
        if not line.startswith(" ")
    )
    assert fields["job"] == stats
    assert fields["stage"].startswith("stats 1.0 (stages/stats.nix)")
    assert fields["parameters"] == "-"
    assert fields["inherited"].startswith("noise=")
    assert fields["inputs"].startswith("simulate_samples_csv ← ")
    assert fields["status"] == "waiting"
    data = models.JobDetails.model_validate_json(ok("show", "job", stats, "--json", *lab))
    assert data.id == stats


def test_show_run(lab):
    text = ok("show", "run", "simulation", *lab)
    assert text.splitlines()[0].split() == ["run", "simulation"]
    assert "needed by   report (hard)" in text
    table = tsv(text.split("\n\n", 1)[1])
    assert table[0] == ["stage", "jobs", "outputs", "reads"]
    assert [r[0] for r in table[1:]] == ["simulate", "stats", "aggregate"]
    data = models.RunDetails.model_validate_json(ok("show", "run", "report", "--json", *lab))
    assert data.depends_on == {"simulation": "hard"}


def test_trace_params(lab, factory_lab):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]
    rows = tsv(ok("trace-params", stats, "--lab", lab[1]))
    assert rows[0] == ["parameter", "value", "effective", "from", "depth"]
    assert [r[0] for r in rows[1:]] == ["noise", "seed"]
    assert all(r[2] == "yes" and r[4] == "1" for r in rows[1:])
    data = models.ParamTrace.model_validate_json(
        ok("trace-params", stats, "--json", "--lab", lab[1])
    )
    assert set(data.effective_params) == {"seed", "noise"}


def test_viz(lab, tmp_path):
    dot = ok("viz", "--format", "dot", *lab)
    assert dot.startswith("digraph lab {")
    out = tmp_path / "topology.svg"
    result = invoke("viz", "--output", str(out), *lab)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == f"wrote {out} (svg, stages)\n"
    svg = parse_svg(out.read_bytes())
    assert "report/plot" in svg.nodes
    assert parse_svg(ok("viz", "--level", "runs", *lab)).nodes == {"simulation", "report"}
    result = invoke("viz", "--format", "gif", *lab)
    assert result.exit_code == 2
    assert "'gif' is not one of" in result.stderr


def test_verify(factory_lab):
    result = invoke("verify", "--lab", str(factory_lab.root))
    assert result.exit_code == 0
    assert result.stdout == ""
    assert result.stderr.endswith(": ok\n")
    job = factory_lab.job_ids[0]
    (factory_lab.root / f"jobs/{job}/parameters.json").write_text("{}")
    result = invoke("verify", "--lab", str(factory_lab.root))
    assert result.exit_code == 1
    assert result.stdout == f"altered\tjobs/{job}/parameters.json\t(sha256 differs)\n"
    assert result.stderr.endswith(": 1 altered\n")
    report = models.VerifyReport.model_validate_json(
        invoke("verify", "--json", "--lab", str(factory_lab.root)).stdout
    )
    assert report.altered == [f"jobs/{job}/parameters.json"] and not report.ok


@pytest.mark.parametrize(
    "args",
    [
        ["list", "runs"],
        ["list", "jobs"],
        ["list", "groups"],
        ["show", "run", "simulation"],
        ["trace-params", "x"],
        ["viz"],
        ["verify"],
    ],
)
def test_not_a_lab(args, tmp_path):
    result = invoke(*args, "--lab", str(tmp_path))
    assert result.exit_code == 2
    assert result.stderr == (f"error: {tmp_path}: not a repx lab (lab/lab-metadata.json missing)\n")


def test_corrupted_json_and_unknown_format_name_the_file(factory_lab):
    manifest = factory_lab.manifest_path("report")
    rel = manifest.relative_to(factory_lab.root).as_posix()
    manifest.write_text(manifest.read_text()[:-20])
    result = invoke("list", "jobs", "--lab", str(factory_lab.root))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {rel}: invalid JSON")
    assert len(result.stderr.splitlines()) == 1
    edit_json(factory_lab.root / LAB_METADATA, lambda m: m.update(format="repx-lab/9"))
    result = invoke("show", "job", "x", "--lab", str(factory_lab.root))
    assert result.exit_code == 2
    assert result.stderr == (
        "error: lab/lab-metadata.json: format: unsupported format 'repx-lab/9'"
        " (this repx reads 'repx-lab/1')\n"
    )


def test_bad_names_exit_2_with_the_valid_ones(lab, factory_lab):
    result = invoke("list", "jobs", "nope", *lab)
    assert (result.exit_code, result.stderr) == (
        2,
        "error: unknown run or job 'nope' (runs: simulation, report; or a job id prefix)\n",
    )
    result = invoke("list", "jobs", "--stage", "sats", *lab)  # RepX's: a substring
    assert result.stderr == (
        "error: no stage contains 'sats' (stages: simulate, stats, aggregate, plot;"
        " did you mean 'stats'?)\n"
    )
    result = invoke("list", "jobs", "-p", "sead", *lab)
    assert result.stderr == (
        "error: unknown parameter 'sead' (parameters: seed, noise; did you mean 'seed'?)\n"
    )
    result = invoke("list", "jobs", "--status", "done", *lab)
    assert result.exit_code == 2 and "statuses: succeeded, failed" in result.stderr
    result = invoke("show", "job", "zzzzzzzzzzzzzzzz", *lab)
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: unknown job 'zzzzzzzzzzzzzzzz'")
    assert len(lines) > 1 and all(line.startswith("  ") for line in lines[1:])
    result = invoke("show", "job", "", *lab)
    assert (result.exit_code, result.stderr) == (2, "error: empty job id\n")


def test_default_lab_and_base_come_from_the_working_directory(factory_lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "result").symlink_to(factory_lab.root)
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    record_attempt(tmp_path / "repx-runs", factory_lab.lab_id, job, outputs={"samples.csv": "x\n"})
    data = json.loads(ok("list", "jobs", "--json"))
    assert data["base"] == str(tmp_path / "repx-runs")
    assert {j["id"]: j["status"] for j in data["jobs"]}[job] == "succeeded"


def test_cli_start_up_imports_no_heavy_module():
    code = (
        "import sys, repx.cli\n"
        "heavy = {'pydantic', 'rich', 'networkx', 'pandas', 'graphviz'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy"
        " or m.startswith(('repx.inspect', 'repx.api', 'repx.lab'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "[]\n"
