"""Selectors -> jobs: runs, @groups, job-id prefixes, upstream and run-dependency closure."""

from __future__ import annotations

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx.errors import UsageError
from repx.lab.loader import open_lab
from repx.run.selection import lab_order, select


@pytest.fixture
def lab(factory_lab):
    return open_lab(factory_lab.root), factory_lab


def test_no_selector_selects_every_run(lab):
    loaded, factory = lab
    selection = select(loaded, [])
    assert set(selection.jobs) == set(factory.job_ids)
    assert set(selection.targets) == set(factory.job_ids)
    assert selection.runs == {"simulation", "report"}


def test_run_pulls_in_its_dependency_runs(lab):
    loaded, factory = lab
    selection = select(loaded, ["report"])
    assert set(selection.targets) == set(factory.run_jobs["report"])
    assert set(selection.jobs) == set(factory.job_ids)
    assert selection.runs == {"simulation", "report"}


def test_run_without_dependencies(lab):
    loaded, factory = lab
    selection = select(loaded, ["simulation"])
    assert set(selection.jobs) == set(factory.run_jobs["simulation"])
    assert selection.runs == {"simulation"}


def test_group(lab):
    loaded, factory = lab
    assert set(select(loaded, ["@all"]).jobs) == set(factory.job_ids)


def test_job_prefix_selects_job_and_upstream_only(lab):
    loaded, factory = lab
    stats = factory.stage_jobs[("simulation", "stats")][0]
    selection = select(loaded, [stats[:10]])
    assert selection.targets == (stats,)
    upstream = {i.job for i in loaded.jobs[stats].inputs}
    assert set(selection.jobs) == {stats, *upstream}
    assert selection.runs == {"simulation"}


def test_jobs_are_in_lab_order(lab):
    loaded, _ = lab
    order = lab_order(loaded)
    selection = select(loaded, ["report"])
    assert list(selection.jobs) == sorted(selection.jobs, key=order.__getitem__)


def test_unknown_selector_lists_runs_and_groups(lab):
    loaded, _ = lab
    with pytest.raises(UsageError) as err:
        select(loaded, ["nope"])
    assert "runs: simulation, report" in err.value.message
    assert "groups: @all" in err.value.message
    assert err.value.exit_code == 2


def test_unknown_group(lab):
    loaded, _ = lab
    with pytest.raises(UsageError, match=r"unknown group '@x' \(groups: @all\)"):
        select(loaded, ["@x"])


def test_ambiguous_prefix_lists_candidates(tmp_path):
    factory = write_lab(
        tmp_path / "lab",
        (
            RunSpec(
                "sweep",
                parameters={"seed": list(range(200))},
                stages=(StageSpec("simulate", params=("seed",)),),
            ),
        ),
    )
    loaded = open_lab(factory.root)
    first = sorted(factory.job_ids)[0]
    with pytest.raises(UsageError, match="ambiguous") as err:
        select(loaded, [first[0]])
    # one line naming the candidates by the short form every command accepts
    assert first[:8] in err.value.message and not err.value.details
    assert err.value.message.count(", ") <= 10
    assert select(loaded, [first]).targets == (first,)
