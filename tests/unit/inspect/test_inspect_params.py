"""Parameter values, effective parameters and their provenance."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

import pytest
from inspect_fixtures import base, view  # noqa: F401

from labfactory import RunSpec, StageSpec, edit_json, write_lab
from repx.errors import LabError
from repx.inspect.params import (
    ParamIndex,
    format_value,
    parse_value,
    sorted_values,
    trace_params,
    value_key,
    value_matches,
)
from repx.lab.loader import open_lab


def test_value_keys_tell_types_apart():
    keys = [value_key(v) for v in (1, 1.0, True, "1", None, [1], {"a": 1})]
    assert len(set(keys)) == len(keys)
    assert value_key({"a": 1, "b": 2}) == value_key({"b": 2, "a": 1})


def test_format_and_parse():
    assert [format_value(v) for v in ("x y", 1, 0.5, True, None, [1, "a"])] == [
        "x y",
        "1",
        "0.5",
        "true",
        "null",
        '[1,"a"]',
    ]
    assert parse_value("1") == 1
    assert parse_value("0.1") == 0.1
    assert parse_value("world") == "world"
    assert parse_value('"1"') == "1"
    assert parse_value("[1, 2]") == [1, 2]


@pytest.mark.parametrize(
    ("actual", "wanted", "match"),
    [
        (1, 1, True),
        (1, 1.0, True),
        (1, True, False),
        (True, 1, False),
        (1, "1", True),
        ("1", 1, False),
        ("world", "world", True),
        (0.1, 0.1, True),
        ([1, 2], [1, 2], True),
        (None, None, True),
        (2, 1, False),
    ],
)
def test_value_matches(actual, wanted, match):
    assert value_matches(actual, wanted) is match


def test_sorted_values():
    assert sorted_values([3, 1, 2, 1, 2.5]) == [1, 2, 2.5, 3]
    assert sorted_values(["b", "a", "b"]) == ["a", "b"]
    assert sorted_values([1, "a", None]) == [1, "a", None]  # mixed: order of appearance


def test_effective_parameters_inherit_single_values(view, factory_lab):
    index = ParamIndex(view.lab)
    simulate = factory_lab.stage_jobs[("simulation", "simulate")]
    for stats in factory_lab.stage_jobs[("simulation", "stats")]:
        upstream = view.lab.jobs[stats].inputs[0].job
        assert upstream in simulate
        effective = index.effective(stats)
        assert effective.values == view.lab.jobs[upstream].params
        assert effective.multi == {}
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    assert index.effective(aggregate).values == {}
    assert index.effective(aggregate).multi == {"noise": [0.1, 0.5], "seed": [1, 2, 3]}
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    assert index.effective(plot).multi == {"noise": [0.1, 0.5], "seed": [1, 2, 3]}


def test_own_value_hides_upstream_values(factory_lab):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]

    def change(manifest):
        manifest["jobs"][stats]["params"] = {"seed": 99}

    edit_json(factory_lab.manifest_path("simulation"), change)
    lab = open_lab(factory_lab.root)
    index = ParamIndex(lab)
    upstream = lab.jobs[stats].inputs[0].job
    assert index.effective(stats).values == {
        "noise": lab.jobs[upstream].params["noise"],
        "seed": 99,
    }
    traced = {(t.name, t.value): t for t in trace_params(lab, index, stats)}
    own_seed = lab.jobs[upstream].params["seed"]
    assert traced[("seed", 99)].effective
    assert [(s.job, s.depth) for s in traced[("seed", 99)].sources] == [(stats, 0)]
    assert not traced[("seed", own_seed)].effective
    assert [(s.job, s.depth) for s in traced[("seed", own_seed)].sources] == [(upstream, 1)]
    # downstream of the overridden job, the aggregate sees 99 among the seeds
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    assert 99 in index.effective(aggregate).multi["seed"]


def test_trace_lists_every_value_with_its_jobs(view, factory_lab):
    index = ParamIndex(view.lab)
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    traced = trace_params(view.lab, index, plot)
    assert [(t.name, t.value) for t in traced] == [
        ("noise", 0.1),
        ("noise", 0.5),
        ("seed", 1),
        ("seed", 2),
        ("seed", 3),
    ]
    simulate = set(factory_lab.stage_jobs[("simulation", "simulate")])
    for t in traced:
        assert not t.effective
        assert {s.depth for s in t.sources} == {3}  # plot <- aggregate <- stats <- simulate
        assert {s.job for s in t.sources} <= simulate
    seed_1 = next(t for t in traced if (t.name, t.value) == ("seed", 1))
    assert len(seed_1.sources) == 2  # two noise values


def test_input_cycle_is_a_lab_error(factory_lab):
    simulate = factory_lab.stage_jobs[("simulation", "simulate")][0]
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]

    def change(manifest):
        manifest["jobs"][simulate]["inputs"] = [
            {"name": "loop", "job": stats, "output": "stats.json", "run": "simulation"}
        ]

    edit_json(factory_lab.manifest_path("simulation"), change)
    lab = open_lab(factory_lab.root)
    with pytest.raises(LabError, match="jobs: input cycle"):
        ParamIndex(lab).effective(stats)


def test_deep_pipelines_do_not_recurse(tmp_path):
    depth = 1200  # deeper than Python's default recursion limit
    stages = [StageSpec("s0", params=("seed",))]
    stages += [StageSpec(f"s{i}", after=(f"s{i - 1}",)) for i in range(1, depth)]
    lab = open_lab(
        write_lab(tmp_path / "lab", [RunSpec("deep", tuple(stages), {"seed": [7]})]).root
    )
    last = next(j for j, job in lab.jobs.items() if job.stage == f"s{depth - 1}")
    index = ParamIndex(lab)
    assert index.effective(last).values == {"seed": 7}
    assert [t.sources[0].depth for t in trace_params(lab, index, last)] == [depth - 1]
