"""Listings and details: list runs/jobs/deps/groups, show job/run, trace-params."""

# ruff: noqa: F811 (the fixtures imported from inspect_fixtures are test parameters)

from __future__ import annotations

import pytest
from inspect_fixtures import base, view  # noqa: F401

from repx.errors import UsageError
from repx.inspect import models
from repx.inspect.query import (
    JobQuery,
    job_deps,
    list_groups,
    list_jobs,
    list_runs,
    parse_param_options,
    select_jobs,
    show_job,
    show_run,
    trace,
)
from repx.inspect.status import JobState
from storefake import record_attempt


def ids(result: models.JobList) -> list[str]:
    return [row.id for row in result.jobs]


def test_list_runs(view):
    result = list_runs(view)
    assert [r.name for r in result.runs] == ["simulation", "report"]
    simulation, report = result.runs
    assert simulation.jobs == 13
    assert simulation.stages == ["simulate", "stats", "aggregate"]
    assert simulation.parameters == {"seed": [1, 2, 3], "noise": [0.1, 0.5]}
    assert simulation.swept == ["seed", "noise"]
    assert report.depends_on == {"simulation": "hard"}
    assert report.groups == ["all"]
    assert simulation.status is None  # nothing ran yet


def test_list_runs_counts_states_once_run(view, factory_lab, base):
    job = factory_lab.stage_jobs[("simulation", "simulate")][0]
    record_attempt(base, view.lab.meta.lab_id, job, outputs={"samples.csv": "x\n"})
    simulation = list_runs(view).runs[0]
    assert simulation.status is not None
    assert simulation.status["succeeded"] == 1
    assert sum(simulation.status.values()) == 13


def test_list_jobs_filters(view, factory_lab):
    everything = list_jobs(view, JobQuery())
    assert sorted(ids(everything)) == sorted(factory_lab.job_ids)
    simulate = factory_lab.stage_jobs[("simulation", "simulate")]
    assert sorted(ids(list_jobs(view, JobQuery(stage="simulate")))) == sorted(simulate)
    assert (
        ids(list_jobs(view, JobQuery(run="report"))) == factory_lab.stage_jobs[("report", "plot")]
    )
    seed_2 = list_jobs(view, JobQuery(where={"seed": [2]}))
    # the simulate jobs of seed 2 and the stats jobs that inherit it
    assert [r.stage for r in seed_2.jobs] == ["simulate", "simulate", "stats", "stats"]
    assert all(r.effective_params["seed"] == 2 for r in seed_2.jobs)
    both = list_jobs(view, JobQuery(stage="simulate", where={"seed": [1, 3], "noise": ["0.5"]}))
    assert [(r.params["seed"], r.params["noise"]) for r in both.jobs] == [(1, 0.5), (3, 0.5)]
    assert list_jobs(view, JobQuery(status=JobState.SUCCEEDED)).jobs == []
    pending = list_jobs(view, JobQuery(status=JobState.PENDING))
    assert sorted(ids(pending)) == sorted(simulate)


def test_list_jobs_rows(view, factory_lab, base):
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    row = list_jobs(view, JobQuery(run="report", output_paths=True)).jobs[0]
    assert row.id == plot
    assert row.short_id == view.short_id(plot)
    assert (row.run, row.runs, row.stage, row.status) == ("report", ["report"], "plot", "waiting")
    assert row.params == {}
    assert row.effective_params == {}
    assert row.output_paths == {"plots/a.txt": str(base / "outputs" / plot / "out/plots/a.txt")}
    assert list_jobs(view, JobQuery()).jobs[0].output_paths is None
    result = list_jobs(view, JobQuery(columns=["seed"]))
    assert result.columns == ["seed"]
    assert models.JobList.model_validate_json(result.model_dump_json()) == result


def test_list_jobs_unknown_names(view):
    with pytest.raises(UsageError, match=r"unknown run 'nope' \(runs: simulation, report\)"):
        select_jobs(view, JobQuery(run="nope"))
    with pytest.raises(UsageError, match=r"unknown stage 'plot' in run 'simulation'"):
        select_jobs(view, JobQuery(run="simulation", stage="plot"))
    with pytest.raises(UsageError, match=r"unknown parameter 'sed' \(parameters: seed, noise;"):
        select_jobs(view, JobQuery(where={"sed": [1]}))
    with pytest.raises(
        UsageError, match=r"unknown parameter 'frob' in run 'report' \(parameters: noise, seed\)"
    ):
        select_jobs(view, JobQuery(run="report", columns=["frob"]))
    # inherited (even multi-valued) parameters can be shown
    assert select_jobs(view, JobQuery(run="report", columns=["seed"]))


