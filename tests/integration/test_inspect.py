"""Inspection commands and the Python API on real labs built by ``repx build`` (real nix).

Labs: both templates (``built_lab``) and a sweep (the default template with 20 seeds x 3
temperatures: 60 simulate jobs, one aggregate, one plot). Expected values are computed
from the lab's JSON files directly, not through repx's models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import repx
from conftest import BuiltLab, RepxCli
from svgdag import parse_svg

pytestmark = pytest.mark.slow


# -- the lab, read independently ----------------------------------------------------------


class RawLab:
    """A lab's JSON files read with the json module."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.meta = json.loads((self.root / "lab/lab-metadata.json").read_bytes())
        self.revision = json.loads((self.root / self.meta["metadata"]).read_bytes())
        self.runs = {
            name: json.loads((self.root / entry["manifest"]).read_bytes())
            for name, entry in self.revision["runs"].items()
        }
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_run: dict[str, str] = {}
        for name in self.revision["run_order"]:
            for job_id, job in self.runs[name]["jobs"].items():
                self.jobs.setdefault(job_id, job)
                self.job_run.setdefault(job_id, name)

    def stage_nodes(self) -> set[str]:
        return {f"{r}/{s}" for r, entry in self.revision["runs"].items() for s in entry["stages"]}

    def stage_edges(self) -> set[tuple[str, str]]:
        return {
            (f"{inp['run']}/{self.jobs[inp['job']]['stage']}", f"{run}/{job['stage']}")
            for run, manifest in self.runs.items()
            for job in manifest["jobs"].values()
            for inp in job["inputs"]
        }

    def job_edges(self) -> set[tuple[str, str]]:
        return {(i["job"], j) for j, job in self.jobs.items() for i in job["inputs"]}


def tsv(text: str) -> list[list[str]]:
    return [line.split("\t") for line in text.splitlines()]


@pytest.fixture(scope="module")
def sweep_lab(
    tmp_path_factory: pytest.TempPathFactory, repx_cli: RepxCli, repx_flake_copy: Path
) -> BuiltLab:
    """The default template swept over 20 seeds and 3 temperatures, built once."""
    experiment = tmp_path_factory.mktemp("sweep") / "exp"
    repx_cli.ok("init", str(experiment), "--template", "default")
    run_file = experiment / "nix/runs/simulation.nix"
    text = run_file.read_text()
    text = text.replace("seed = [ 1 2 ];", "seed = builtins.genList (i: i + 1) 20;")
    text = text.replace("temperature = [ 1.5 2.0 2.3 3.0 ];", "temperature = [ 1.5 2.25 3.5 ];")
    assert "genList" in text and "3.5" in text, "the template's run file changed"
    run_file.write_text(text)
    stdout = repx_cli.ok("build", "--json", *repx_cli.override_args, cwd=experiment)
    return BuiltLab("sweep", experiment, experiment / "result", json.loads(stdout), repx_cli.env)


@pytest.fixture(params=["default", "minimal", "sweep"])
def real_lab(request: pytest.FixtureRequest, built_lab: Any) -> BuiltLab:
    if request.param == "sweep":
        return request.getfixturevalue("sweep_lab")
    return built_lab(request.param)


# -- listings -----------------------------------------------------------------------------


def test_list_runs(real_lab, repx_cli):
    raw = RawLab(real_lab.result)
    rows = tsv(repx_cli.ok("list", "runs", cwd=real_lab.experiment))
    assert rows[0] == ["run", "jobs", "stages", "swept", "depends on", "groups"]
    assert [r[0] for r in rows[1:]] == raw.revision["run_order"]
    for row in rows[1:]:
        entry = raw.revision["runs"][row[0]]
        assert int(row[1]) == entry["job_count"] == len(raw.runs[row[0]]["jobs"])
        assert row[2] == " → ".join(entry["stages"])
        swept = [p for p, v in raw.runs[row[0]]["parameters"].items() if len(v) > 1]
        assert row[3] == (
            ", ".join(f"{p} ({len(raw.runs[row[0]]['parameters'][p])})" for p in swept) or "-"
        )
    data = json.loads(repx_cli.ok("list", "runs", "--json", "--lab", str(real_lab.result)))
    assert data["lab_id"] == raw.meta["lab_id"]
    assert {r["name"]: r["depends_on"] for r in data["runs"]} == {
        n: e["depends_on"] for n, e in raw.revision["runs"].items()
    }
    assert all(r["status"] is None for r in data["runs"])  # nothing ran in ./repx-runs


