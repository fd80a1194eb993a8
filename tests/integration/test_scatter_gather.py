"""Scatter-gather stages end to end: a real lab (tests/assets/labs/scatter) built by nix.

numbers (1 2 3 4) -> squares (scatter: one work item per line; steps extract -> square per
branch; gather: the sum) -> report. Run ``broken`` is the same pipeline whose branch of
number 3 fails in step "square".
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from runlab import assert_store_consistent, build_lab, lab_jobs, repx, run_jobs

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab() -> Path:
    return build_lab("scatter")


def _job(lab: Path, run: str, stage: str) -> str:
    return next(j for j in run_jobs(lab, run) if j.endswith(f"-{stage}"))


def _tokens(root: Path) -> dict[str, str]:
    """branch-N/step-S -> the token that piece wrote (unique per execution)."""
    return {
        f"{p.parent.parent.parent.name}/{p.parent.parent.name}": p.read_text()
        for p in sorted(root.glob("branch-*/step-*/out/token"))
    }


def test_lab_records_the_pieces(lab):
    job = lab_jobs(lab)[_job(lab, "sums", "squares")]
    assert job["stage_type"] == "scatter-gather"
    assert sorted(job["executables"]) == ["gather", "scatter", "step-extract", "step-square"]
    for exe in job["executables"].values():
        assert os.access(lab / exe["path"], os.X_OK)
    layout = job["scatter_gather"]
    assert layout["step_order"] == ["extract", "square"] and layout["sink"] == "square"
    assert layout["steps"]["square"]["inputs"]["number"] == {
        "from": "step",
        "step": "extract",
        "output": "number",
    }
    assert layout["steps"]["extract"]["inputs"]["worker__item"] == {"from": "item"}
    assert layout["steps"]["extract"]["resources"] == {"mem": 64}
    assert layout["gather"]["inputs"]["count"] == {"from": "scatter", "output": "count"}
    # the stage's outputs are the gather's
    assert job["outputs"] == {"sum": "$out/sum.txt"}


def test_local_run_every_branch_and_the_gather(lab, tmp_path):
    base = tmp_path / "base"
    result = repx("run", "sums", "--lab", lab, "--base", base, "--json")
    assert result.returncode == 0, result.stderr
    squares = base / "outputs" / _job(lab, "sums", "squares")
    assert (squares / "out" / "sum.txt").read_text() == "30\n"
    report = base / "outputs" / _job(lab, "sums", "report")
    assert (report / "out" / "report.txt").read_text() == "total 30\n"
    for n in range(4):
        branch = squares / f"branch-{n}"
        assert json.loads((branch / "work_item.json").read_text()) == {"index": n}
        assert (branch / "step-extract" / "out" / "number.txt").read_text() == f"{n + 1}\n"
        assert (branch / "step-square" / "out" / "squared.txt").read_text() == f"{(n + 1) ** 2}\n"
        assert (branch / "step-square" / "repx" / "SUCCESS").exists()
    assert json.loads((squares / "scatter" / "out" / "work_items.json").read_text()) == [
        {"index": n} for n in range(4)
    ]
    # worker__outs names each branch's sink outputs at their committed place
    outs = json.loads((squares / "repx" / "worker_outs.json").read_text())
    assert outs == [
        {"squared": str(squares / f"branch-{n}" / "step-square" / "out" / "squared.txt")}
        for n in range(4)
    ]
    assert not (base / "pieces" / squares.name).exists()
    assert_store_consistent(base, lab)


def test_failing_branch_fails_the_job_and_keeps_finished_pieces(lab, tmp_path):
    base = tmp_path / "base"
    squares = _job(lab, "broken", "squares")
    result = repx("run", "broken", "--lab", lab, "--base", base, "--json")
    assert result.returncode == 1
    [failed] = result.events()[-1]["failed"]
    pieces = base / "pieces" / squares
    log = pieces / "branch-2" / "step-square" / "repx" / "stderr.log"
    assert failed["job"] == squares
    assert failed["reason"] == f"branch-2/step-square failed (exit status 3); its log: {log}"
    assert log.read_text() == "square: failing on 3 on purpose\n"
    assert (pieces / "branch-2" / "step-square" / "repx" / "FAIL").exists()
    # nothing new starts after the failure (cpus = 1: one piece at a time, branch by branch)
    assert sorted(_tokens(pieces)) == [
        "branch-0/step-extract",
        "branch-0/step-square",
        "branch-1/step-extract",
        "branch-1/step-square",
        "branch-2/step-extract",
    ]
    assert not (base / "outputs" / squares / "out").exists()
    assert_store_consistent(base, lab)

    # status and show tell how far the branches got
    status = repx("status", "broken", "--lab", lab, "--base", base, "--json")
    assert status.returncode == 0, status.stderr
    entry = next(e for e in json.loads(status.stdout)["jobs"] if e["id"] == squares)
    assert entry["branches"] == {"done": 2, "total": 4}
    shown = repx("show", "job", squares, "--lab", lab, "--base", base)
    assert shown.returncode == 0, shown.stderr
    assert "2/4 branches" in shown.stdout
    listed = repx("list", "jobs", "--lab", lab, "--base", base, "--stage", "squares")
    assert listed.returncode == 0, listed.stderr
    assert "branches" in listed.stdout and "2/4" in listed.stdout
    table = repx("status", "broken", "--lab", lab, "--base", base)
    assert f"failed: {squares} (2/4 branches)" in table.stdout + table.stderr
    # viz: the stage's pieces, and each job's branch progress
    stages = repx("viz", "-f", "dot", "--lab", lab, "--base", base)
    assert stages.returncode == 0, stages.stderr
    assert "scatter → extract → square → gather" in stages.stdout
    jobs = repx("viz", "-f", "dot", "--level", "jobs", "--lab", lab, "--base", base)
    assert jobs.returncode == 0, jobs.stderr
    assert "2/4 branches" in jobs.stdout

    # A second attempt reuses what was done: only the failed branch runs again.
    before = _tokens(pieces)
    again = repx("run", "broken", "--lab", lab, "--base", base, "--json")
    assert again.returncode == 1
    after = _tokens(pieces)
    assert {k: after[k] for k in before} == before


def test_interrupted_run_resumes_only_unfinished_branches(lab, tmp_path):
    base = tmp_path / "base"
    squares = _job(lab, "sums", "squares")
    # the orchestrator stops the run (SIGTERM to repx run) once 2 branches are complete
    stopped = repx(
        "run",
        "sums",
        "--lab",
        lab,
        "--base",
        base,
        "--json",
        env={"REPX_TEST_SIGNAL_AT": "branch-done:2"},
    )
    assert stopped.returncode != 0
    finished = {e["job"]: e["status"] for e in stopped.events() if e["event"] == "finished"}
    assert finished[squares] == "interrupted"
    pieces = base / "pieces" / squares
    done = _tokens(pieces)
    assert sorted(done) == [
        "branch-0/step-extract",
        "branch-0/step-square",
        "branch-1/step-extract",
        "branch-1/step-square",
    ]
    scatter = json.loads((pieces / "scatter" / "repx" / "result.json").read_text())
    assert not list((pieces / ".work").iterdir())  # the stopped piece left nothing behind

    resumed = repx("run", "sums", "--lab", lab, "--base", base, "--json")
    assert resumed.returncode == 0, resumed.stderr
    committed = base / "outputs" / squares
    assert (committed / "out" / "sum.txt").read_text() == "30\n"
    tokens = _tokens(committed)
    assert {k: tokens[k] for k in done} == done  # branches 0 and 1 did not run again
    assert len(tokens) == 8
    again = json.loads((committed / "scatter" / "repx" / "result.json").read_text())
    assert again["attempt"] == scatter["attempt"]  # nor did the scatter
    assert not pieces.exists()
    assert_store_consistent(base, lab)


# -- SLURM ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_cluster():
    from slurm_cluster import SlurmCluster  # noqa: PLC0415 (only the SLURM tests need it)

    with SlurmCluster.session() as cluster:
        yield cluster


def _slurm_env(tmp_path: Path, base: Path) -> dict[str, str]:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "config.toml").write_text(
        f'default_target = "hpc"\n[targets.hpc]\nscheduler = "slurm"\nbase = "{base}"\n'
        'runtime = "bwrap"\n'
    )
    return {"REPX_CONFIG_DIR": str(config)}


def _arrays(log: Path) -> dict[str, str]:
    """step -> the branches its SLURM array ran, from the orchestrator's log."""
    found = {}
    for line in log.read_text().splitlines():
        if line.startswith("step ") and ": SLURM array " in line:
            step = line.split()[1].rstrip(":")
            found[step] = line.split("(")[1].split()[0]
    return found


