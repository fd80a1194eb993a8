"""Lab build at scale: generate labs of N jobs, build them with `repx build`, report speed.

For each size it measures, in this process and on this machine:
  - evaluation alone (`nix eval …drvPath`): seconds and peak memory,
  - a clean `repx build` (evaluation + nix build + lab validation): seconds, jobs/s, peak memory,
  - a no-op `repx build` of the same lab.
Targets (issue 3): 10,000 jobs <= 10 s clean and <= 2 s no-op; 100,000 jobs <= 90 s.

    .venv/bin/python bench/bench_lab_build.py [--sizes 100,1000,10000,100000]

The lab: one stage swept over `i` (N/2 values) and a downstream stage per job, so half the
jobs depend on the other half, as in a real sweep with a post-processing step. With
`--kinds dynamic` (or `plain,dynamic`) the first stage's pname, outputs and resources are
functions `{ parameters }: …` of a second parameter `mode` (2 values, i gets N/4), so every
job resolves them for its own parameters (evaluated once per mode, not per job). With
`--kinds scatter` the dynamic lab's downstream stage is a scatter-gather stage (scatter,
two steps, gather): issue 12's build targets hold with both features in use.
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
VENV_BIN = Path(sys.executable).parent

FLAKE = """{
  inputs = { nixpkgs.url = "nixpkgs"; repx.url = "repx"; };
  outputs = { self, nixpkgs, repx }: {
    packages.x86_64-linux.default = repx.lib.mkLab {
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      gitHash = "bench";
      runs = [ (repx.lib.callRun ./run.nix [ ]) ];
    };
  };
}
"""
RUN = """{ name = "sweep"; pipelines = [ ./pipe.nix ]; parameters = { i = builtins.genList (x: x) %d; }; }
"""
PIPE = """{ repx }: repx.mkPipe rec {
  make = repx.callStage ./make.nix [ ];
  post = repx.callStage ./post.nix [ make ];
}
"""
MAKE = """{ pkgs }: {
  pname = "make";
  outputs = { "value.txt" = "$out/value.txt"; };
  parameters = { i = 0; };
  run = { outputs, parameters, ... }: ''
    echo "${parameters.i}" > "${outputs."value.txt"}"
  '';
}
"""
RUN_DYNAMIC = """{ name = "sweep"; pipelines = [ ./pipe.nix ]; parameters = { i = builtins.genList (x: x) %d; mode = [ "fast" "slow" ]; }; }
"""
MAKE_DYNAMIC = """{ pkgs }: {
  pname = { parameters }: "make-${parameters.mode}";
  outputs = { parameters }: { "value.txt" = "$out/value-${parameters.mode}.txt"; };
  resources = { parameters }: { mem = if parameters.mode == "slow" then "1G" else "256M"; };
  parameters = { i = 0; mode = "fast"; };
  run = { outputs, parameters, ... }: ''
    echo "${parameters.i}" > "${outputs."value.txt"}"
  '';
}
"""
POST = """{ pkgs }: {
  pname = "post";
  inputs = [ "value.txt" ];
  outputs = { "double.txt" = "$out/double.txt"; };
  run = { inputs, outputs, ... }: ''
    echo $(( $(cat "${inputs."value.txt"}") * 2 )) > "${outputs."double.txt"}"
  '';
}
"""
POST_SCATTER = """{ pkgs }:
let
  half = {
    inputs = { worker__item = ""; };
    outputs.half = "$out/half.txt";
    run = { inputs, outputs, ... }: ''
      jq -r .v "${inputs.worker__item}" > "${outputs.half}"
    '';
  };
  double = {
    inputs.half = "";
    outputs.double = "$out/double.txt";
    deps = [ half ];
    run = { inputs, outputs, ... }: ''
      echo $(( $(cat "${inputs.half}") * 2 )) > "${outputs.double}"
    '';
  };