def test_list_jobs_table_and_json(real_lab, repx_cli):
    raw = RawLab(real_lab.result)
    names = sorted({p for job in raw.jobs.values() for p in job["params"]})
    args = [a for name in names for a in ("-p", name)]
    rows = tsv(repx_cli.ok("list", "jobs", *args, cwd=real_lab.experiment))
    assert rows[0] == ["id", "run", "stage", *names]
    assert len(rows) == len(raw.jobs) + 1
    seen = set()
    for row in rows[1:]:
        matches = [j for j in raw.jobs if j.startswith(row[0])]
        assert len(matches) == 1, row
        job = raw.jobs[matches[0]]
        seen.add(matches[0])
        assert row[1:3] == [raw.job_run[matches[0]], job["stage"]]
        for name, cell in zip(names, row[3:], strict=True):
            if name in job["params"]:
                value = job["params"][name]
                assert cell == (value if isinstance(value, str) else json.dumps(value))
    assert seen == set(raw.jobs)
    data = json.loads(repx_cli.ok("list", "jobs", "--json", "--lab", str(real_lab.result)))
    assert {j["id"]: j["params"] for j in data["jobs"]} == {
        j: job["params"] for j, job in raw.jobs.items()
    }
    assert {j["status"] for j in data["jobs"]} <= {"pending", "waiting"}


def test_sweep_filters(sweep_lab, repx_cli):
    raw = RawLab(sweep_lab.result)
    args = ["list", "jobs", "simulation", "-p", "seed=7", "-p", "temperature"]
    rows = tsv(repx_cli.ok(*args, cwd=sweep_lab.experiment))
    assert [r[2:] for r in rows[1:]] == [
        ["simulate", "7", "1.5"],
        ["simulate", "7", "2.25"],
        ["simulate", "7", "3.5"],
    ]
    rows = tsv(repx_cli.ok("list", "jobs", "--stage", "simulate", cwd=sweep_lab.experiment))
    assert len(rows) == 61
    rows = tsv(
        repx_cli.ok("list", "jobs", "-p", "seed", "--stage", "aggregate", cwd=sweep_lab.experiment)
    )
    assert rows[1][3] == "{1,2,3,…}"
    aggregate = next(j for j, job in raw.jobs.items() if job["stage"] == "aggregate")
    data = json.loads(
        repx_cli.ok("trace-params", aggregate[:8], "--json", cwd=sweep_lab.experiment)
    )
    assert data["multi_valued"]["seed"] == list(range(1, 21))
    assert data["multi_valued"]["temperature"] == [1.5, 2.25, 3.5]
    seed_7 = next(p for p in data["params"] if p["name"] == "seed" and p["value"] == 7)
    assert len(seed_7["sources"]) == 3 and {s["depth"] for s in seed_7["sources"]} == {1}


def test_list_deps_and_groups(real_lab, repx_cli):
    raw = RawLab(real_lab.result)
    for job_id, job in raw.jobs.items():
        data = json.loads(
            repx_cli.ok("list", "deps", job_id, "--json", "--lab", str(real_lab.result))
        )
        assert [(d["job"], d["input"], d["output"], d["gather"]) for d in data["upstream"]] == [
            (i["job"], i["name"], i["output"], i["gather"]) for i in job["inputs"]
        ]
        readers = {
            j for j, other in raw.jobs.items() for i in other["inputs"] if i["job"] == job_id
        }
        assert {d["job"] for d in data["downstream"]} == readers
        if len(raw.jobs) > 10:
            break  # the sweep: one job is enough
    groups = tsv(repx_cli.ok("list", "groups", "--lab", str(real_lab.result)))
    assert [g[0] for g in groups[1:]] == list(raw.revision.get("groups", {}))