def test_parse_param_options():
    assert parse_param_options(["seed", "noise=0.1", "seed=1", "seed=x"]) == (
        ["seed", "noise"],
        {"noise": [0.1], "seed": [1, "x"]},
    )
    with pytest.raises(UsageError, match="-p expects NAME or NAME=VALUE"):
        parse_param_options(["=1"])


def test_job_deps(view, factory_lab):
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    deps = job_deps(view, aggregate[:9])
    assert deps.job == aggregate
    assert sorted(d.job for d in deps.upstream) == sorted(
        factory_lab.stage_jobs[("simulation", "stats")]
    )
    assert {(d.input, d.output, d.gather, d.stage) for d in deps.upstream} == {
        ("stats_stats_json", "stats.json", True, "stats")
    }
    plot = factory_lab.stage_jobs[("report", "plot")][0]
    assert [(d.job, d.run, d.output, d.input) for d in deps.downstream] == [
        (plot, "report", "summary.csv", "aggregate_summary_csv")
    ]


def test_show_job(view, factory_lab, base):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]
    simulate = view.lab.jobs[stats].inputs[0].job
    record_attempt(
        base, view.lab.meta.lab_id, simulate, outputs={"samples.csv": "1\n"}, stdout="out\n"
    )
    details = show_job(view, simulate[:8])
    assert details.id == simulate
    assert (details.stage, details.run, details.status) == ("simulate", "simulation", "succeeded")
    assert details.params == view.lab.jobs[simulate].params
    assert details.inputs == []
    assert [d.job for d in details.downstream] == [stats]
    assert details.outputs == [
        models.OutputInfo(
            name="samples.csv",
            declared="$out/samples.csv",
            path=str(base / "outputs" / simulate / "out/samples.csv"),
            exists=True,
        )
    ]
    assert details.script and details.script.endswith("/bin/simulate")
    assert details.stage_file == "stages/simulate.nix"
    assert details.executables["main"].endswith(f"jobs/{simulate}/bin/simulate")
    assert details.parameters_file.endswith(f"jobs/{simulate}/parameters.json")
    assert details.resources == {"cpus": 1}
    assert details.attempt is not None
    assert (details.attempt.exit_code, details.attempt.host) == (0, "testhost")
    assert details.output_dir == str(base / "outputs" / simulate / "out")
    assert set(details.logs) == {"stdout", "stderr"}
    downstream = show_job(view, stats)
    assert downstream.status == "pending"
    assert downstream.attempt is None and downstream.output_dir is None and downstream.logs == {}
    assert downstream.effective_params == view.lab.jobs[simulate].params
    assert [(d.job, d.path) for d in downstream.inputs] == [
        (simulate, str(base / "outputs" / simulate / "out/samples.csv"))
    ]


def test_show_run(view):
    details = show_run(view, "simulation")
    assert [s.name for s in details.stages] == ["simulate", "stats", "aggregate"]
    assert [s.jobs for s in details.stages] == [6, 6, 1]
    assert details.stages[0].outputs == {"samples.csv": "$out/samples.csv"}
    assert details.dependents == {"report": "hard"}
    assert details.depends_on == {}
    assert details.groups == ["all"]
    assert details.manifest.endswith(".json")
    with pytest.raises(UsageError, match="unknown run"):
        show_run(view, "nope")


def test_list_groups(view):
    assert list_groups(view).groups == [
        models.GroupRow(name="all", runs=["simulation", "report"], jobs=14)
    ]


def test_trace(view, factory_lab):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]
    simulate = view.lab.jobs[stats].inputs[0].job
    result = trace(view, stats)
    assert result.effective_params == view.lab.jobs[simulate].params
    assert result.multi_valued == {}
    assert [(p.name, p.effective, [s.job for s in p.sources]) for p in result.params] == [
        ("noise", True, [simulate]),
        ("seed", True, [simulate]),
    ]
    assert result.params[0].sources[0].depth == 1
    aggregate = trace(view, factory_lab.stage_jobs[("simulation", "aggregate")][0])
    assert aggregate.multi_valued == {"noise": [0.1, 0.5], "seed": [1, 2, 3]}
    assert len(aggregate.params) == 5
