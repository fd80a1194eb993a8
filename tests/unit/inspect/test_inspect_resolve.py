"""Names typed by users: job-id prefixes, runs, stages, parameters, states, groups."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

import pytest
from inspect_fixtures import base, view  # noqa: F401

from repx.errors import UsageError
from repx.inspect.resolve import (
    MAX_CANDIDATES,
    resolve_group,
    resolve_job,
    resolve_params,
    resolve_run,
    resolve_stage,
    resolve_state,
)
from repx.inspect.status import JobState
from repx.inspect.view import LabView
from repx.lab.loader import open_lab


def test_full_id_unique_prefix_and_short_form(view):
    for job in view.lab.jobs:
        assert resolve_job(view, job) == job
        assert resolve_job(view, view.short_id(job)) == job
        assert resolve_job(view, f"{view.short_id(job)}-{view.stage_of(job)}") == job
        assert resolve_job(view, f" {job[:10]}\n") == job


def test_ambiguous_prefix_lists_the_candidates(view):
    ids = sorted(view.lab.jobs)
    prefix = next(p for p in (j[:1] for j in ids) if sum(j.startswith(p) for j in ids) > 1)
    with pytest.raises(UsageError) as info:
        resolve_job(view, prefix)
    matching = [j for j in ids if j.startswith(prefix)]
    # one line, each candidate in a form every command accepts back
    assert info.value.message == (
        f"job id '{prefix}' is ambiguous: it matches {len(matching)} jobs: "
        + ", ".join(
            f"{view.short_id(j)}-{view.stage_of(j)} ({view.run_of(j)})"
            for j in matching[:MAX_CANDIDATES]
        )
    )
    assert not info.value.details
    for j in matching:
        assert resolve_job(view, f"{view.short_id(j)}-{view.stage_of(j)}") == j
    assert info.value.exit_code == 2


def test_empty_id():
    with pytest.raises(UsageError, match="empty job id"):
        resolve_job(None, "  ")  # type: ignore[arg-type]


def test_ambiguous_list_is_capped(factory_lab_10k):
    view = LabView(open_lab(factory_lab_10k.root))
    prefix = sorted(view.lab.jobs)[0][:1]
    with pytest.raises(UsageError) as info:
        resolve_job(view, prefix)
    assert f"matches {MAX_CANDIDATES}+ jobs: " in info.value.message
    assert info.value.message.endswith(", …")
    assert info.value.message.count(", ") == MAX_CANDIDATES


def test_unknown_id_lists_the_closest_ids(view):
    job = sorted(view.lab.jobs)[3]
    wrong = job[:6] + ("x" if job[6] != "x" else "y") + "zzzz"
    with pytest.raises(UsageError) as info:
        resolve_job(view, wrong)
    assert info.value.message.startswith(f"unknown job '{wrong}'")
    assert "repx list jobs" in info.value.message
    listed = [line.split()[0] for line in info.value.details.splitlines()]
    assert job in listed
    assert all(j.startswith(job[:6]) for j in listed)


def test_unknown_id_without_common_prefix_still_lists_neighbours(view):
    with pytest.raises(UsageError) as info:
        resolve_job(view, "eeee")  # 'e' is not in the nix base-32 alphabet
    assert len(info.value.details.splitlines()) == MAX_CANDIDATES


def test_run_stage_and_parameter_errors_name_the_valid_ones(view):
    assert resolve_run(view, "report") == "report"
    with pytest.raises(
        UsageError,
        match=r"unknown run 'simulaton' \(runs: simulation, report;"
        r" did you mean 'simulation'\?\)",
    ):
        resolve_run(view, "simulaton")
    assert resolve_stage(view, "stats") == "stats"
    assert resolve_stage(view, "plot", "report") == "plot"
    with pytest.raises(
        UsageError,
        match=r"unknown stage 'plot' in run 'simulation' "
        r"\(stages: simulate, stats, aggregate\)",
    ):
        resolve_stage(view, "plot", "simulation")
    with pytest.raises(UsageError, match=r"parameters: seed, noise; did you mean 'seed'"):
        resolve_params(["sed"], ["seed", "noise"])
    with pytest.raises(UsageError, match=r"the lab has no parameters"):
        resolve_params(["x"], [])


def test_states_and_groups(view):
    assert resolve_state("FAILED") is JobState.FAILED
    with pytest.raises(
        UsageError,
        match="statuses: succeeded, failed, running, queued, pending, waiting,"
        " blocked, cancelled; did you mean 'failed'",
    ):
        resolve_state("faild")
    assert resolve_group(view, "@all") == "all"
    with pytest.raises(UsageError, match=r"unknown group '@none' \(groups: all\)"):
        resolve_group(view, "@none")