# -- details ------------------------------------------------------------------------------


def test_show_job_every_job(real_lab, repx_cli):
    raw = RawLab(real_lab.result)
    for job_id, job in list(raw.jobs.items())[:10]:
        data = json.loads(
            repx_cli.ok("show", "job", job_id[:12], "--json", cwd=real_lab.experiment)
        )
        assert data["id"] == job_id
        assert data["stage"] == job["stage"]
        assert data["params"] == job["params"]
        stage = raw.runs[raw.job_run[job_id]]["stages"][job["stage"]]
        assert data["script"] == stage["script"]
        assert data["stage_file"] == stage["file"]
        for path in (*data["executables"].values(), data["parameters_file"]):
            assert Path(path).is_file()
        assert json.loads(Path(data["parameters_file"]).read_text()) == job["params"]
        assert [i["job"] for i in data["inputs"]] == [i["job"] for i in job["inputs"]]
        assert [o["name"] for o in data["outputs"]] == list(job["outputs"])
        assert data["status"] in ("pending", "waiting") and data["attempt"] is None
        text = repx_cli.ok("show", "job", job_id, cwd=real_lab.experiment)
        assert f"job              {job_id}" in text.splitlines()[0]


def test_show_run(real_lab, repx_cli):
    raw = RawLab(real_lab.result)
    for name, manifest in raw.runs.items():
        data = json.loads(repx_cli.ok("show", "run", name, "--json", "--lab", str(real_lab.result)))
        assert [s["name"] for s in data["stages"]] == raw.revision["runs"][name]["stages"]
        assert sum(s["jobs"] for s in data["stages"]) == len(manifest["jobs"])
        assert data["parameters"] == manifest["parameters"]
        text = repx_cli.ok("show", "run", name, "--lab", str(real_lab.result))
        assert text.startswith(f"run         {name}\n")


# -- drawing ------------------------------------------------------------------------------


def test_viz_svg_matches_the_dag(real_lab, repx_cli, tmp_path):
    raw = RawLab(real_lab.result)
    out = tmp_path / "topology.svg"
    repx_cli.ok("viz", "--format", "svg", "--output", str(out), cwd=real_lab.experiment)
    svg = parse_svg(out.read_bytes())
    assert svg.nodes == raw.stage_nodes()
    assert svg.data_edges == raw.stage_edges()
    assert svg.clusters == {f"cluster_{r}" for r in raw.runs}
    assert svg.run_edges == {
        (dep, run) for run, e in raw.revision["runs"].items() for dep in e["depends_on"]
    }
    for source, target in svg.data_edges:
        outputs = {
            i["output"]
            for job in raw.runs[target.split("/")[0]]["jobs"].values()
            if job["stage"] == target.split("/")[1]
            for i in job["inputs"]
            if f"{i['run']}/{raw.jobs[i['job']]['stage']}" == source
        }
        label = svg.texts[f"data:{source}->{target}"][0]
        assert set(label.removesuffix(" (gather)").split(", ")) == outputs
    jobs_svg = parse_svg(repx_cli.ok("viz", "--level", "jobs", "--lab", str(real_lab.result)))
    assert jobs_svg.nodes == set(raw.jobs)
    assert jobs_svg.data_edges == raw.job_edges()
    runs_svg = parse_svg(repx_cli.ok("viz", "--level", "runs", "--lab", str(real_lab.result)))
    assert runs_svg.nodes == set(raw.runs)


def test_viz_binary_formats(built_lab, repx_cli, tmp_path):
    lab = built_lab("default")
    for fmt, magic in (("png", b"\x89PNG"), ("pdf", b"%PDF")):
        out = tmp_path / f"t.{fmt}"
        repx_cli.ok("viz", "-o", str(out), "--show-params", "--lab", str(lab.result))
        assert out.read_bytes().startswith(magic)


# -- verify -------------------------------------------------------------------------------


