"""The SLURM executor's exact sbatch calls and scripts, and its submission records.

sbatch/squeue/scontrol/scancel are the stand-ins of tests/fakeslurm.py here; the same paths
run against a real cluster in tests/integration/test_run_slurm.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from fakeslurm import install
from labfactory import pipeline_runs, write_lab
from repx.config import RuntimeKind
from repx.lab.loader import open_lab
from repx.run import slurm_light
from repx.run.events import JobsSubmitted, Notice
from repx.run.graph import build_graph
from repx.run.runtime import Runtime
from repx.run.selection import select
from repx.run.slurm_executor import SlurmExecutor, SlurmSettings
from repx.run.slurm_models import TaskManifest, job_refs, read_submissions
from repx.run.slurm_resources import ResourcePolicy, ResourcesFile, Rule
from repx.run.spec import make_spec
from repx.run.store import Store
from repx.slurm import SlurmError


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = install(tmp_path / "fake")
    monkeypatch.setenv("PATH", f"{fake.bin}:/usr/bin:/bin")
    return fake


def setup(tmp_path, runs, *, rules=(), settings=None):
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    base = tmp_path / "base"
    store = Store.open(base)
    plan = build_graph(lab, select(lab, ()))
    policy = ResourcePolicy(
        ResourcesFile(rules=tuple(rules)), target_partition="short", target_options=("--qos=q",)
    )
    resources = {j: policy.resolve(j, lab.jobs[j], lab.job_runs[j]) for j in plan.jobs}
    runtime = Runtime(kind=RuntimeKind.NATIVE, path="/tools/bin", outputs=str(store.outputs))
    events = []
    executor = SlurmExecutor(
        store,
        runtime,
        plan,
        resources,
        settings or SlurmSettings(target="hpc", python="/venv/bin/python"),
        lab_id=lab.meta.lab_id,
        emit=events.append,
    )
    for job in plan.jobs:
        executor.submit(make_spec(lab, job, store.outputs))
    return SimpleNamespace(lab=lab, store=store, plan=plan, executor=executor, events=events)


def test_pipeline_becomes_three_sbatch_calls(tmp_path, fake):
    t = setup(tmp_path, pipeline_runs(3))
    groups = t.executor.flush()
    assert [g.slurm_id for g in groups] == ["1001", "1002", "1003"]
    calls = fake.calls("sbatch")
    assert len(calls) == 3
    batch = Path(calls[0]["argv"][-1]).parent
    assert batch.parent == t.store.root / "slurm"
    argv = [c["argv"] for c in calls]
    assert argv[0] == [
        "sbatch",
        "--parsable",
        "--job-name=repx-simulate",
        f"--chdir={batch}",
        f"--output={batch}/logs/000-simulate-%A_%a.log",
        "--array=0-2",
        "--cpus-per-task=1",
        "--partition=short",
        "--qos=q",
        f"{batch}/000-simulate.sh",
    ]
    assert argv[1] == [
        "sbatch",
        "--parsable",
        "--job-name=repx-stats",
        f"--chdir={batch}",
        f"--output={batch}/logs/001-stats-%A_%a.log",
        "--array=0-2",
        "--dependency=aftercorr:1001",
        "--kill-on-invalid-dep=yes",
        "--cpus-per-task=1",
        "--partition=short",
        "--qos=q",
        f"{batch}/001-stats.sh",
    ]
    assert argv[2] == [
        "sbatch",
        "--parsable",
        "--job-name=repx-aggregate",
        f"--chdir={batch}",
        f"--output={batch}/logs/002-aggregate-%j.log",
        "--dependency=afterok:1002",
        "--kill-on-invalid-dep=yes",
        "--cpus-per-task=1",
        "--partition=short",
        "--qos=q",
        f"{batch}/002-aggregate.sh",
    ]
    # one plain job per task: the light task, which hands over to the full one when the
    # node lacks something (docs/slurm.md, "Light tasks")
    assert calls[0]["script"] == (
        "#!/bin/sh\n"
        "# repx: stage simulate, 3 job(s) in 3 task(s)\n"
        f"[ -r {slurm_light.PROGRAM} ] && exec /venv/bin/python -I -S {slurm_light.PROGRAM}"
        f' {batch}/000-simulate.tasks "${{SLURM_ARRAY_TASK_ID:-0}}"\n'
        f"exec /venv/bin/python -m repx.run.slurm_task {batch}/000-simulate.json"
        ' "${SLURM_ARRAY_TASK_ID:-0}"\n'
    )
    # a gathered input: the full task only
    assert calls[2]["script"] == (
        "#!/bin/sh\n"
        "# repx: stage aggregate, 1 job(s) in 1 task(s)\n"
        f"exec /venv/bin/python -m repx.run.slurm_task {batch}/002-aggregate.json"
        ' "${SLURM_ARRAY_TASK_ID:-0}"\n'
    )
    assert [type(e) for e in t.events] == [JobsSubmitted] * 3
    assert t.events[1].dependency == "aftercorr:1001" and t.events[1].array == "0-2"


def test_manifest_maps_array_indices_to_jobs(tmp_path, fake):
    t = setup(tmp_path, pipeline_runs(3))
    t.executor.flush()
    script = Path(fake.calls("sbatch")[1]["argv"][-1])
    manifest = TaskManifest.model_validate_json(script.with_suffix(".json").read_text())
    assert manifest.base == str(t.store.root)
    assert manifest.runtime.kind is RuntimeKind.NATIVE
    stats = [j for j in t.plan.jobs if j.endswith("-stats")]
    assert sorted(j for specs in manifest.tasks.values() for j in (s.job for s in specs)) == sorted(
        stats
    )
    # index i of stats consumes index i of simulate (aftercorr)
    simulate = TaskManifest.model_validate_json(
        Path(fake.calls("sbatch")[0]["argv"][-1]).with_suffix(".json").read_text()
    )
    for index, (spec,) in manifest.tasks.items():
        (upstream,) = simulate.tasks[index]
        assert any(upstream.job in path for path in spec.inputs.values())


def test_submissions_are_recorded_per_job(tmp_path, fake):
    t = setup(tmp_path, pipeline_runs(2))
    t.executor.flush()
    records = read_submissions(t.store.root)
    assert [(r.slurm_id, r.stage, r.array) for r in records] == [
        ("1001", "simulate", True),
        ("1002", "stats", True),
        ("1003", "aggregate", False),
    ]
    refs = job_refs(records)
    assert set(refs) == set(t.plan.jobs)
    aggregate = next(j for j in t.plan.jobs if j.endswith("-aggregate"))
    assert refs[aggregate].ref == "1003"
    simulate = sorted(r.ref for j, r in refs.items() if j.endswith("-simulate"))
    assert simulate == ["1001_0", "1001_1"]
    assert refs[aggregate].log.endswith("/logs/002-aggregate-1003.log")


def test_rules_split_arrays_and_bundle(tmp_path, fake):
    runs = pipeline_runs(5)
    rules = [
        Rule(stage="simulate", mem="1.5G", time="10", jobs_per_task=2),
        Rule(stage="aggregate", cpus=4, sbatch_options=("--exclusive",)),
    ]
    t = setup(tmp_path, runs, rules=rules)
    t.executor.flush()
    argv = [c["argv"] for c in fake.calls("sbatch")]
    # stats waits for single simulate jobs (1:1), so simulate is not bundled
    assert "--array=0-4" in argv[0] and "--mem=1536M" in argv[0] and "--time=00:10:00" in argv[0]
    assert argv[2][-4:-1] == ["--partition=short", "--qos=q", "--exclusive"]
    assert "--cpus-per-task=4" in argv[2]


def test_bundles_scale_the_time_limit(tmp_path, fake):
    from labfactory import RunSpec, StageSpec  # noqa: PLC0415

    runs = (
        RunSpec(
            "s",
            parameters={"seed": list(range(5))},
            stages=(StageSpec("sim", params=("seed",)), StageSpec("sum", gather=("sim",))),
        ),
    )
    rules = [Rule(stage="sim", time="00:30:00", jobs_per_task=2)]
    t = setup(tmp_path, runs, rules=rules)
    t.executor.flush()
    first = fake.calls("sbatch")[0]
    assert "--array=0-2" in first["argv"] and "--time=01:00:00" in first["argv"]
    assert "5 job(s) in 3 task(s)" in first["script"]
    assert t.events[0].bundle == 2
    assert "--dependency=afterok:1001" in fake.calls("sbatch")[1]["argv"]


def test_refusal_withdraws_what_was_submitted(tmp_path, fake):
    fake.configure(fail_sbatch=[2], sbatch_error="Batch job submission failed: Invalid qos")
    t = setup(tmp_path, pipeline_runs(2))
    with pytest.raises(SlurmError) as info:
        t.executor.flush()
    message = info.value.message
    assert message.startswith("target 'hpc': SLURM refused the 2 job(s) of stage 'stats' (e.g. ")
    assert message.endswith("-stats): sbatch: Batch job submission failed: Invalid qos")
    assert "cancelled" in info.value.details
    [scancel] = fake.calls("scancel")
    assert scancel["argv"] == ["scancel", "1001"]
    records = read_submissions(t.store.root)
    assert [r.kind for r in records] == ["submitted", "withdrawn"]
    assert job_refs(records) == {}


def test_active_jobs_are_followed_not_submitted(tmp_path, fake):
    t = setup(tmp_path, pipeline_runs(2))
    t.executor.flush()
    sims = sorted(j for j in t.plan.jobs if j.endswith("-simulate"))
    # simulate is running, stats queued behind it, aggregate lost: only aggregate goes again
    fake.set_queue(
        [
            "1001_0|1001|0|RUNNING|None",
            "1001_1|1001|1|PENDING|Priority",
            "1002_0|1002|0|PENDING|Dependency",
            "1002_1|1002|1|PENDING|Dependency",
            "1003|1003|N/A|CANCELLED|None",
        ]
    )
    again, events = setup_again(t.lab, t.store, t.plan)
    groups = again.flush()
    assert [g.stage for g in groups] == ["aggregate"]
    assert groups[0].dependency == "afterok:1002_0:1002_1"
    assert set(again.adopted) == set(t.plan.jobs) - {groups[0].jobs[0]}
    assert any(isinstance(e, Notice) and "4 job(s)" in e.message for e in events)
    assert sims[0] in again.adopted


def setup_again(lab, store, plan):
    events = []
    policy = ResourcePolicy()
    resources = {j: policy.resolve(j, lab.jobs[j], lab.job_runs[j]) for j in plan.jobs}
    runtime = Runtime(kind=RuntimeKind.NATIVE, path="/tools/bin", outputs=str(store.outputs))
    executor = SlurmExecutor(
        store,
        runtime,
        plan,
        resources,
        SlurmSettings(target="hpc", python=sys.executable),
        lab_id=lab.meta.lab_id,
        emit=events.append,
    )
    for job in plan.jobs:
        executor.submit(make_spec(lab, job, store.outputs))
    return executor, events


def test_stale_queued_tasks_behind_new_submissions_are_cancelled(tmp_path, fake):
    t = setup(tmp_path, pipeline_runs(2))
    t.executor.flush()
    # simulate ended (failed); its queued dependents wait for the old attempt forever
    fake.set_queue(
        [
            "1001_0|1001|0|FAILED|NonZeroExitCode",
            "1001_1|1001|1|COMPLETED|None",
            "1002_0|1002|0|PENDING|Dependency",
            "1002_1|1002|1|PENDING|Dependency",
            "1003|1003|N/A|PENDING|Dependency",
        ]
    )
    again, _ = setup_again(t.lab, t.store, t.plan)
    groups = again.flush()
    assert sum(len(g.jobs) for g in groups) == 5
    [scancel] = fake.calls("scancel")
    assert sorted(scancel["argv"][1:]) == ["1002_0", "1002_1", "1003"]


def test_following_reports_results_from_the_store(tmp_path, fake):
    t = setup(
        tmp_path,
        pipeline_runs(1),
        settings=SlurmSettings(
            target="hpc", python="/p", poll_interval=0, queue_interval=0, lost_grace=0
        ),
    )
    t.executor.flush()
    sim = next(j for j in t.plan.jobs if j.endswith("-simulate"))
    stats = next(j for j in t.plan.jobs if j.endswith("-stats"))
    waiting = "1003|1003|N/A|PENDING|Dependency"
    fake.set_queue(["1001|1001|N/A|RUNNING|None", "1002|1002|N/A|PENDING|Dependency", waiting])
    started = t.executor.poll(0)
    assert [(type(e).__name__, e.job) for e in started] == [("Started", sim)]
    # the node commits the result: a line in completions.jsonl
    line = {
        "job": sim,
        "status": "succeeded",
        "exit_code": 0,
        "start": 1.0,
        "end": 2.0,
        "host": "node1",
        "runtime": "native",
        "lab_id": "x",
        "attempt": "abc",
    }
    with t.store.completions.open("a") as f:
        f.write(json.dumps(line) + "\n")
    events = t.executor.poll(0)
    assert [(type(e).__name__, e.job) for e in events] == [("Finished", sim)]
    assert events[0].result.host == "node1"
    # stats' task ends without a result (a node failure): reported after the grace period
    fake.set_queue(["1002|1002|N/A|NODE_FAIL|None", waiting])
    assert t.executor.poll(0) == []  # first seen gone
    lost = [e for e in t.executor.poll(0) if e.job == stats]
    assert lost[0].result.status.value == "error"
    assert "NODE_FAIL" in lost[0].result.reason
    assert (t.store.outputs / stats / "repx" / "FAIL").exists()
    assert t.executor.cancel() == [next(j for j in t.plan.jobs if j.endswith("-aggregate"))]


def test_auto_bundles_a_big_sweep_with_a_time_limit(tmp_path, fake):
    from labfactory import RunSpec, StageSpec  # noqa: PLC0415

    runs = (
        RunSpec(
            "s",
            parameters={"seed": list(range(200))},
            stages=(StageSpec("sim", params=("seed",)), StageSpec("sum", gather=("sim",))),
        ),
    )
    fake.configure(sinfo="short|0/8/0/8|2:00:00")
    t = setup(tmp_path, runs, rules=[Rule(stage="sim", time="00:10:00")])
    t.executor.flush()
    first = fake.calls("sbatch")[0]["argv"]
    # 200 jobs, 8 CPUs: 4 jobs per slot at most -> 7 jobs per task, 29 tasks, 70 minutes
    assert "--array=0-28" in first and "--time=01:10:00" in first
    assert t.events[0].bundle == 7
    assert fake.calls("sinfo")  # asked once
    # no time limit: one job per task
    fake.configure(sinfo="short|0/8/0/8|2:00:00")
    t2 = setup(tmp_path / "b", runs)
    t2.executor.flush()
    assert "--array=0-199" in fake.calls("sbatch")[2]["argv"]


def test_auto_bundles_beyond_the_budget_and_says_so(tmp_path, fake):
    from labfactory import sweep_runs  # noqa: PLC0415

    # 60 jobs, MaxJobCount 80: one submission takes a quarter (20 tasks) -> 3 jobs per task.
    fake.configure(max_job_count=80)
    t = setup(tmp_path, sweep_runs(60))
    t.executor.flush()
    [call] = fake.calls("sbatch")
    assert "--array=0-19" in call["argv"]
    notices = [e.message for e in t.events if isinstance(e, Notice)]
    assert notices == [
        "stage simulate: 60 job(s) one per task would need 60 tasks (its share of 25% of"
        ' MaxJobCount: 20): up to 3 jobs per task (jobs_per_task = "auto"; set'
        " jobs_per_task in resources.toml to choose)"
    ]


def test_more_tasks_than_max_job_count_is_refused_before_submitting(tmp_path, fake):
    from labfactory import sweep_runs  # noqa: PLC0415

    fake.configure(max_job_count=50)
    t = setup(tmp_path, sweep_runs(60), rules=[Rule(stage="*", jobs_per_task=1)])
    with pytest.raises(SlurmError, match=r"60 SLURM tasks, more than the cluster holds") as exc:
        t.executor.flush()
    assert "jobs_per_task (stage simulate)" in exc.value.details
    assert fake.calls("sbatch") == []
