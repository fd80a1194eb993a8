"""Drawing a lab with graphviz: DOT source, and SVG whose nodes and edges match the lab."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

import shutil

import graphviz
import pytest
from inspect_fixtures import base, view  # noqa: F401

from repx.errors import ProgramNotFoundError
from repx.inspect.graph import Level
from repx.inspect.viz import STATE_COLOURS, VizError, VizFormat, VizOptions, _label, render
from storefake import record_attempt
from svgdag import parse_svg

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz 'dot' missing")


def test_dot_source_has_run_clusters_and_labelled_edges(view):
    source = render(view, VizOptions(), VizFormat.DOT).decode()
    assert source.startswith("digraph lab {")
    assert "subgraph cluster_simulation {" in source
    assert "subgraph cluster_report {" in source
    assert '"simulation/simulate" -> "simulation/stats" [label="samples.csv"' in source
    assert 'label="stats.json (gather)"' in source
    assert 'fillcolor="#' not in source.split("node [")[1]  # nothing ran: no colours


@needs_dot
def test_stage_svg_matches_the_stage_graph(view):
    svg = parse_svg(render(view, VizOptions(level=Level.STAGES), VizFormat.SVG))
    assert svg.nodes == {
        "simulation/simulate",
        "simulation/stats",
        "simulation/aggregate",
        "report/plot",
    }
    assert svg.data_edges == {
        ("simulation/simulate", "simulation/stats"),
        ("simulation/stats", "simulation/aggregate"),
        ("simulation/aggregate", "report/plot"),
    }
    assert svg.run_edges == {("simulation", "report")}
    assert svg.clusters == {"cluster_simulation", "cluster_report"}
    assert svg.texts["data:simulation/aggregate->report/plot"] == ["summary.csv (gather)"]
    assert svg.texts["simulation/simulate"] == ["simulate", "6 jobs"]


@needs_dot
def test_job_svg_and_parameters(view, factory_lab):
    svg = parse_svg(render(view, VizOptions(level=Level.JOBS, show_params=True), VizFormat.SVG))
    assert svg.nodes == set(factory_lab.job_ids)
    expected = {(i.job, j) for j, job in view.lab.jobs.items() for i in job.inputs}
    assert svg.data_edges == expected
    simulate = factory_lab.stage_jobs[("simulation", "simulate")][0]
    params = view.lab.jobs[simulate].params
    assert svg.texts[simulate] == [
        view.short_id(simulate),
        *(f"{k}={v}" for k, v in params.items()),
    ]


@needs_dot
def test_run_svg(view):
    svg = parse_svg(render(view, VizOptions(level=Level.RUNS), VizFormat.SVG))
    assert svg.nodes == {"simulation", "report"}
    assert svg.run_edges == {("simulation", "report")}
    assert svg.texts["simulation"] == ["simulation", "13 jobs · 3 stages"]


@needs_dot
def test_nodes_are_coloured_by_state(view, factory_lab, base):
    lab_id = view.lab.meta.lab_id
    simulate = factory_lab.stage_jobs[("simulation", "simulate")]
    for job in simulate:
        record_attempt(base, lab_id, job, outputs={"samples.csv": "x\n"})
    stats = factory_lab.stage_jobs[("simulation", "stats")]
    record_attempt(base, lab_id, stats[0], status="failed", exit_code=1)
    svg = parse_svg(render(view, VizOptions(show_params=True), VizFormat.SVG))
    assert svg.fills["simulation/simulate"] == STATE_COLOURS["succeeded"]
    assert svg.fills["simulation/stats"] == STATE_COLOURS["failed"]
    assert svg.fills["simulation/aggregate"] == STATE_COLOURS["blocked"]
    assert svg.texts["simulation/simulate"] == [
        "simulate",
        "6 jobs",
        "6 succeeded",
        "seed: 1, 2, 3",
        "noise: 0.1, 0.5",
    ]
    assert svg.texts["simulation/stats"][:3] == ["stats", "6 jobs", "1 failed, 5 pending"]
    # the legend: one entry per state present, with its colour and count
    assert svg.fills["legend:succeeded"] == STATE_COLOURS["succeeded"]
    assert svg.texts["legend:succeeded"] == ["succeeded: 6"]
    assert svg.texts["legend:failed"] == ["failed: 1"]
    assert "legend:running" not in svg.nodes


@needs_dot
@pytest.mark.parametrize(("fmt", "magic"), [(VizFormat.PNG, b"\x89PNG"), (VizFormat.PDF, b"%PDF")])
def test_binary_formats(view, fmt, magic):
    assert render(view, VizOptions(), fmt).startswith(magic)


@needs_dot
def test_labels_keep_backslashes_and_quotes():
    dot = graphviz.Digraph()
    dot.node("x", _label(['say "hi" \\ back \\n', "<b>not html</b>"]))
    svg = parse_svg(dot.pipe(format="svg"))
    assert svg.texts["x"] == ['say "hi" \\ back \\n', "<b>not html</b>"]


def test_missing_dot_and_failures(view, monkeypatch):
    def missing(*_args, **_kwargs):
        raise graphviz.ExecutableNotFound(["dot"])

    monkeypatch.setattr(graphviz.Digraph, "pipe", missing)
    with pytest.raises(ProgramNotFoundError, match="'dot' was not found"):
        render(view, VizOptions(), VizFormat.SVG)

    def failing(*_args, **_kwargs):
        raise graphviz.CalledProcessError(1, ["dot"], output=b"", stderr=b"Error: syntax")

    monkeypatch.setattr(graphviz.Digraph, "pipe", failing)
    with pytest.raises(VizError) as info:
        render(view, VizOptions(), VizFormat.SVG)
    assert info.value.details == "Error: syntax"
