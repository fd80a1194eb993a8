"""The job graph: data edges, run barriers, validation, pruning."""

from __future__ import annotations

import pytest

from labfactory import RunSpec, StageSpec, edit_json, write_lab
from repx.errors import LabError
from repx.lab.loader import open_lab
from repx.run.graph import EdgeKind, barrier_id, build_graph, is_barrier
from repx.run.selection import select


def _graph(root, selectors=()):
    lab = open_lab(root)
    return lab, build_graph(lab, select(lab, list(selectors)))


def test_data_edges_and_hard_barrier(factory_lab):
    lab, graph = _graph(factory_lab.root)
    barrier = barrier_id("simulation", "hard")
    assert barrier in graph.graph
    for job in factory_lab.run_jobs["simulation"]:
        assert graph.graph.edges[job, barrier]["kind"] is EdgeKind.HARD
    [plot] = factory_lab.run_jobs["report"]
    assert graph.graph.edges[barrier, plot]["kind"] is EdgeKind.HARD
    for inp in lab.jobs[plot].inputs:
        assert graph.graph.edges[inp.job, plot]["kind"] is EdgeKind.DATA
    assert set(graph.jobs) == set(factory_lab.job_ids)
    # topological: every edge goes forward in the order
    position = {n: i for i, n in enumerate(graph.order)}
    assert all(position[a] < position[b] for a, b in graph.graph.edges)


def test_soft_barrier(tmp_path):
    runs = (
        RunSpec("a", stages=(StageSpec("one"),)),
        RunSpec("b", depends_on={"a": "soft"}, stages=(StageSpec("two"),)),
    )
    factory = write_lab(tmp_path / "lab", runs)
    _, graph = _graph(factory.root)
    barrier = barrier_id("a", "soft")
    assert is_barrier(barrier) and barrier.endswith(":done")
    [one] = factory.run_jobs["a"]
    assert graph.graph.edges[one, barrier]["kind"] is EdgeKind.SOFT
    assert not EdgeKind.SOFT.needs_success and EdgeKind.DATA.needs_success


def test_cycle_is_a_lab_error(factory_lab):
    # report's plot becomes an input of a simulation job: a cycle across runs
    [plot] = factory_lab.run_jobs["report"]
    simulate = factory_lab.stage_jobs[("simulation", "simulate")][0]

    def add_input(manifest):
        manifest["jobs"][simulate]["inputs"].append(
            {"name": "x", "job": plot, "output": "plots/a.txt", "run": "report", "gather": False}
        )

    edit_json(factory_lab.manifest_path("simulation"), add_input)
    with pytest.raises(LabError, match="dependency cycle"):
        _graph(factory_lab.root)


def test_prune_keeps_only_what_must_run(factory_lab):
    _, graph = _graph(factory_lab.root)
    simulate = factory_lab.stage_jobs[("simulation", "simulate")]
    stats = factory_lab.stage_jobs[("simulation", "stats")]
    [aggregate] = factory_lab.stage_jobs[("simulation", "aggregate")]
    [plot] = factory_lab.run_jobs["report"]
    # everything of the simulation run is done: only the plot remains
    done = set(factory_lab.run_jobs["simulation"])
    pruned = graph.prune(done.__contains__, [plot])
    assert pruned.jobs == [plot]
    # stats done but simulate outputs gone: simulate is not rerun
    done = {*stats}
    pruned = graph.prune(done.__contains__, [aggregate])
    assert set(pruned.jobs) == {aggregate}
    # nothing done, target one stats job: its simulate and itself
    pruned = graph.prune(lambda _: False, [stats[0]])
    assert set(pruned.jobs) == {
        stats[0],
        next(s for s in simulate if s in graph.graph.pred[stats[0]]),
    }
    # all done: nothing
    assert graph.prune(lambda _: True, factory_lab.job_ids).order == ()
