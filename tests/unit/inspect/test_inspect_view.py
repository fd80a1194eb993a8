"""LabView: display order, short ids, prefix search, consumers, runs of shared jobs."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

from inspect_fixtures import base, view  # noqa: F401

from labfactory import RunSpec, StageSpec, write_lab
from repx.inspect.view import SHORT_ID_MIN, LabView
from repx.lab.loader import open_lab


def test_jobs_in_run_then_stage_then_parameter_order(view, factory_lab):
    order = [job for _, job in view.all_jobs()]
    assert sorted(order) == sorted(factory_lab.job_ids)
    stages = [view.stage_of(j) for j in order]
    assert stages == ["simulate"] * 6 + ["stats"] * 6 + ["aggregate", "plot"]
    # simulate jobs sorted by the run's parameters in manifest order: seed, then noise
    simulate = view.jobs_of("simulation", "simulate")
    params = [view.lab.jobs[j].params for j in simulate]
    assert [(p["seed"], p["noise"]) for p in params] == [
        (1, 0.1),
        (1, 0.5),
        (2, 0.1),
        (2, 0.5),
        (3, 0.1),
        (3, 0.5),
    ]
    # stats jobs follow the order of the simulate jobs they read (inherited parameters)
    stats = view.jobs_of("simulation", "stats")
    upstream = [view.lab.jobs[j].inputs[0].job for j in stats]
    assert upstream == simulate


def test_stages_follow_revision_order(view):
    assert view.run_names == ["simulation", "report"]
    assert view.stages("simulation") == ["simulate", "stats", "aggregate"]
    assert view.all_stages() == ["simulate", "stats", "aggregate", "plot"]


def test_short_ids_are_unique_prefixes(view):
    assert view.short_length == SHORT_ID_MIN
    shorts = {view.short_id(j) for j in view.lab.jobs}
    assert len(shorts) == len(view.lab.jobs)
    for job in view.lab.jobs:
        assert view.with_prefix(view.short_id(job)) == [job]


def test_short_ids_grow_when_hashes_share_a_prefix(view):
    lab = open_lab(view.lab.root)  # read whole: its jobs are a plain dict
    assert isinstance(lab.jobs, dict)
    ids = sorted(lab.jobs)
    twin = ids[0][:12] + "z" * 20 + "-simulate"
    lab.jobs[twin] = lab.jobs[ids[0]]  # a view of a lab with near-equal hashes
    assert LabView(lab).short_length == 13


def test_prefix_search_and_neighbours(view):
    ids = sorted(view.lab.jobs)
    assert view.with_prefix("") == ids
    assert view.with_prefix("", limit=3) == ids[:3]
    assert view.with_prefix("~") == []
    assert len(view.neighbours(ids[5], 4)) == 4


def test_consumers(view, factory_lab):
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    consumers = view.consumers[aggregate]
    assert [(c.job, c.run, c.input.output) for c in consumers] == [(plot, "report", "summary.csv")]
    for stats in factory_lab.stage_jobs[("simulation", "stats")]:
        assert [c.job for c in view.consumers[stats]] == [aggregate]


def test_job_shared_by_two_runs(tmp_path):
    stage = StageSpec("simulate", params=("seed",))
    runs = [RunSpec(name, (stage,), parameters={"seed": [1, 2]}) for name in ("b", "a")]
    view = LabView(open_lab(write_lab(tmp_path / "lab", runs).root))
    job = next(iter(view.lab.jobs))
    assert view.runs_of(job) == ["b", "a"]
    assert view.run_of(job) == "b"
    assert len(list(view.all_jobs())) == 2
    assert len(view.jobs_of("a")) == 2


def test_output_paths(view, base, factory_lab):
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    assert view.output_dir(plot) == base / "outputs" / plot / "out"
    assert view.output_path(plot, "plots/a.txt") == base / "outputs" / plot / "out" / "plots/a.txt"
    assert LabView(view.lab).output_path(plot, "plots/a.txt") is None
