"""Per-job overhead of `--runtime podman` against `--runtime bwrap` (issue 13).

A lab of JOBS trivial jobs (the shell stage of bench_revisions.py: one `echo` each) built
with containerMode = "unified", run by `repx run -j 2` on a fresh output store with each
runtime, the fastest of REPEATS runs. podman runs in a private storage and configuration
(`CONTAINERS_STORAGE_CONF`, `CONTAINERS_CONF` under a temporary directory, removed at the
end): the image is loaded by a first, unmeasured run, so the figures are per job, not per
image load. A run of one job alone (start-up, checks, the runtime's probe container, that
job) is subtracted: prints each runtime's total, that fixed part, the seconds per further
job, and the ratio podman / bwrap.

    .venv/bin/python bench/bench_podman.py [--jobs 40] [--json]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_revisions import FLAKE, REPO, SHELL_STAGE, _build, _flake_copy, _write_lab

REPX = [sys.executable, "-m", "repx"]
REPEATS = 3


def _podman_env(root: Path) -> dict[str, str]:
    storage = root / "storage.conf"
    storage.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/graph"\nrunroot = "{root}/run"\n'
    )
    conf = root / "containers.conf"
    conf.write_text(f'[engine]\ntmp_dir = "{root}/tmp"\nevents_logger = "file"\n')
    return {"CONTAINERS_STORAGE_CONF": str(storage), "CONTAINERS_CONF": str(conf)}


def _run(lab: Path, base: Path, runtime: str, env: dict[str, str], *select: str) -> float:
    shutil.rmtree(base, ignore_errors=True)
    started = time.perf_counter()
    proc = subprocess.run(
        [*REPX, "run", *select, "--lab", lab, "--base", base, "-j", "2", "--runtime", runtime],
        check=False,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.exit(f"repx run --runtime {runtime} failed: {proc.stderr.strip()}")
    return time.perf_counter() - started


def _first_job(lab: Path) -> str:
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    manifest = next(iter(meta["runs"].values()))["manifest"]
    return sorted(json.loads((lab / manifest).read_text())["jobs"])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40, help="jobs in the lab")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    if shutil.which("podman") is None:
        sys.exit("podman is not installed (apt-get install podman runc)")
    with tempfile.TemporaryDirectory(prefix="repx-bench-podman-") as tmp:
        work = Path(tmp)
        (work / "repx-flake").mkdir()
        flake = _flake_copy(work / "repx-flake", REPO)
        override = ["--override-input", "repx", f"path:{flake}"]
        directory = work / "lab"
        _write_lab(directory, SHELL_STAGE, " ".join(str(i) for i in range(args.jobs)))
        (directory / "flake.nix").write_text(
            FLAKE.replace("runs = [", 'containerMode = "unified";\n      runs = [')
        )
        _, lab = _build(directory, override)
        (work / "engine").mkdir()
        env = _podman_env(work / "engine")
        try:
            _run(lab, work / "warm", "podman", env)  # loads the image once
            seconds = {
                runtime: min(_run(lab, work / runtime, runtime, env) for _ in range(REPEATS))
                for runtime in ("bwrap", "podman")
            }
            # one job alone: start-up, checks, the runtime's probe (and that job)
            one = _first_job(lab)
            fixed = {
                runtime: min(_run(lab, work / runtime, runtime, env, one) for _ in range(REPEATS))
                for runtime in ("bwrap", "podman")
            }
        finally:
            for cleanup in (("rm", "-af", "-t0"), ("rmi", "-af")):
                subprocess.run(
                    ["podman", *cleanup],
                    env={**os.environ, **env},
                    capture_output=True,
                    check=False,
                )
    per_job = {k: max(v - fixed[k], 0.0) / (args.jobs - 1) for k, v in seconds.items()}
    for runtime, value in per_job.items():
        print(
            f"{runtime:>6}: {seconds[runtime]:.2f} s for {args.jobs} jobs, {fixed[runtime]:.2f} s"
            f" for one (start-up, checks, probe), {value * 1000:.0f} ms per further job"
        )
    ratio = per_job["podman"] / max(per_job["bwrap"], 1e-9)
    print(f"podman / bwrap: {ratio:.1f}x per job (-j 2)")
    if args.json:
        print(json.dumps({"jobs": args.jobs, "seconds": seconds, "fixed": fixed}))


if __name__ == "__main__":
    main()
