"""Inspection speed on generated labs (10,000 jobs by default): wall time including
interpreter start-up.

Two labs of N jobs (--jobs) are written with tests/labfactory.py (to /dev/shm when possible):
  - sweep:    one stage swept over N seeds (N independent jobs);
  - pipeline: N/2 simulate -> N/2 stats -> 1 aggregate gathering them (N+1 jobs).
Each command runs as a fresh process (`repx …` and `python -c …`), stdout to a pipe (the
plain-text path) unless marked "tty" (a pseudo-terminal: what a person sees), first with
no output store and then with one where every job succeeded (10,000 completion records).
`python -c pass` is measured in the same run as the baseline; each median is also printed
as a ratio to it. The first command on a lab writes its header cache (docs/inspecting.md):
each case runs once untimed before it is measured.

    .venv/bin/python bench/bench_inspect.py [--jobs 10000] [--repeat 5]
    .venv/bin/python bench/bench_inspect.py --jobs 100000 --repeat 3

Targets: `repx --help` <= 0.3 s (issue 4); `repx list jobs`, `show job`, `status`,
`trace-params` and `repx.Lab.open` <= 0.3 s at any size (issue 15; 0.5 s was issue 4's
target for `list jobs` and `show job` at 10,000 jobs).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
REPX = str(VENV_BIN / "repx")
sys.path.insert(0, str(REPO / "tests"))

import labfactory  # noqa: E402

TARGETS = {
    "repx --help": 0.3,
    "list jobs": 0.3,
    "show job": 0.3,
    "status": 0.3,
    "trace-params (last job)": 0.3,
    "Lab.open": 0.3,
}


def timed(
    argv: list[str], *, tty: bool = False, repeat: int = 5, warm: bool = False
) -> tuple[float, float]:
    """(best, median) wall seconds of running argv ``repeat`` times; fails on non-zero exit.
    ``warm``: run it once more first, untimed."""
    times = []
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "160"}
    for i in range(repeat + warm):
        if tty:
            seconds, code = _run_on_pty(argv, env)
        else:
            start = time.perf_counter()
            proc = subprocess.run(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, check=False
            )
            seconds, code = time.perf_counter() - start, proc.returncode
            if code != 0:
                sys.exit(f"{' '.join(argv)} failed ({code}): {proc.stderr.decode()}")
        if code != 0:
            sys.exit(f"{' '.join(argv)} failed ({code})")
        if i >= warm:
            times.append(seconds)
    return min(times), statistics.median(times)


def _run_on_pty(argv: list[str], env: dict[str, str]) -> tuple[float, int]:
    master, slave = os.openpty()

    def drain() -> None:
        try:
            while os.read(master, 65536):
                pass
        except OSError:
            pass

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=slave, stderr=subprocess.DEVNULL, env=env, check=False)
    seconds = time.perf_counter() - start
    os.close(slave)
    reader.join(timeout=5)
    os.close(master)
    return seconds, proc.returncode


def fill_store(base: Path, lab: labfactory.FactoryLab) -> float:
    """Record a successful attempt of every job (its declared outputs written) through the
    store's commit protocol, and index the records as ``repx run`` does."""
    from repx.lab.loader import open_lab  # noqa: PLC0415
    from repx.run.spec import output_path  # noqa: PLC0415
    from repx.run.store import Store  # noqa: PLC0415
    from repx.run.store_models import JobResult, JobStatus  # noqa: PLC0415

    start = time.perf_counter()
    loaded = open_lab(lab.root)
    store = Store.open(base)
    now = time.time()
    for job in lab.job_ids:
        lock = store.lock(job)
        work, nonce = store.new_attempt(job)
        (work / "repx" / "stdout.log").write_text("")
        for rel in (output_path(p) for p in loaded.jobs[job].outputs.values()):
            (work / "out" / rel).write_text("")
        result = JobResult(
            job=job,
            status=JobStatus.SUCCEEDED,
            exit_code=0,
            start=now,
            end=now + 0.1,
            host="bench",
            runtime="native",
            lab_id=lab.lab_id,
            attempt=nonce,
        )
        store.commit(job, work, result)
        lock.release()
    store.close()
    store.index_completions()  # as repx run does after committing
    return time.perf_counter() - start