def test_verify(built_lab, repx_cli, tmp_path):
    lab = built_lab("default")
    proc = repx_cli.run("verify", "--lab", str(lab.result))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.endswith(": ok\n")
    copy = tmp_path / "copy"
    shutil.copytree(lab.result.resolve(), copy, symlinks=True)
    for dirpath, dirnames, _ in os.walk(copy):
        for name in dirnames:
            (Path(dirpath) / name).chmod(0o755)
    copy.chmod(0o755)
    raw = RawLab(copy)
    job = next(iter(raw.jobs))
    params = copy / raw.jobs[job]["parameters_file"]
    params.chmod(0o644)
    params.write_text('{"seed": 999}')
    (copy / "readme/README.md").unlink()
    (copy / "jobs" / job / "note").write_text("x")
    proc = repx_cli.run("verify", "--json", "--lab", str(copy))
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report["altered"] == [raw.jobs[job]["parameters_file"]]
    assert report["missing"] == ["readme/README.md"]
    assert report["extra"] == [f"jobs/{job}/note"]


# -- errors ------------------------------------------------------------------------------


def test_bad_input_is_one_line_and_exit_2(built_lab, repx_cli, tmp_path):
    lab = built_lab("default")
    raw = RawLab(lab.result)
    cases = [
        (["show", "job", "zzzz"], "error: unknown job 'zzzz'"),
        (["list", "jobs", "nope"], "error: unknown run or job 'nope' (runs: simulation, analysis;"),
        (["list", "jobs", "-p", "sed"], "error: unknown parameter 'sed'"),
        (["list", "jobs", "--stage", "xyz"], "error: no stage contains 'xyz'"),
        (["show", "run", "x"], "error: unknown run 'x'"),
    ]
    for args, start in cases:
        proc = repx_cli.run(*args, cwd=lab.experiment)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(start), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
    firsts = Counter(job[0] for job in raw.jobs)
    prefix, count = firsts.most_common(1)[0]
    if count > 1:  # 10 ids: two usually share a first character
        proc = repx_cli.run("show", "job", prefix, cwd=lab.experiment)
        assert proc.returncode == 2 and "is ambiguous" in proc.stderr
        assert proc.stderr.count("\n") == 1  # one line naming the candidates
        listed = proc.stderr.split(" jobs: ", 1)[1].split(", ")
        expected = sorted(j for j in raw.jobs if j.startswith(prefix))
        assert len(listed) == len(expected)
        assert all(j.startswith(c.split("-")[0]) for c, j in zip(listed, expected, strict=True))
    proc = repx_cli.run("list", "jobs", "--lab", str(tmp_path))
    assert (proc.returncode, proc.stderr) == (
        2,
        f"error: {tmp_path}: not a repx lab (lab/lab-metadata.json missing)\n",
    )


# -- after running ------------------------------------------------------------------------