in
{
  pname = "post";
  scatter = {
    inputs."value.txt" = "";
    outputs.work__items = "$out/work_items.json";
    run = { inputs, outputs, ... }: ''
      jq -n --argjson v "$(cat "${inputs."value.txt"}")" '[{v: $v}, {v: ($v + 1)}]' \\
        > "${outputs.work__items}"
    '';
  };
  steps = { inherit half double; };
  gather = {
    inputs.worker__outs = "";
    outputs."double.txt" = "$out/double.txt";
    run = { inputs, outputs, ... }: ''
      jq -r '.[].double' "${inputs.worker__outs}" | xargs cat > "${outputs."double.txt"}"
    '';
  };
}
"""


def _timed(argv: list[str], cwd: Path) -> tuple[float, int]:
    """Run argv; return (seconds, peak RSS in MiB of that child, via /usr/bin/time)."""
    with tempfile.NamedTemporaryFile("r") as tf:
        start = time.perf_counter()
        proc = subprocess.run(
            ["/usr/bin/time", "-f", "%M", "-o", tf.name, *argv],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"bench: {' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
        peak_kib = int(tf.read().strip().splitlines()[-1])
    return seconds, peak_kib // 1024


def _flake_copy(dest: Path) -> Path:
    """Copy the working tree's flake (lib + templates) so uncommitted changes are measured."""
    for item in ("flake.nix", "nix", "templates"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item)
        else:
            shutil.copy2(src, dest / item)
    return dest


def bench(sizes: list[int], workdir: Path, kinds: list[str]) -> list[dict[str, float | int | str]]:
    (workdir / "repx-flake").mkdir()
    repx_flake = _flake_copy(workdir / "repx-flake")
    override = ["--override-input", "repx", f"path:{repx_flake}"]
    rows: list[dict[str, float | int | str]] = []
    nonce = f"{time.time_ns():x}"
    for kind, jobs in [(k, n) for k in kinds for n in sizes]:
        exp = workdir / f"lab-{kind}-{jobs}"
        exp.mkdir()
        # A fresh gitHash per invocation: the lab derivation is new, so "clean" builds it
        # (a lab left in the store by an earlier invocation would make it a no-op).
        (exp / "flake.nix").write_text(FLAKE.replace('"bench"', f'"bench-{nonce}"'))
        dynamic = kind in ("dynamic", "scatter")
        (exp / "run.nix").write_text(RUN_DYNAMIC % (jobs // 4) if dynamic else RUN % (jobs // 2))
        (exp / "pipe.nix").write_text(PIPE)
        (exp / "make.nix").write_text(MAKE_DYNAMIC if dynamic else MAKE)
        (exp / "post.nix").write_text(POST_SCATTER if kind == "scatter" else POST)
        # Lock once so the timings below do not include creating flake.lock.
        subprocess.run(
            ["nix", "flake", "lock", *override], cwd=exp, check=True, capture_output=True
        )
        eval_s, eval_mib = _timed(["nix", "eval", "--raw", ".#default.drvPath", *override], cwd=exp)
        build = [
            str(VENV_BIN / "repx"),
            "build",
            "--json",
            "--override-input",
            f"repx=path:{repx_flake}",
        ]
        clean_s, build_mib = _timed(build, cwd=exp)
        noop_s, _ = _timed(build, cwd=exp)
        row: dict[str, float | int | str] = {
            "kind": kind,
            "jobs": jobs,
            "eval_s": round(eval_s, 2),
            "eval_peak_mib": eval_mib,
            "clean_build_s": round(clean_s, 2),
            "jobs_per_s": round(jobs / clean_s),
            "build_peak_mib": build_mib,
            "noop_build_s": round(noop_s, 2),
        }
        rows.append(row)
        print(
            f"{kind:>7} {jobs:>7} jobs  eval {eval_s:6.2f} s ({eval_mib} MiB)  clean build {clean_s:6.2f} s "
            f"({row['jobs_per_s']} jobs/s, {build_mib} MiB)  no-op {noop_s:5.2f} s",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000")
    parser.add_argument(
        "--kinds", default="plain,dynamic,scatter", help="comma-separated: plain, dynamic, scatter"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="repx-bench-") as tmp:
        rows = bench(sizes, Path(tmp), args.kinds.split(","))
    for row in rows:
        if row["jobs"] == 10000:
            ok = row["clean_build_s"] <= 10 and row["noop_build_s"] <= 2
            print(
                f"target 10,000 jobs (<=10 s clean, <=2 s no-op), {row['kind']}: "
                f"{'met' if ok else 'MISSED'}"
            )
        if row["jobs"] == 100000:
            ok = row["clean_build_s"] <= 90
            print(f"target 100,000 jobs (<=90 s clean), {row['kind']}: {'met' if ok else 'MISSED'}")
    if args.json:
        print(json.dumps(rows))
    os.sync()


if __name__ == "__main__":
    main()
