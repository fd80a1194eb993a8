"""Grouping jobs into sbatch calls: arrays, afterok/afterany/aftercorr, bundles, adoption."""

from __future__ import annotations

import networkx as nx

from repx.run.graph import EdgeKind, JobGraph
from repx.run.slurm_plan import (
    ARRAY_BUDGET,
    DepKind,
    array_spec,
    budget_bundle,
    held_dependencies,
    plan_groups,
)
from repx.run.slurm_resources import SlurmResources

D, H, S = EdgeKind.DATA, EdgeKind.HARD, EdgeKind.SOFT
ONE = SlurmResources()


def graph(edges, nodes=()):
    g = nx.DiGraph()
    g.add_nodes_from(nodes)
    for a, b, kind in edges:
        g.add_edge(a, b, kind=kind)
    return JobGraph(g, tuple(nx.topological_sort(g)))


def plan(g, resources=None, adopted=None, max_array_size=1001):
    jobs = [n for n in g.order if not n.startswith("run:")]
    deps = held_dependencies(g)
    return plan_groups(
        jobs,
        stage_of={j: j.split("-")[0] for j in jobs},
        deps=deps,
        resources={j: (resources or {}).get(j.split("-")[0], ONE) for j in jobs},
        adopted=adopted or {},
        max_array_size=max_array_size,
    )


def shape(groups, ids=None):
    ids = ids or {g.number: str(100 + g.number) for g in groups}
    arrays = {g.number: g.array for g in groups}
    return [
        (g.stage, array_spec(list(g.tasks)) if g.array else None, g.dependency(ids, arrays))
        for g in groups
    ]


def sweep(n):
    return [f"sim-{i}" for i in range(n)]


def test_sweep_and_gather_is_two_calls():
    g = graph([(s, "sum-0", D) for s in sweep(1000)])
    groups = plan(g)
    assert shape(groups) == [("sim", "0-999", None), ("sum", None, "afterok:100")]


def test_one_to_one_chain_uses_aftercorr():
    edges = [(f"sim-{i}", f"stat-{i}", D) for i in range(4)] + [
        (f"stat-{i}", "agg-0", D) for i in range(4)
    ]
    groups = plan(graph(edges))
    assert shape(groups) == [
        ("sim", "0-3", None),
        ("stat", "0-3", "aftercorr:100"),
        ("agg", None, "afterok:101"),
    ]
    sim, stat = groups[0], groups[1]
    for index, (job,) in stat.tasks.items():
        assert sim.tasks[index] == [job.replace("stat", "sim")]


def test_partial_dependencies_are_listed_per_task():
    edges = [("sim-0", "sum-0", D), ("sim-1", "sum-0", D), ("sim-2", "other-0", D)]
    g = graph(edges, nodes=["sim-3"])
    groups = plan(g)
    assert shape(groups)[0] == ("sim", "0-3", None)
    deps = dict(shape(groups)[1:][i][::2] for i in range(2))
    index = {jobs[0]: i for i, jobs in groups[0].tasks.items()}
    assert deps["sum"] == f"afterok:100_{index['sim-0']}:100_{index['sim-1']}"
    assert deps["other"] == "aftercorr:100"  # one upstream task: its own index


def test_run_barriers_hard_and_soft():
    edges = [
        ("a-0", "run:r:ok", H),
        ("a-1", "run:r:ok", H),
        ("run:r:ok", "hard-0", H),
        ("a-0", "run:r:done", S),
        ("a-1", "run:r:done", S),
        ("run:r:done", "soft-0", H),
    ]
    g = graph(edges)
    deps = held_dependencies(g)
    assert deps["hard-0"] == {"a-0": DepKind.OK, "a-1": DepKind.OK}
    assert deps["soft-0"] == {"a-0": DepKind.ANY, "a-1": DepKind.ANY}
    assert sorted(shape(plan(g))[1:]) == [
        ("hard", None, "afterok:100"),
        ("soft", None, "afterany:100"),
    ]


def test_different_resources_split_an_array():
    g = graph([], nodes=sweep(4))
    big = SlurmResources(cpus=8)
    groups = plan_groups(
        sweep(4),
        stage_of={j: "sim" for j in sweep(4)},
        deps={j: {} for j in sweep(4)},
        resources={j: big if j.endswith(("2", "3")) else ONE for j in sweep(4)},
        adopted={},
        max_array_size=1001,
    )
    assert [(g.resources.cpus, g.jobs) for g in groups] == [
        (None, ["sim-0", "sim-1"]),
        (8, ["sim-2", "sim-3"]),
    ]
    assert g.jobs == sweep(4)


