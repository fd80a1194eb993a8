"""`repx run` speed: 1,000 trivial jobs in one fan-in DAG, against xargs -P2 and Snakemake.

    .venv/bin/python bench/bench_run.py [--jobs 1000] [--noop 10000] [--snakemake /tmp/smk/bin/snakemake]

The DAG: 999 independent `simulate` jobs and one `aggregate` job gathering all of them
(a lab written by tests/labfactory.py: every job is a `/bin/sh` script, run by the lab's
static busybox, that copies its parameters into its output — as trivial as a job gets, so this measures overhead).

- `repx run -j 2 --runtime native` (and `--runtime bwrap`) on a fresh output store;
- `xargs -P2` running the very same 1,000 job commands (the lab's `jobs/<id>/bin/<stage>
  <out> <inputs.json> <parameters.json>`), the 999 first, then the gather job;
- Snakemake (in its own virtualenv: `python3 -m venv /tmp/smk && /tmp/smk/bin/pip install
  snakemake`) on the same DAG with the same commands, `--cores 2`;
- a no-op `repx run` over a lab of `--noop` jobs that are all complete.

Targets (issue 5): repx <= 2x xargs, >= 20x faster than Snakemake, no-op over 10,000 <= 2 s.
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

from labfactory import RunSpec, StageSpec, write_lab  # noqa: E402

REPX = [sys.executable, "-m", "repx"]


def fan_in(width: int) -> tuple[RunSpec, ...]:
    """``width`` simulate jobs and one aggregate gathering them (width + 1 jobs)."""
    return (
        RunSpec(
            name="fanin",
            parameters={"seed": list(range(width))},
            stages=(
                StageSpec("simulate", params=("seed",)),
                StageSpec("aggregate", gather=("simulate",)),
            ),
        ),
    )


def timed(argv: list[str], **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, **kwargs)
    return time.perf_counter() - start


def bench_repx(lab: Path, base: Path, runtime: str) -> float:
    shutil.rmtree(base, ignore_errors=True)
    seconds = timed(
        [*REPX, "run", "--lab", str(lab), "--base", str(base), "-j", "2", "--runtime", runtime],
        stderr=subprocess.DEVNULL,
    )
    done = len(os.listdir(base / "outputs"))
    assert done == len(_job_ids(lab)), f"repx completed {done} jobs"
    return seconds


def _job_ids(lab: Path) -> dict[str, dict]:
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    jobs: dict[str, dict] = {}
    for entry in meta["runs"].values():
        jobs.update(json.loads((lab / entry["manifest"]).read_text())["jobs"])
    return jobs


def _prepare_plain(lab: Path, work: Path) -> tuple[list[list[str]], list[str]]:
    """Per-job directories and the job commands, as repx would run them."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    empty = work / "empty-inputs.json"
    empty.write_text("{}\n")
    simple: list[list[str]] = []
    gather: list[str] = []
    for job_id, job in _job_ids(lab).items():
        out = work / job_id / "out"
        out.mkdir(parents=True)
        exe = str(lab / job["executables"]["main"]["path"])
        params = str(lab / job["parameters_file"])
        if job["inputs"]:
            entries = [
                {"job": i["job"], "params": {}, "path": str(work / i["job"] / "out" / i["output"])}
                for i in job["inputs"]
            ]
            (work / job_id / "gather.json").write_text(json.dumps(entries))
            inputs = work / job_id / "inputs.json"
            inputs.write_text(
                json.dumps({job["inputs"][0]["name"]: str(work / job_id / "gather.json")})
            )
            gather = [exe, str(out), str(inputs), params]
        else:
            simple.append([exe, str(out), str(empty), params])
    return simple, gather


def _sandboxed(cmd: list[str], lab: Path, work: Path) -> list[str]:
    """The job command under the sandbox repx's bwrap runtime builds (repx.bwrap: hermetic
    root, the lab, the work area and the job's out/, /bin/sh from the lab's host-tools)."""
    from repx import bwrap  # noqa: PLC0415 (the bench imports repx only here)

    out = cmd[1]
    tools = next((lab / "host-tools").iterdir()) / "bin"
    links = {"/bin/sh": str(tools / "sh"), "/usr/bin/env": str(tools / "env")}
    options = bwrap.sandbox_options(
        readonly=[lab, work], writable=[Path(out)], links=links, chdir=Path(out)
    )
    return [*options, "--", *cmd]


def bench_xargs(lab: Path, work: Path, sandbox: bool = False) -> float:
    simple, gather = _prepare_plain(lab, work)
    if sandbox:
        simple = [_sandboxed(cmd, lab, work) for cmd in simple]
        gather = [shutil.which("bwrap") or "bwrap", *_sandboxed(gather, lab, work)]
    feed = "".join(f"{arg}\0" for cmd in simple for arg in cmd).encode()
    # The jobs get the same PATH as under repx: the lab's host-tools.
    env = {"PATH": str(next((lab / "host-tools").iterdir()) / "bin")}
    xargs = shutil.which("xargs") or "xargs"
    # Each job's executable differs, so xargs runs `env <exe> <args>` (env execs, no fork).
    launcher = shutil.which("bwrap" if sandbox else "env") or "env"
    per_job = len(simple[0])
    start = time.perf_counter()
    subprocess.run(
        [xargs, "-0", "-P", "2", "-n", str(per_job), launcher], input=feed, check=True, env=env
    )
    subprocess.run(gather, check=True, env=env)
    return time.perf_counter() - start


