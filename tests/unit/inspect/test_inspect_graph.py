"""networkx graphs of a lab at the run, stage and job level."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

from inspect_fixtures import base, view  # noqa: F401

from repx.inspect.graph import Level, build_graph, summary_state
from repx.inspect.status import JobState
from storefake import record_attempt


def test_job_graph_matches_the_inputs(view, factory_lab):
    graph = build_graph(view, Level.JOBS)
    assert set(graph.nodes) == set(factory_lab.job_ids)
    expected = {(inp.job, job_id) for job_id, job in view.lab.jobs.items() for inp in job.inputs}
    assert set(graph.edges) == expected
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    edge = graph.edges[aggregate, plot]
    assert edge == {
        "inputs": ["aggregate_summary_csv"],
        "outputs": ["summary.csv"],
        "gather": True,
        "run": "simulation",
    }
    node = graph.nodes[plot]
    assert (node["run"], node["stage"], node["status"]) == ("report", "plot", "waiting")


def test_stage_graph(view):
    graph = build_graph(view, "stages")
    assert list(graph.nodes) == [
        "simulation/simulate",
        "simulation/stats",
        "simulation/aggregate",
        "report/plot",
    ]
    assert set(graph.edges) == {
        ("simulation/simulate", "simulation/stats"),
        ("simulation/stats", "simulation/aggregate"),
        ("simulation/aggregate", "report/plot"),
    }
    assert graph.edges["simulation/simulate", "simulation/stats"]["outputs"] == ["samples.csv"]
    assert not graph.edges["simulation/simulate", "simulation/stats"]["gather"]
    assert graph.edges["simulation/stats", "simulation/aggregate"]["gather"]
    assert graph.edges["simulation/aggregate", "report/plot"]["cross_run"]
    assert graph.nodes["simulation/simulate"]["jobs"] == 6
    assert graph.nodes["simulation/simulate"]["status"] == "pending"


def test_run_graph(view):
    graph = build_graph(view, Level.RUNS)
    assert list(graph.nodes) == ["simulation", "report"]
    assert graph.edges["simulation", "report"] == {"kind": "hard", "outputs": ["summary.csv"]}
    assert graph.nodes["simulation"]["jobs"] == 13


def test_statuses_on_nodes(view, factory_lab, base):
    for job in factory_lab.stage_jobs[("simulation", "simulate")]:
        record_attempt(base, view.lab.meta.lab_id, job, outputs={"samples.csv": "x\n"})
    graph = build_graph(view, Level.STAGES)
    assert graph.nodes["simulation/simulate"]["status"] == "succeeded"
    assert graph.nodes["simulation/stats"]["status"] == "pending"
    assert build_graph(view, Level.RUNS).nodes["simulation"]["status"] == "partial"


def test_summary_state():
    def counts(**n):
        return {s: n.get(s.value, 0) for s in JobState}

    assert summary_state(counts()) == "pending"
    assert summary_state(counts(succeeded=2)) == "succeeded"
    assert summary_state(counts(succeeded=1, pending=1)) == "partial"
    assert summary_state(counts(succeeded=1, failed=1)) == "failed"
    assert summary_state(counts(running=1, blocked=1)) == "running"
    assert summary_state(counts(blocked=1, waiting=1)) == "blocked"
