"""`repx run --target <slurm>` on a real single-node SLURM cluster (tests/slurm_cluster.py).

The example lab (real nix build) gives the same bytes on SLURM as locally; failures block
their dependents in SLURM too; a job cancelled with scancel while it runs is recorded as
failed and a resume completes the lab; arrays and dependencies are what scontrol shows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import pytest
from runlab import assert_store_consistent, build_lab, lab_jobs, outputs_digest, repx, run_jobs

from labfactory import RunSpec, StageSpec, pipeline_runs, refresh_integrity, write_lab
from repx.run.slurm_models import job_refs, read_submissions
from repx.run.store import Store
from slurm_cluster import SlurmCluster, show_job, squeue_states

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(scope="module")
def slurm_cluster():
    with SlurmCluster.session() as cluster:
        yield cluster


def target_env(tmp_path: Path, base: Path, *, runtime: str = "native", extra: str = "") -> dict:
    """A config.toml with the SLURM target ``hpc`` (and REPX_CONFIG_DIR pointing at it)."""
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(
        f'default_target = "hpc"\n[targets.hpc]\nscheduler = "slurm"\nbase = "{base}"\n'
        f'runtime = "{runtime}"\n{extra}'
    )
    return {"REPX_CONFIG_DIR": str(config)}


def status(lab: Path, env: dict) -> dict[str, dict]:
    result = repx("status", "--lab", lab, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return {e["id"]: e for e in json.loads(result.stdout)["jobs"]}


def wait_settled(
    lab: Path, env: dict, *, results: Iterable[str] = (), timeout: float = 120
) -> dict[str, dict]:
    """Poll `repx status` until no job is queued or running and every job of ``results``
    (those whose task ran, so the store gets their result) is succeeded or failed.

    ``cancelled`` or ``pending`` is not the end for such a job: SLURM may say CANCELLED
    while the task's wrapper still commits its result.
    """
    expected = set(results)
    deadline = time.monotonic() + timeout
    while True:
        states = status(lab, env)
        active = any(e["status"] in ("queued", "running") for e in states.values())
        recorded = all(states[j]["status"] in ("succeeded", "failed") for j in expected)
        if not active and recorded:
            return states
        if time.monotonic() > deadline:
            pytest.fail(f"jobs not settled after {timeout} s: {states}")
        time.sleep(0.5)


def task_ids(records: list[dict[str, str]]) -> set[int]:
    """Array indices of ``scontrol show job`` records (``0-4``, ``0,2``, ``3``)."""
    ids: set[int] = set()
    for record in records:
        for part in record["ArrayTaskId"].split("%")[0].split(","):
            low, _, high = part.partition("-")
            ids.update(range(int(low), int(high or low) + 1))
    return ids


def submitted_ids(stdout: str) -> list[str]:
    return [line.strip() for line in stdout.splitlines() if line.strip()]


def sleepy_lab(root: Path, runs) -> Path:
    """A factory lab whose host-tools also offer `sleep` (factory labs need no nix)."""
    lab = write_lab(root, runs).root
    tools = next((lab / "host-tools").iterdir()) / "bin"
    # a copy, listed: the lab's integrity list covers every entry (and no link leaves the lab)
    shutil.copy(os.path.realpath(shutil.which("sleep")), tools / "sleep")
    refresh_integrity(lab)
    return lab


# -- the example lab --------------------------------------------------------------------------


def test_example_lab_on_slurm_is_byte_identical_to_local(slurm_cluster, tmp_path):
    lab = build_lab("template")  # numpy, pandas and matplotlib jobs on the nodes
    local = repx("run", "--lab", lab, "--base", tmp_path / "local", "--runtime", "native")
    assert local.returncode == 0, local.stderr
    base = tmp_path / "slurm"
    env = target_env(tmp_path, base, runtime="bwrap")
    result = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    events = result.events()
    submitted = [e for e in events if e["event"] == "submitted"]
    # 8 simulate jobs in one array, then aggregate, then plot: three sbatch calls
    assert [(e["stage"], e["jobs"], e["array"]) for e in submitted] == [
        ("simulate", 8, "0-7"),
        ("aggregate", 1, None),
        ("plot", 1, None),
    ]
    assert submitted[1]["dependency"] == f"afterok:{submitted[0]['slurm_id']}"
    summary = events[-1]
    assert summary["succeeded"] == 10 and summary["slurm_ids"] == [e["slurm_id"] for e in submitted]
    jobs = sorted(lab_jobs(lab))
    assert outputs_digest(base, jobs) == outputs_digest(tmp_path / "local", jobs)
    results = [
        json.loads((base / "outputs" / j / "repx" / "result.json").read_text()) for j in jobs
    ]
    assert {r["runtime"] for r in results} == {"bwrap"}
    assert_store_consistent(base, lab)
    assert set(status(lab, env)[j]["status"] for j in jobs) == {"succeeded"}
    # a second run has nothing to submit
    again = repx("run", "--lab", lab, "--json", env=env)
    assert again.returncode == 0, again.stderr
    assert not [e for e in again.events() if e["event"] == "submitted"]
    assert again.events()[-1]["cached"] == 10


# -- failures ---------------------------------------------------------------------------------


def test_failing_job_blocks_its_dependents(slurm_cluster, tmp_path):
    lab = build_lab("pipeline")
    env = target_env(tmp_path, tmp_path / "base")
    result = repx("run", "@failing", "--lab", lab, env=env)
    assert result.returncode == 0, result.stderr
    assert len(submitted_ids(result.stdout)) == 4  # work array, total, after-soft, after-hard
    jobs = lab_jobs(lab)
    broken = run_jobs(lab, "broken")
    failing = next(j for j in broken if j.endswith("-work") and jobs[j]["params"]["i"] == 3)
    total = next(j for j in broken if j.endswith("-total"))
    [hard] = run_jobs(lab, "after-hard")
    [soft] = run_jobs(lab, "after-soft")
    work = [j for j in broken if j.endswith("-work")]
    states = wait_settled(lab, env, results=[*work, soft])
    assert states[failing]["status"] == "failed" and states[failing]["exit_code"] == 3
    assert states[total]["status"] == "blocked"
    assert states[hard]["status"] == "blocked"  # hard run dependency: afterok
    assert states[soft]["status"] == "succeeded"  # soft run dependency: afterany
    others = [j for j in broken if j.endswith("-work") and j != failing]
    assert all(states[j]["status"] == "succeeded" for j in others)
    stderr = (tmp_path / "base" / "outputs" / failing / "repx" / "stderr.log").read_text()
    assert stderr == "work 3: failing on purpose\n"
    assert_store_consistent(tmp_path / "base", lab)

    # --wait reports the same, and resubmits only what is missing (it fails again)
    again = repx("run", "@failing", "--lab", lab, "--wait", "--json", env=env)
    assert again.returncode == 1
    submitted = [e for e in again.events() if e["event"] == "submitted"]
    assert sum(e["jobs"] for e in submitted) == 3  # the failed job, total, after-hard
    summary = again.events()[-1]
    assert [f["job"] for f in summary["failed"]] == [failing]
    assert summary["blocked"] == 2 and summary["cached"] == 4


def write_flaky_lab(root: Path, fixed: Path) -> Path:
    """work(seed 1..4) -> post (1:1) -> total (gather); seed 3 fails until ``fixed`` exists."""
    work = (
        'p=$(cat "$params")\n'
        f'case "$p" in *\'"seed":3\'*) [ -e {fixed} ] || {{ echo boom >&2; exit 3; }};; esac\n'
        'cat "$params" > "$out/result.json"'
    )
    runs = (
        RunSpec(
            "p",
            parameters={"seed": [1, 2, 3, 4]},
            stages=(
                StageSpec("work", params=("seed",), script=work),
                StageSpec("post", after=("work",)),
                StageSpec("total", gather=("post",)),
            ),
        ),
    )
    return write_lab(root, runs).root


def test_resume_after_a_failure_submits_only_what_is_missing(slurm_cluster, tmp_path):
    fixed = tmp_path / "fixed"
    lab = write_flaky_lab(tmp_path / "lab", fixed)
    base = tmp_path / "base"
    env = target_env(tmp_path, base)
    first = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert first.returncode == 1
    shapes = [
        (e["stage"], e["array"], e["dependency"])
        for e in first.events()
        if e["event"] == "submitted"
    ]
    work_id = next(e["slurm_id"] for e in first.events() if e["event"] == "submitted")
    assert [s[:2] for s in shapes] == [("work", "0-3"), ("post", "0-3"), ("total", None)]
    assert shapes[1][2] == f"aftercorr:{work_id}"  # a 1:1 chain stays one array
    summary = first.events()[-1]
    assert summary["succeeded"] == 6 and len(summary["failed"]) == 1 and summary["blocked"] == 2
    tokens = {
        j: (base / "outputs" / j / "repx" / "result.json").read_text()
        for j in os.listdir(base / "outputs")
    }

    fixed.touch()
    second = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert second.returncode == 0, second.stderr
    submitted = [e for e in second.events() if e["event"] == "submitted"]
    assert sum(e["jobs"] for e in submitted) == 3
    assert second.events()[-1]["cached"] == 6
    for job, text in tokens.items():  # succeeded jobs were not run again
        if json.loads(text)["status"] == "succeeded":
            assert (base / "outputs" / job / "repx" / "result.json").read_text() == text
    assert {e["status"] for e in status(lab, env).values()} == {"succeeded"}


def test_scancel_of_a_running_job_is_a_failure_and_resume_completes(slurm_cluster, tmp_path):
    quick = tmp_path / "quick"  # once it exists, the slow job no longer sleeps
    script = (
        f'[ -e {quick} ] || sleep "$(jq -r .pause "$params")"\ncat "$params" > "$out/result.json"'
    )
    runs = (
        RunSpec(
            "p",
            parameters={"pause": [0, 60]},
            stages=(
                StageSpec("work", params=("pause",), script=script),
                StageSpec("total", gather=("work",)),
            ),
        ),
    )
    lab = sleepy_lab(tmp_path / "lab", runs)
    base = tmp_path / "base"
    env = target_env(tmp_path, base)
    submitted = repx("run", "--lab", lab, env=env)
    assert submitted.returncode == 0, submitted.stderr
    work_id, _total_id = submitted_ids(submitted.stdout)
    jobs = lab_jobs(lab)
    slow = next(j for j, job in jobs.items() if job["params"].get("pause") == 60)
    total = next(j for j in jobs if j.endswith("-total"))
    deadline = time.monotonic() + 60
    # Running in the store's sense: its wrapper holds the job's lock (squeue says RUNNING
    # earlier, while the wrapper is still starting; a task cancelled then never ran and
    # `repx status` shows SLURM's `cancelled`).
    store = Store(base)
    while status(lab, env)[slow]["status"] != "running" or not store.is_locked(slow):
        assert time.monotonic() < deadline, "the slow job never started"
        time.sleep(0.3)
    task = job_refs(read_submissions(base))[slow].ref
    assert task.startswith(f"{work_id}_")
    assert list(base.glob("slurm/*/*-work.tasks"))  # one plain job per task: light tasks
    # repx reports "running" from the job's lock; squeue can lag behind under load.
    while squeue_states(work_id).get(task) != "RUNNING":
        assert time.monotonic() < deadline, f"squeue never showed {task} running"
        time.sleep(0.3)
    subprocess.run(["scancel", task], check=True)  # as a user would, behind repx's back
    # the slow task ran: its wrapper records the interruption (SLURM says CANCELLED first)
    states = wait_settled(lab, env, results=[slow])
    assert states[slow]["status"] == "failed"
    assert states[slow]["reason"] == "interrupted"
    assert states[total]["status"] == "blocked"
    assert not (base / "outputs" / slow / "out").exists()
    assert (base / "outputs" / slow / "repx" / "FAIL").exists()
    assert_store_consistent(base, lab)
    quick_job = next(j for j in jobs if j not in (slow, total))
    first_result = (base / "outputs" / quick_job / "repx" / "result.json").read_text()

    quick.touch()
    resumed = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert resumed.returncode == 0, resumed.stderr
    events = resumed.events()
    assert sum(e["jobs"] for e in events if e["event"] == "submitted") == 2
    assert events[-1]["succeeded"] == 2 and events[-1]["cached"] == 1
    assert {e["status"] for e in status(lab, env).values()} == {"succeeded"}
    assert (base / "outputs" / quick_job / "repx" / "result.json").read_text() == first_result
    assert_store_consistent(base, lab)


# -- what SLURM sees ----------------------------------------------------------------------------


def test_arrays_and_dependencies_in_scontrol(slurm_cluster, tmp_path):
    runs = (
        RunSpec(
            "pipeline",
            parameters={"seed": list(range(5))},
            stages=(
                StageSpec(
                    "simulate",
                    params=("seed",),
                    script='sleep 30\ncat "$params" > "$out/result.json"',
                ),
                StageSpec("stats", after=("simulate",)),
                StageSpec("aggregate", gather=("stats",)),
            ),
        ),
    )
    lab = sleepy_lab(tmp_path / "lab", runs)
    env = target_env(
        tmp_path,
        tmp_path / "base",
        extra='[targets.hpc.slurm]\nsbatch_options = ["--comment=repx-test"]\n',
    )
    result = repx("run", "--lab", lab, env=env)
    assert result.returncode == 0, result.stderr
    simulate, stats, aggregate = submitted_ids(result.stdout)
    try:
        sim = show_job(simulate)
        assert task_ids(sim) == set(range(5))
        assert {r["ArrayJobId"] for r in sim} == {simulate}
        assert {r["JobName"] for r in sim} == {"repx-simulate"}
        assert {r["Comment"] for r in sim} == {"repx-test"}
        st = show_job(stats)
        assert task_ids(st) == set(range(5)) and {r["ArrayJobId"] for r in st} == {stats}
        assert all(r["Dependency"].startswith(f"aftercorr:{simulate}_*") for r in st)
        [ag] = show_job(aggregate)
        assert "ArrayTaskId" not in ag
        assert ag["Dependency"].startswith(f"afterok:{stats}_*")
        states = status(lab, env)
        assert {e["status"] for j, e in states.items() if j.endswith("-stats")} == {"queued"}
    finally:
        cancelled = repx("cancel", "--lab", lab, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert set(submitted_ids(cancelled.stdout)) == {simulate, stats, aggregate}
    states = wait_settled(lab, env)
    assert {e["status"] for j, e in states.items() if j.endswith("-stats")} <= {
        "cancelled",
        "blocked",
    }


def test_bundles_run_several_jobs_per_task(slurm_cluster, tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline_runs(10)).root
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "resources.toml").write_text(
        '[defaults]\ntime = "00:02:00"\n[[rules]]\nstage = "s*"\njobs_per_task = 4\nmem = "64M"\n'
    )
    env = target_env(tmp_path, tmp_path / "base")
    result = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    submitted = {e["stage"]: e for e in result.events() if e["event"] == "submitted"}
    # stats is a 1:1 chain after simulate: one job per task there, and so for simulate
    assert submitted["simulate"]["bundle"] == 1 and submitted["stats"]["array"] == "0-9"
    assert result.events()[-1]["succeeded"] == 21
    [sim] = show_job(submitted["simulate"]["slurm_id"])[:1]
    assert sim["TimeLimit"] == "00:02:00"

    sweep = write_lab(
        tmp_path / "sweep",
        (
            RunSpec(
                "s",
                parameters={"seed": list(range(10))},
                stages=(
                    StageSpec("sim", params=("seed",)),
                    StageSpec("sum", gather=("sim",)),
                ),
            ),
        ),
    ).root
    result = repx("run", "--lab", sweep, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    submitted = {e["stage"]: e for e in result.events() if e["event"] == "submitted"}
    assert submitted["sim"]["bundle"] == 4 and submitted["sim"]["array"] == "0-2"
    records = show_job(submitted["sim"]["slurm_id"])
    assert {r["TimeLimit"] for r in records} == {"00:08:00"}  # 4 jobs x 2 minutes
    assert result.events()[-1]["succeeded"] == 11


def test_second_submission_follows_the_first(slurm_cluster, tmp_path):
    script = 'sleep 2\ncat "$params" > "$out/result.json"'
    runs = (
        RunSpec(
            "p",
            parameters={"seed": [1, 2]},
            stages=(StageSpec("work", params=("seed",), script=script),),
        ),
    )
    lab = sleepy_lab(tmp_path / "lab", runs)
    env = target_env(tmp_path, tmp_path / "base")
    first = repx("run", "--lab", lab, env=env)
    assert first.returncode == 0, first.stderr
    second = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert second.returncode == 0, second.stderr
    events = second.events()
    assert not [e for e in events if e["event"] == "submitted"]
    assert any(
        e["event"] == "warning" and "already queued or running" in e["message"] for e in events
    )
    assert events[-1]["succeeded"] == 2


# -- bad input ----------------------------------------------------------------------------------


def test_unknown_partition_shows_slurms_message(slurm_cluster, tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline_runs(2)).root
    extra = '[targets.hpc.slurm]\npartition = "nosuchpartition"\n'
    env = target_env(tmp_path, tmp_path / "base", extra=extra)
    result = repx("run", "--lab", lab, env=env)
    assert result.returncode == 1
    assert "target 'hpc'" in result.stderr and "stage 'simulate'" in result.stderr
    assert "Invalid partition name specified" in result.stderr
    assert "-simulate" in result.stderr  # a job is named
    assert {e["status"] for e in status(lab, env).values()} <= {"pending", "waiting"}


def test_invalid_resources_fail_before_submission(slurm_cluster, tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline_runs(2)).root
    env = target_env(tmp_path, tmp_path / "base")
    resources = tmp_path / "res.toml"
    resources.write_text('[[rules]]\nstage = "stats"\nmem = "lots"\n')
    result = repx("run", "--lab", lab, "--resources", resources, env=env)
    assert result.returncode == 2
    assert "rules[0] (stage 'stats'): mem: invalid value \"lots\"" in result.stderr
    assert not (tmp_path / "base" / "slurm").exists()


def test_unreachable_controller_names_the_target(tmp_path):
    if shutil.which("squeue") is None:
        pytest.skip("SLURM is not installed")
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "ClusterName=nowhere\nSlurmctldHost=localhost\nSlurmctldPort=9\nAuthType=auth/none\n"
        "CredType=cred/none\nNodeName=localhost CPUs=1 State=UNKNOWN\n"
        "PartitionName=debug Nodes=ALL Default=YES\n"
    )
    lab = write_lab(tmp_path / "lab", pipeline_runs(1)).root
    env = {**target_env(tmp_path, tmp_path / "base"), "SLURM_CONF": str(conf)}
    result = repx("run", "--lab", lab, env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "target 'hpc'" in result.stderr and "cannot be reached" in result.stderr


def test_missing_sbatch_names_the_target(tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline_runs(1)).root
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**target_env(tmp_path, tmp_path / "base"), "PATH": str(empty)}
    result = repx("run", "--lab", lab, env=env)
    assert result.returncode == 2
    assert "target 'hpc'" in result.stderr and "was not found on PATH" in result.stderr