def bench_lab(name: str, lab: labfactory.FactoryLab, base: Path, repeat: int) -> list[tuple]:
    root = str(lab.root)
    job = lab.job_ids[len(lab.job_ids) // 2]
    last = lab.job_ids[-1]
    py = sys.executable
    lab_args = ["--lab", root, "--base", str(base)]
    cases: list[tuple[str, list[str], bool]] = [
        ("list jobs", [REPX, "list", "jobs", *lab_args], False),
        ("list jobs (tty)", [REPX, "list", "jobs", *lab_args], True),
        ("list jobs -p seed", [REPX, "list", "jobs", "-p", "seed", *lab_args], False),
        ("list jobs --json", [REPX, "list", "jobs", "--json", *lab_args], False),
        ("list runs", [REPX, "list", "runs", *lab_args], False),
        ("show job", [REPX, "show", "job", job[:10], *lab_args], False),
        ("show job (tty)", [REPX, "show", "job", job[:10], *lab_args], True),
        ("status", [REPX, "status", *lab_args], False),
        ("trace-params (last job)", [REPX, "trace-params", last[:10], "--lab", root], False),
        ("viz --level stages", [REPX, "viz", "--format", "svg", *lab_args], False),
        ("Lab.open", [py, "-c", f"import repx; repx.Lab.open({root!r})"], False),
        (
            "Lab.open + jobs_frame",
            [py, "-c", f"import repx; repx.Lab.open({root!r}, base={str(base)!r}).jobs_frame()"],
            False,
        ),
    ]
    rows = []
    for label, argv, tty in cases:
        best, median = timed(argv, tty=tty, repeat=repeat, warm=True)
        rows.append((name, label, best, median))
        print(f"  {name}: {label}: {median:.3f} s", flush=True)  # a run cut short keeps these
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    shm = Path("/dev/shm")
    tmp = Path(tempfile.mkdtemp(prefix="repx-bench-inspect-", dir=shm if shm.is_dir() else None))
    try:
        rows = []
        base_best, base_median = timed([sys.executable, "-c", "pass"], repeat=args.repeat)
        rows.append(("-", "python -c pass (baseline)", base_best, base_median))
        rows.append(("-", "repx --help", *timed([REPX, "--help"], repeat=args.repeat)))
        labs = {
            "sweep": labfactory.sweep_runs(args.jobs),
            "pipeline": labfactory.pipeline_runs(args.jobs // 2),
        }
        for name, runs in labs.items():
            start = time.perf_counter()
            lab = labfactory.write_lab(tmp / name, runs)
            print(
                f"{name}: {len(lab.job_ids)} jobs written in {time.perf_counter() - start:.1f} s",
                flush=True,
            )
            rows += bench_lab(f"{name}, no store", lab, tmp / f"{name}-empty", args.repeat)
            seconds = fill_store(tmp / f"{name}-runs", lab)
            print(f"{name}: {len(lab.job_ids)} attempts recorded in {seconds:.1f} s", flush=True)
            rows += bench_lab(f"{name}, all run", lab, tmp / f"{name}-runs", args.repeat)
            shutil.rmtree(tmp / name)  # room for the next lab (100,000 jobs: 1.3 M inodes)
            shutil.rmtree(tmp / f"{name}-runs")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"\n{args.jobs} jobs\n{'lab':<20} {'command':<28} {'best s':>7} {'median s':>9}"
        f" {'/ pass':>7} {'target':>7}"
    )
    failed = []
    for lab_name, label, best, median in rows:
        target = TARGETS.get(label)
        mark = ""
        if target is not None:
            ok = median <= target
            mark = f"{'≤' if ok else '>'}{target:.1f}"
            if not ok:
                failed.append(f"{lab_name}: {label} {median:.2f} s > {target} s")
        ratio = median / base_median if base_median > 0 else float("inf")
        print(f"{lab_name:<20} {label:<28} {best:>7.3f} {median:>9.3f} {ratio:>7.1f} {mark:>7}")
    print(f"\nbaseline (interpreter start-up): {base_median:.3f} s; CPUs: {os.cpu_count()}")
    if failed:
        print("targets missed:\n  " + "\n  ".join(failed))
        sys.exit(1)
    print("all targets met")


if __name__ == "__main__":
    main()