def test_statuses_and_results_after_repx_run(built_lab, repx_cli, tmp_path):
    lab = built_lab("default")
    base = tmp_path / "runs"
    proc = repx_cli.run("run", "--base", str(base), "--runtime", "native", "--lab", str(lab.result))
    assert proc.returncode == 0, proc.stderr
    raw = RawLab(lab.result)
    where = ["--lab", str(lab.result), "--base", str(base)]
    rows = tsv(repx_cli.ok("list", "jobs", *where))
    assert rows[0][-1] == "status"
    assert {r[-1] for r in rows[1:]} == {"succeeded"}
    runs = json.loads(repx_cli.ok("list", "runs", "--json", *where))
    assert {r["name"]: r["status"]["succeeded"] for r in runs["runs"]} == {
        n: len(m["jobs"]) for n, m in raw.runs.items()
    }
    aggregate = next(j for j, job in raw.jobs.items() if job["stage"] == "aggregate")
    data = json.loads(repx_cli.ok("show", "job", aggregate, "--json", *where))
    assert data["status"] == "succeeded"
    assert data["attempt"]["exit_code"] == 0 and data["attempt"]["duration"] >= 0
    assert Path(data["output_dir"]).is_dir()
    assert {Path(p).name for p in data["logs"].values()} == {"stdout.log", "stderr.log"}
    assert all(o["exists"] for o in data["outputs"])
    svg = parse_svg(repx_cli.ok("viz", *where))
    assert set(svg.fills.values()) == {"#b8e0b0"}  # every stage succeeded: green
    # the Python API reads the same store
    code = (
        "import repx, json\n"
        f"lab = repx.Lab.open({str(lab.result)!r}, base={str(base)!r})\n"
        "agg = lab.jobs(stage='aggregate')[0]\n"
        "frame = agg.load_csv('summary.csv')\n"
        "jobs = lab.jobs_frame()\n"
        "print(json.dumps({'rows': len(frame), 'cols': list(frame.columns),"
        " 'status': sorted(set(jobs.status)), 'seeds': sorted(jobs.seed.dropna().astype(int).unique().tolist())}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=repx_cli.env, capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout)
    simulate_jobs = sum(1 for job in raw.jobs.values() if job["stage"] == "simulate")
    assert result == {
        "rows": simulate_jobs,
        "cols": [
            "temperature",
            "seed",
            "size",
            "sweeps",
            "magnetisation",
            "susceptibility",
            "energy",
            "specific_heat",
        ],
        "status": ["succeeded"],
        "seeds": [1, 2],
    }


def test_repx_cli_forms_on_a_real_lab(built_lab, repx_cli, tmp_path):
    """What RepX users type: global -l, list alone, <short>-<stage> everywhere, show output,
    run --force, debug-run, on a lab built by real nix and run in the real sandbox."""
    lab = built_lab("default")
    raw = RawLab(lab.result)
    base = tmp_path / "runs"
    glob = ["-l", str(lab.result)]
    assert repx_cli.ok(*glob, "list", "--base", str(base)) == repx_cli.ok(
        "list", "runs", "--lab", str(lab.result), "--base", str(base)
    )
    rows = tsv(repx_cli.ok(*glob, "list", "jobs", "-s", "agg", "--base", str(base)))
    [(short, stage)] = [(r[0], r[2]) for r in rows[1:]]
    aggregate = next(j for j in raw.jobs if j.startswith(short))
    pasted = f"{short}-{stage}"
    proc = repx_cli.run(*glob, "run", pasted, "--base", str(base))
    assert proc.returncode == 0, proc.stderr
    assert (
        repx_cli.ok(*glob, "show", "output", pasted, "summary.csv", "--base", str(base))
        == (base / "outputs" / aggregate / "out/summary.csv").read_text()
    )
    assert (
        repx_cli.ok(*glob, "log", pasted, "--base", str(base))
        == (base / "outputs" / aggregate / "repx/stdout.log").read_text()
    )
    before = (base / "outputs" / aggregate / "out/summary.csv").read_bytes()
    proc = repx_cli.run(*glob, "run", "--force", pasted, "--base", str(base), "--json")
    assert proc.returncode == 0, proc.stderr
    started = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [e["job"] for e in started if e["event"] == "started"] == [aggregate]
    assert (base / "outputs" / aggregate / "out/summary.csv").read_bytes() == before
    script = 'cat "$inputs" >/dev/null && "$REPX_JOB_EXECUTABLE" "$@" && cat "$out/summary.csv"'
    shown = repx_cli.ok(*glob, "debug-run", pasted, "-c", script, "--base", str(base))
    assert shown.encode() == before


def test_python_api_on_real_labs(real_lab):
    raw = RawLab(real_lab.result)
    lab = repx.Lab.open(real_lab.result, base=real_lab.experiment / "no-runs")
    assert lab.lab_id == raw.meta["lab_id"]
    assert list(lab.runs) == raw.revision["run_order"]
    frame = lab.jobs_frame()
    assert set(frame.id) == set(raw.jobs)
    for name in {p for job in raw.jobs.values() for p in job["params"]}:
        assert name in frame.columns
    graph = lab.graph()
    assert set(graph.nodes) == set(raw.jobs)
    assert set(graph.edges) == raw.job_edges()
    for job in lab.jobs():
        assert job.params == raw.jobs[job.id]["params"]
        assert [u.id for u in job.upstream] == list(
            dict.fromkeys(i["job"] for i in raw.jobs[job.id]["inputs"])
        )