SNAKEFILE = """
import json
JOBS = json.load(open("jobs.json"))
GATHER = json.load(open("gather.json"))

rule all:
    input: "agg/out/result.json"

rule simulate:
    output: "sim/{i}/out/result.json"
    params: cmd=lambda w: JOBS[int(w.i)]
    shell: "{params.cmd[0]} sim/{wildcards.i}/out empty-inputs.json {params.cmd[1]}"

rule aggregate:
    input: expand("sim/{i}/out/result.json", i=range(len(JOBS)))
    output: "agg/out/result.json"
    shell: "%s agg/out gather-inputs.json %s"
"""


def bench_snakemake(lab: Path, work: Path, snakemake: Path) -> float:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    jobs = _job_ids(lab)
    simple = [(j, v) for j, v in jobs.items() if not v["inputs"]]
    gather_id, gather_job = next((j, v) for j, v in jobs.items() if v["inputs"])
    (work / "jobs.json").write_text(
        json.dumps(
            [
                [str(lab / v["executables"]["main"]["path"]), str(lab / v["parameters_file"])]
                for _, v in simple
            ]
        )
    )
    (work / "empty-inputs.json").write_text("{}\n")
    entries = [
        {"job": j, "params": {}, "path": str(work / "sim" / str(n) / "out" / "result.json")}
        for n, (j, _) in enumerate(simple)
    ]
    (work / "gather.json").write_text(json.dumps(entries))
    name = gather_job["inputs"][0]["name"]
    (work / "gather-inputs.json").write_text(json.dumps({name: str(work / "gather.json")}))
    exe = lab / gather_job["executables"]["main"]["path"]
    (work / "Snakefile").write_text(SNAKEFILE % (exe, lab / gather_job["parameters_file"]))
    env = dict(
        os.environ, PATH=f"{next((lab / 'host-tools').iterdir()) / 'bin'}:{os.environ['PATH']}"
    )
    del gather_id
    return timed(
        [str(snakemake), "--cores", "2", "--quiet", "all", "-s", "Snakefile"],
        cwd=work,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def bench_noop(tmp: Path, size: int) -> tuple[float, float]:
    lab = tmp / f"lab{size}"
    write_lab(lab, fan_in(size - 1))
    base = tmp / f"base{size}"
    first = timed(
        [*REPX, "run", "--lab", str(lab), "--base", str(base), "-j", "2", "--runtime", "native"],
        stderr=subprocess.DEVNULL,
    )
    noop = min(
        timed(
            [*REPX, "run", "--lab", str(lab), "--base", str(base), "--runtime", "native"],
            stderr=subprocess.DEVNULL,
        )
        for _ in range(3)
    )
    return first, noop


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="jobs in the fan-in DAG")
    parser.add_argument("--noop", type=int, default=10_000, help="jobs of the no-op run (0: skip)")
    parser.add_argument("--snakemake", type=Path, default=Path("/tmp/smk/bin/snakemake"))
    parser.add_argument("--repeat", type=int, default=3, help="best of N for repx and xargs")
    parser.add_argument(
        "--tmpdir",
        type=Path,
        default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None,
        help="where the lab and the outputs go (default: /dev/shm, so that a rate-limited"
        " virtual disk does not decide the result)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="repx-bench-run-", dir=args.tmpdir) as tmp_s:
        tmp = Path(tmp_s)
        lab = tmp / "lab"
        write_lab(lab, fan_in(args.jobs - 1), static_tools=True)
        print(
            f"fan-in DAG: {args.jobs} trivial jobs ({args.jobs - 1} independent + 1 gather),"
            f" 2 at once, in {tmp}"
        )
        xargs = min(bench_xargs(lab, tmp / "xargs") for _ in range(args.repeat))
        native = min(bench_repx(lab, tmp / "base", "native") for _ in range(args.repeat))
        bwrap = min(bench_repx(lab, tmp / "base", "bwrap") for _ in range(args.repeat))
        xargs_bwrap = min(bench_xargs(lab, tmp / "xargs", True) for _ in range(args.repeat))
        print(f"  xargs -P2                  {xargs:7.2f} s")
        print(f"  repx run --runtime native  {native:7.2f} s   {native / xargs:5.2f}x xargs")
        print(f"  xargs -P2, each in bwrap   {xargs_bwrap:7.2f} s")
        print(
            f"  repx run --runtime bwrap   {bwrap:7.2f} s   {bwrap / xargs:5.2f}x xargs,"
            f" {bwrap / xargs_bwrap:5.2f}x xargs with the same sandbox"
        )
        if args.snakemake.exists():
            smk = bench_snakemake(lab, tmp / "snakemake", args.snakemake)
            print(
                f"  snakemake --cores 2        {smk:7.2f} s   repx native is {smk / native:5.1f}x faster"
            )
        else:
            print(f"  snakemake: not found at {args.snakemake} (see the module docstring)")
        if args.noop:
            first, noop = bench_noop(tmp, args.noop)
            print(
                f"no-op run over {args.noop} completed jobs: {noop:.2f} s (first run: {first:.1f} s)"
            )


if __name__ == "__main__":
    main()
