"""`repx run --target <slurm>` speed: a 1,000-job sweep on the local SLURM cluster.

    .venv/bin/python bench/bench_slurm.py [--jobs 1000] [--skip-plain]
    .venv/bin/python bench/bench_slurm.py --sweep 100000

``--sweep N`` measures submission and status only (below); without it, completion:

The sweep is a lab written by tests/labfactory.py (one stage, ``--jobs`` jobs; each job is
a `/bin/sh` script that copies its parameters into its output), so this measures overhead.
Every job declares a time limit of one minute (resources.toml ``[defaults] time``; the plain
array gets the same ``--time``). In the same run, on the same cluster:

- **plain**: one ``sbatch --array=0-999`` whose task i runs job i's command directly (the
  lab's ``jobs/<id>/bin/<stage> <out> <inputs.json> <parameters.json>``, same PATH), one
  SLURM log per task;
- **repx** (the defaults, ``jobs_per_task = "auto"``): ``repx run --target bench --runtime
  native`` (returns after submission), then completion = every job committed in the output
  store (counted in completions.jsonl). "auto" runs several jobs per array task when the
  sweep is much larger than the partition (here 1,000 jobs for 16 CPUs);
- **repx, one job per task** (``jobs_per_task = 1``): every job is its own array task and
  starts the light task (``python -I -S light_task.py``: the standard library only), like
  the plain array starts /bin/sh;
- **the same, full task** (the target's ``slurm.light_tasks = false``): each task starts
  ``python -m repx.run.slurm_task`` (pydantic, the store, the runtime) as before issue 15.

Reported: sbatch calls, submission time, completion time (from the start of submission),
and the ratio to the plain array. Targets (issue 6): submission <= 10 s with <= 20 sbatch
calls; completion within 1.2x of the plain array.

``--sweep N`` (issue 15: a 100,000-job sweep in <= 50 sbatch calls and <= 5 s): the lab is
written to /dev/shm when it exists; every task is submitted held (the target's
``sbatch_options = ["--hold"]``), so nothing runs; measured: ``repx run --target`` (sbatch
calls, jobs per task, wall seconds, and the lab validation inside it, timed apart), then
``repx status --target`` on the pending sweep (squeue calls, wall seconds); then every
array submitted is cancelled by its id. Cases: the defaults with a time limit ("auto"
bundles for the partition), the defaults without one (the budget bundles), and
``jobs_per_task = 1`` (refused before any sbatch call when it would exceed MaxJobCount).
SLURM keeps cancelled tasks for ``MinJobAge`` (counted in MaxJobCount): cases that would
not fit wait for them to go.

A cluster that answers is used as it is; otherwise one is started with
tools/slurm-single-node.sh (16 CPUs declared, batch_sched_delay=0,sched_min_interval=0) and
stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labfactory import sweep_runs, write_lab  # noqa: E402
from slurm_cluster import CPUS, SCHED_PARAMS, SCRIPT, SlurmCluster  # noqa: E402

REPX = [sys.executable, "-m", "repx"]
POLL = 0.1
#: The time limit every job declares.
TIME = "00:01:00"


def _run_bench_target(
    lab: Path, env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float]:
    """``repx run --target bench --json`` of ``lab``: (its result, wall seconds)."""
    start = time.perf_counter()
    result = subprocess.run(
        [*REPX, "run", "--lab", str(lab), "--target", "bench", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result, time.perf_counter() - start


def ensure_cluster(work: Path) -> dict[str, str] | None:
    """Start a cluster unless one answers; return the environment to stop it with."""
    if SlurmCluster.answering():
        print("cluster: using the running one")
        return None
    why = SlurmCluster.missing()
    if why:
        sys.exit(f"bench_slurm: {why}")
    env = {
        **os.environ,
        "SLURM_DIR": str(work / "slurm"),
        "CPUS": str(CPUS),
        "SCHED_PARAMS": SCHED_PARAMS,
    }
    subprocess.run(["bash", str(SCRIPT), "start"], env=env, check=True, capture_output=True)
    print(f"cluster: started (CPUs={CPUS}, {SCHED_PARAMS})")
    return env


def cluster_description() -> str:
    config = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True
    ).stdout
    wanted = ("SchedulerParameters", "MaxArraySize", "SelectTypeParameters")
    keep = [
        line.split("=", 1)
        for line in config.splitlines()
        if line.split("=", 1)[0].strip() in wanted
    ]
    node = subprocess.run(
        ["sinfo", "-h", "-N", "-o", "%N CPUs=%c"], capture_output=True, text=True, check=True
    )
    parts = [f"{k.strip()}={v.strip()}" for k, v in keep]
    return f"node {node.stdout.strip()} ({os.cpu_count()} real), " + ", ".join(parts)


def wait_gone(job_id: str) -> None:
    while True:
        out = subprocess.run(
            ["squeue", "-h", "-r", f"--jobs={job_id}", "-o", "%T"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if not any(s in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") for s in out):
            return
        time.sleep(POLL)


def jobs_of(lab: Path) -> dict[str, dict]:
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    jobs: dict[str, dict] = {}
    for entry in meta["runs"].values():
        jobs.update(json.loads((lab / entry["manifest"]).read_text())["jobs"])
    return jobs


def bench_plain(lab: Path, work: Path) -> tuple[float, float]:
    """One sbatch --array of the job commands; (submission s, completion s)."""
    shutil.rmtree(work, ignore_errors=True)
    (work / "cmd").mkdir(parents=True)
    (work / "logs").mkdir()
    meta = json.loads((lab / "lab" / "lab-metadata.json").read_text())
    path = lab / meta["host_tools"] / "bin"
    for i, (job_id, job) in enumerate(sorted(jobs_of(lab).items())):
        out = work / "jobs" / job_id
        (out / "out").mkdir(parents=True)
        (out / "inputs.json").write_text("{}\n")
        shutil.copyfile(lab / job["parameters_file"], out / "parameters.json")
        exe = lab / job["executables"]["main"]["path"]
        (work / "cmd" / f"{i}.sh").write_text(
            f"cd {out / 'out'} && PATH={path} exec {exe} {out / 'out'} {out / 'inputs.json'} {out / 'parameters.json'}\n"
        )
    count = len(list((work / "cmd").iterdir()))
    script = work / "array.sh"
    script.write_text(f'#!/bin/sh\nexec /bin/sh {work}/cmd/"$SLURM_ARRAY_TASK_ID".sh\n')
    start = time.perf_counter()
    job_id = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{count - 1}",
            f"--output={work}/logs/%A_%a.log",
            f"--chdir={work}",
            str(script),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    submitted = time.perf_counter() - start
    wait_gone(job_id)
    done = time.perf_counter() - start
    missing = [p for p in (work / "jobs").iterdir() if not (p / "out" / "result.json").exists()]
    assert not missing, f"plain array: {len(missing)} job(s) without output"
    return submitted, done


def bench_repx(
    lab: Path, work: Path, resources: str, *, light: bool = True
) -> tuple[int, int, float, float]:
    """repx run --target bench; (sbatch calls, jobs per task, submission s, completion s)."""
    shutil.rmtree(work, ignore_errors=True)
    config = work / "config"
    config.mkdir(parents=True)
    base = work / "base"
    (config / "config.toml").write_text(
        f'[targets.bench]\nscheduler = "slurm"\nbase = "{base}"\nruntime = "native"\n'
        f"[targets.bench.slurm]\nlight_tasks = {'true' if light else 'false'}\n"
    )
    (config / "resources.toml").write_text(resources)
    env = {**os.environ, "REPX_CONFIG_DIR": str(config)}
    total = len(jobs_of(lab))
    start = time.perf_counter()
    result, submitted = _run_bench_target(lab, env)
    if result.returncode != 0:
        sys.exit(f"repx run failed:\n{result.stderr}")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    calls = sum(1 for e in events if e["event"] == "submitted")
    bundle = max(e["bundle"] for e in events if e["event"] == "submitted")
    completions = base / "completions.jsonl"
    while True:
        try:
            with completions.open("rb") as f:
                done = sum(1 for _ in f)
        except FileNotFoundError:
            done = 0
        if done >= total:
            break
        time.sleep(POLL)
    finished = time.perf_counter() - start
    records = [json.loads(line) for line in completions.read_text().splitlines()]
    assert all(r["status"] == "succeeded" for r in records), "a job failed"
    for slurm_id in (e["slurm_id"] for e in events if e["event"] == "submitted"):
        wait_gone(slurm_id)  # leave the cluster idle for the next measurement
    return calls, bundle, submitted, finished


def cluster_config(key: str) -> str:
    config = subprocess.run(
        ["scontrol", "show", "config"], capture_output=True, text=True, check=True
    ).stdout
    for line in config.splitlines():
        name, _, value = line.partition("=")
        if name.strip() == key:
            return value.strip()
    return ""


def job_records() -> int:
    """Job records the controller holds now (array tasks each count, cancelled ones too)."""
    out = subprocess.run(
        ["squeue", "-h", "-r", "--states=all", "-o", "%i"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.count("\n")


def validation_seconds(lab: Path) -> float:
    """Wall seconds of the lab validation that `repx run` does before planning."""
    code = (
        "import sys, time; from repx.lab.loader import open_lab;"
        " from repx.lab.validate import validate_lab; from pathlib import Path;"
        " lab = open_lab(Path(sys.argv[1]));"
        " t = time.perf_counter(); validate_lab(lab); print(time.perf_counter() - t)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(lab)], capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def bench_sweep_case(lab: Path, work: Path, resources: str, jobs: int) -> str:
    """One submission of the held sweep, its status, its cancellation: one table row."""
    shutil.rmtree(work, ignore_errors=True)
    config = work / "config"
    config.mkdir(parents=True)
    base = work / "base"
    (config / "config.toml").write_text(
        f'[targets.bench]\nscheduler = "slurm"\nbase = "{base}"\nruntime = "native"\n'
        '[targets.bench.slurm]\nsbatch_options = ["--hold"]\n'
    )
    (config / "resources.toml").write_text(resources)
    env = {**os.environ, "REPX_CONFIG_DIR": str(config)}
    limit = int(cluster_config("MaxJobCount") or 10000)
    while job_records() + jobs // 4 > limit * 3 // 4:  # room for this case and others
        time.sleep(5)
    result, submitted = _run_bench_target(lab, env)
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    ids = [e["slurm_id"] for e in events if e["event"] == "submitted"]
    try:
        if result.returncode != 0:
            said = result.stderr.strip().splitlines()[0] if result.stderr.strip() else "?"
            return f"{'refused':>6} {'-':>9} {submitted:>10.2f}s {'-':>11} {'-':>7}  {said}"
        bundle = max(e["bundle"] for e in events if e["event"] == "submitted")
        notices = [e["message"] for e in events if e["event"] == "notice"]
        start = time.perf_counter()
        status = subprocess.run(
            [*REPX, "status", "--lab", str(lab), "--target", "bench", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        status_s = time.perf_counter() - start
        counts = json.loads(status.stdout)
        queued = sum(row["counts"].get("queued", 0) for row in counts["stages"])
        return f"{len(ids):>6} {bundle:>9} {submitted:>10.2f}s {status_s:>10.2f}s {queued:>7}" + (
            f"  {notices[0]}" if notices else ""
        )
    finally:
        if ids:
            subprocess.run(["scancel", *ids], check=False)


def bench_sweep(jobs: int, work: Path) -> None:
    shm = Path("/dev/shm")
    root = Path(tempfile.mkdtemp(prefix="repx-bench-sweep-", dir=shm if shm.is_dir() else work))
    try:
        start = time.perf_counter()
        lab = write_lab(root / "lab", sweep_runs(jobs)).root
        print(f"lab: {jobs} jobs (one swept stage) written in {time.perf_counter() - start:.1f} s")
        print(f"lab validation (inside every repx run): {validation_seconds(lab):.2f} s\n")
        timed = f'[defaults]\ntime = "{TIME}"\n'
        cases = [
            ("defaults, time limit", timed),
            ("defaults, no time limit", ""),
            ("jobs_per_task = 1", "[defaults]\njobs_per_task = 1\n"),
        ]
        print(
            f"{'':24} {'sbatch':>6} {'jobs/task':>9} {'repx run':>11} {'status':>11} {'queued':>7}"
        )
        for i, (name, resources) in enumerate(cases):
            print(f"{name:24} {bench_sweep_case(lab, root / str(i), resources, jobs)}")
        print("\ntarget (issue 15): <= 50 sbatch calls, <= 5 s of submission work")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--sweep", type=int, metavar="N", help="submission and status only")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="repx-bench-slurm-"))
    stop_env = ensure_cluster(work)
    try:
        if args.sweep:
            print(cluster_description())
            bench_sweep(args.sweep, work)
            return
        print(cluster_description())
        lab = write_lab(work / "lab", sweep_runs(args.jobs)).root
        print(f"lab: {args.jobs} jobs (one swept stage), runtime native, time limit {TIME}\n")
        plain = None if args.skip_plain else bench_plain(lab, work / "plain")
        timed = f'[defaults]\ntime = "{TIME}"\n'
        rows = [
            ("repx (defaults)", *bench_repx(lab, work / "auto", timed)),
            (
                "repx, jobs_per_task = 1",
                *bench_repx(lab, work / "one", timed + "jobs_per_task = 1\n"),
            ),
            (
                "  the same, full task",
                *bench_repx(lab, work / "full", timed + "jobs_per_task = 1\n", light=False),
            ),
        ]
        head = (
            f"{'':26} {'sbatch calls':>12} {'jobs/task':>9} {'submission':>11} {'completion':>11}"
        )
        print(head + f" {'vs plain':>9}")
        if plain is not None:
            print(
                f"{'plain sbatch --array':26} {1:>12} {1:>9} {plain[0]:>10.2f}s {plain[1]:>10.2f}s {1.0:>8.2f}x"
            )
        for name, calls, bundle, submitted, finished in rows:
            ratio = f"{finished / plain[1]:>8.2f}x" if plain else "       -"
            print(
                f"{name:26} {calls:>12} {bundle:>9} {submitted:>10.2f}s {finished:>10.2f}s {ratio}"
            )
        print(
            "\ntargets: submission <= 10 s with <= 20 sbatch calls; completion <= 1.2x plain"
            " (defaults), <= 1.5x plain (jobs_per_task = 1, issue 15)"
        )
    finally:
        if stop_env is not None:
            subprocess.run(
                ["bash", str(SCRIPT), "stop"], env=stop_env, capture_output=True, check=False
            )
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