def test_bundles_when_only_whole_groups_are_waited_for():
    bundled = SlurmResources(jobs_per_task=4, time_seconds=60)
    g = graph([(s, "sum-0", D) for s in sweep(10)])
    groups = plan(g, resources={"sim": bundled})
    assert [len(t) for t in groups[0].tasks.values()] == [4, 4, 2]
    assert groups[0].bundle == 4
    assert shape(groups) == [("sim", "0-2", None), ("sum", None, "afterok:100")]
    # a 1:1 consumer needs single jobs: no bundling
    chain = graph([(f"sim-{i}", f"stat-{i}", D) for i in range(10)])
    assert plan(chain, resources={"sim": bundled})[0].bundle == 1


def test_adopted_jobs_are_waited_for_by_task():
    g = graph([("sim-0", "sum-0", D), ("sim-1", "sum-0", D)])
    jobs = ["sum-0"]
    groups = plan_groups(
        jobs,
        stage_of={"sum-0": "sum"},
        deps=held_dependencies(g),
        resources={"sum-0": ONE},
        adopted={"sim-0": "77_0", "sim-1": "77_1"},
        max_array_size=1001,
    )
    assert shape(groups) == [("sum", None, "afterok:77_0:77_1")]


def test_arrays_stay_below_max_array_size():
    g = graph([(s, "sum-0", D) for s in sweep(25)])
    groups = plan(g, max_array_size=10)
    assert shape(groups) == [
        ("sim", "0-9", None),
        ("sim", "0-9", None),
        ("sim", "0-4", None),
        ("sum", None, "afterok:100:101:102"),
    ]


def plan_sweep(n, *, max_array_size, max_job_count, resources=ONE):
    """A sweep of ``n`` independent jobs (no graph: the pure planning step alone)."""
    jobs = [f"sim-{i}" for i in range(n)]
    return plan_groups(
        jobs,
        stage_of=dict.fromkeys(jobs, "sim"),
        deps={job: {} for job in jobs},
        resources=dict.fromkeys(jobs, resources),
        adopted={},
        max_array_size=max_array_size,
        max_job_count=max_job_count,
    )


def counts(groups):
    """(sbatch calls, tasks, most jobs per task, largest index)."""
    return (
        len(groups),
        sum(len(g.tasks) for g in groups),
        max(g.bundle for g in groups),
        max(max(g.tasks) for g in groups),
    )


def test_a_100000_job_sweep_stays_within_the_budget():
    # SLURM's defaults: MaxArraySize 1001, MaxJobCount 10,000 (2,500 tasks for us).
    groups = plan_sweep(100_000, max_array_size=1001, max_job_count=10_000)
    assert counts(groups) == (3, 2500, 40, 1000)
    assert all(g.over_budget and "MaxJobCount" in g.over_budget for g in groups)
    assert sorted(j for g in groups for j in g.jobs) == sorted(f"sim-{i}" for i in range(100_000))
    # A large job table: the arrays are the bound (100 one-job arrays > ARRAY_BUDGET).
    groups = plan_sweep(100_000, max_array_size=1001, max_job_count=1_000_000)
    assert counts(groups) == (ARRAY_BUDGET, 20_000, 5, 1000)
    assert groups[0].over_budget == "100 arrays (MaxArraySize 1001; budget 20)"
    # The local test cluster: MaxArraySize 10,001, MaxJobCount 100,000.
    assert counts(plan_sweep(100_000, max_array_size=10_001, max_job_count=100_000)) == (
        3,
        25_000,
        4,
        10_000,
    )
    # Within the budget nothing is bundled, and nothing is said.
    small = plan_sweep(10_000, max_array_size=10_001, max_job_count=100_000)
    assert counts(small) == (1, 10_000, 1, 9999)
    assert small[0].over_budget is None


def test_jobs_per_task_wins_over_the_budget():
    one = SlurmResources(jobs_per_task=1)
    groups = plan_sweep(100_000, max_array_size=1001, max_job_count=10_000, resources=one)
    assert counts(groups) == (100, 100_000, 1, 1000)
    assert all(g.over_budget is None for g in groups)
    three = SlurmResources(jobs_per_task=3)
    groups = plan_sweep(100_000, max_array_size=10_001, max_job_count=100_000, resources=three)
    assert counts(groups) == (4, 33_334, 3, 10_000)


def test_budget_bundle():
    assert budget_bundle(1000, 1001, None) == 1
    assert budget_bundle(ARRAY_BUDGET * 1001, 1001, None) == 1
    assert budget_bundle(ARRAY_BUDGET * 1001 + 1, 1001, None) == 2
    assert budget_bundle(100_000, 10_001, 25_000) == 4
    assert budget_bundle(5, 1001, 0) == 5  # never a division by zero


def test_array_spec():
    assert array_spec([0, 1, 2]) == "0-2"
    assert array_spec([5, 0, 2, 6]) == "0,2,5-6"
    assert array_spec([7]) == "7"
