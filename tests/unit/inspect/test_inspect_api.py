"""The Python API: repx.Lab, its runs and jobs, pandas frames, results, graphs."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

import subprocess
import sys

import networkx as nx
import pandas as pd
import pytest
from inspect_fixtures import base  # noqa: F401

import repx
from labfactory import RunSpec, StageSpec, write_lab
from repx.errors import LabError, UsageError
from storefake import record_attempt


@pytest.fixture
def lab(factory_lab, base):
    return repx.Lab.open(factory_lab.root, base=base)


def test_open_and_runs(lab, factory_lab, base):
    assert lab.lab_id == factory_lab.lab_id
    assert lab.path == factory_lab.root.resolve()
    assert lab.base == base
    assert list(lab.runs) == ["simulation", "report"]
    simulation = lab.runs["simulation"]
    assert simulation.parameters == {"seed": [1, 2, 3], "noise": [0.1, 0.5]}
    assert simulation.stages == ["simulate", "stats", "aggregate"]
    assert lab.runs["report"].depends_on == {"simulation": "hard"}
    assert len(simulation) == 13 and len(lab) == 14
    assert lab.groups == {"all": ["simulation", "report"]}
    assert repr(lab) == f"<repx.Lab {factory_lab.lab_id}: 2 runs, 14 jobs>"
    with pytest.raises(LabError):
        repx.Lab.open(factory_lab.root / "jobs")


def test_default_base_is_repx_runs_in_the_working_directory(factory_lab, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert repx.Lab.open(factory_lab.root).base == tmp_path / "repx-runs"


def test_jobs_filters(lab, factory_lab):
    assert len(lab.jobs()) == 14
    assert len(list(lab)) == 14
    simulate = lab.jobs(stage="simulate")
    assert sorted(j.id for j in simulate) == sorted(
        factory_lab.stage_jobs[("simulation", "simulate")]
    )
    seed_1 = lab.jobs(stage="simulate", seed=1)
    assert [j.params for j in seed_1] == [{"seed": 1, "noise": 0.1}, {"seed": 1, "noise": 0.5}]
    assert [j.stage for j in lab.jobs(seed=1, noise=0.5)] == ["simulate", "stats"]
    assert len(lab.jobs(seed=(1, 2))) == 8
    assert len(lab.jobs(params={"seed": {3}})) == 4
    assert lab.runs["report"].jobs()[0].stage == "plot"
    assert lab.jobs(status="pending") == simulate
    with pytest.raises(UsageError, match="unknown parameter 'sed'"):
        lab.jobs(sed=1)
    with pytest.raises(UsageError, match="unknown stage"):
        lab.jobs(stage="nope")
    with pytest.raises(UsageError, match="unknown status"):
        lab.jobs(status="done")


def test_job_properties(lab, factory_lab):
    stats = lab.jobs(stage="stats", seed=2, noise=0.1)[0]
    simulate = lab.jobs(stage="simulate", seed=2, noise=0.1)[0]
    aggregate = lab.jobs(stage="aggregate")[0]
    assert lab.job(stats.id[:9]) is stats
    assert (stats.run, stats.runs, stats.stage) == ("simulation", ["simulation"], "stats")
    assert stats.params == {}
    assert stats.effective_params == {"seed": 2, "noise": 0.1}
    assert [(i.name, i.job, i.output, i.run, i.gather) for i in stats.inputs] == [
        ("simulate_samples_csv", simulate, "samples.csv", "simulation", False)
    ]
    assert stats.upstream == [simulate]
    assert stats.downstream == [aggregate]
    assert len(aggregate.upstream) == 6
    assert stats.outputs == {"stats.json": "$out/stats.json"}
    assert stats.status == "waiting" and not stats.succeeded
    assert [t.name for t in stats.trace_params()] == ["noise", "seed"]
    assert repr(stats) == f"<repx.Job {stats.short_id} simulation/stats waiting>"
    assert stats == lab.job(stats.id) and hash(stats) == hash(stats.id)


def test_outputs_and_loading(lab, factory_lab, base):
    plot = lab.jobs(stage="plot")[0]
    simulate = lab.jobs(stage="simulate")[0]
    assert simulate.output_path("samples.csv") == base / "outputs" / simulate.id / "out/samples.csv"
    assert plot.output_path("plots/a.txt") == base / "outputs" / plot.id / "out/plots/a.txt"
    with pytest.raises(UsageError, match=r"has no output 'nope.csv' \(declared: samples.csv\)"):
        simulate.output_path("nope.csv")
    with pytest.raises(UsageError, match=r"has no 'samples.csv' yet \(status: pending"):
        simulate.load_csv("samples.csv")
    record_attempt(
        base,
        lab.lab_id,
        simulate.id,
        outputs={"samples.csv": "x,y\n1,2\n3,4\n", "extra/notes.json": '{"a": 1}'},
    )
    lab.refresh()
    assert simulate.status == "succeeded" and simulate.succeeded
    frame = simulate.load_csv("samples.csv")
    assert frame.to_dict("list") == {"x": [1, 3], "y": [2, 4]}
    assert simulate.load_json("extra/notes.json") == {"a": 1}  # not declared, but there
    stats = lab.jobs(stage="stats", seed=simulate.params["seed"], noise=simulate.params["noise"])
    assert stats[0].inputs[0].path == simulate.output_path("samples.csv")


def test_jobs_frame(lab):
    frame = lab.jobs_frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == ["id", "run", "stage", "seed", "noise", "status"]
    assert len(frame) == 14
    stats = frame[frame.stage == "stats"]
    assert sorted(zip(stats.seed, stats.noise, strict=True)) == sorted(
        (s, n) for s in (1, 2, 3) for n in (0.1, 0.5)
    )
    aggregate = frame[frame.stage == "aggregate"].iloc[0]
    assert pd.isna(aggregate.seed)
    assert set(frame.status) == {"pending", "waiting"}
    assert len(lab.jobs_frame(stage="simulate", seed=1)) == 2
    assert list(lab.jobs_frame(run="report").columns) == ["id", "run", "stage", "status"]


def test_parameter_named_like_a_column(tmp_path):
    runs = [RunSpec("r", (StageSpec("s", params=("stage",)),), {"stage": ["a", "b"]})]
    lab = repx.Lab.open(write_lab(tmp_path / "lab", runs).root, base=tmp_path / "runs")
    frame = lab.jobs_frame()
    assert list(frame.columns) == ["id", "run", "stage", "param.stage", "status"]
    assert list(frame["param.stage"]) == ["a", "b"]
    assert [j.params for j in lab.jobs(params={"stage": "b"})] == [{"stage": "b"}]


def test_graph(lab, factory_lab):
    graph = lab.graph()
    assert isinstance(graph, nx.DiGraph)
    assert graph.number_of_nodes() == 14
    assert graph.number_of_edges() == 6 + 6 + 1
    assert nx.is_directed_acyclic_graph(graph)
    assert set(lab.graph("stages").nodes) == {
        "simulation/simulate",
        "simulation/stats",
        "simulation/aggregate",
        "report/plot",
    }
    assert list(lab.graph("runs").edges) == [("simulation", "report")]
    with pytest.raises(UsageError, match="unknown level 'all'"):
        lab.graph("all")


def test_import_repx_does_not_load_the_api():
    code = "import sys, repx; print('repx.api' in sys.modules); repx.Lab; print('repx.api' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout == "False\nTrue\n"
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        repx.Nope  # noqa: B018