@pytest.mark.slurm
def test_slurm_run_one_array_per_step(lab, slurm_cluster, tmp_path):
    base = tmp_path / "base"
    env = _slurm_env(tmp_path, base)
    result = repx("run", "sums", "--lab", lab, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    squares = base / "outputs" / _job(lab, "sums", "squares")
    assert (squares / "out" / "sum.txt").read_text() == "30\n"
    report = base / "outputs" / _job(lab, "sums", "report")
    assert (report / "out" / "report.txt").read_text() == "total 30\n"
    for n in range(4):
        squared = squares / f"branch-{n}" / "step-square" / "out" / "squared.txt"
        assert squared.read_text() == f"{(n + 1) ** 2}\n"
    # the job's task submitted one array per step, over the 4 branches
    assert _arrays(squares / "repx" / "stdout.log") == {"extract": "4", "square": "4"}
    scripts = sorted(p.name for p in (base / "slurm" / f"pieces-{squares.name}").glob("*.sh"))
    assert scripts == ["step-extract.sh", "step-square.sh"]
    assert_store_consistent(base, lab)


@pytest.mark.slurm
def test_slurm_failed_branch_resumes_alone(lab, slurm_cluster, tmp_path):
    base = tmp_path / "base"
    env = _slurm_env(tmp_path, base)
    squares = _job(lab, "broken", "squares")
    first = repx("run", "broken", "--lab", lab, "--wait", "--json", env=env)
    assert first.returncode == 1
    [failed] = first.events()[-1]["failed"]
    assert failed["job"] == squares
    assert failed["reason"].startswith("branch-2/step-square failed")
    status = repx("status", "broken", "--lab", lab, "--json", env=env)
    entry = next(e for e in json.loads(status.stdout)["jobs"] if e["id"] == squares)
    assert entry["branches"] == {"done": 3, "total": 4}
    pieces = base / "pieces" / squares
    before = _tokens(pieces)
    assert len(before) == 7  # every piece but the failed one
    again = repx("run", "broken", "--lab", lab, "--wait", "--json", env=env)
    assert again.returncode == 1
    # only the failed piece was submitted again: one array, one task (branch 2)
    log = base / "outputs" / squares / "repx" / "stdout.log"
    assert _arrays(log) == {"square": "1"}
    assert _tokens(pieces) == before


@pytest.mark.slurm
def test_slurm_cancel_stops_the_step_arrays_and_resume_completes(lab, slurm_cluster, tmp_path):
    import time  # noqa: PLC0415

    from slurm_cluster import squeue_states  # noqa: PLC0415

    base = tmp_path / "base"
    env = _slurm_env(tmp_path, base)
    squares = _job(lab, "sums", "squares")
    # the step arrays are submitted held: they are queued when repx cancel comes
    held = {**env, "REPX_TEST_SIGNAL_AT": "slurm-held"}
    submitted = repx("run", "sums", "--lab", lab, env=held)
    assert submitted.returncode == 0, submitted.stderr
    deadline = time.monotonic() + 60
    arrays: list[str] = []
    while len(arrays) < 2:
        assert time.monotonic() < deadline, "the step arrays were never submitted"
        logs = list((base / ".work").glob(f"{squares}.*/repx/stdout.log"))
        text = logs[0].read_text() if logs else ""
        arrays = [line.split()[4] for line in text.splitlines() if ": SLURM array " in line]
        time.sleep(0.3)
    assert squeue_states(*arrays)  # queued, held
    cancelled = repx("cancel", "--lab", lab, env=env)
    assert cancelled.returncode == 0, cancelled.stderr
    # repx cancel returns once what it cancelled has ended: the step arrays and the
    # scatter job itself (a run right after it must not follow a task about to end)
    scatter_job = cancelled.stdout.split()
    ended = squeue_states(*arrays, *scatter_job)
    assert set(scatter_job) <= set(ended), ended
    assert {ended[task] for task in ended if task.split("_")[0] in arrays} == {"CANCELLED"}
    assert {ended[task] for task in scatter_job} == {"CANCELLED"}, ended
    result = repx("run", "sums", "--lab", lab, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (base / "outputs" / squares / "out" / "sum.txt").read_text() == "30\n"
