"""Lab revisions share what does not change: rebuild time, store growth and export size.

Two labs, each built once (warm: host-tools, closure description and stage scripts exist),
then rebuilt after a one-parameter change (one more sweep value), all in this process:
  - "shell": a stage using only the lab's shell tools,
  - "python": a stage using python3.withPackages (numpy, pandas, matplotlib).
For each: seconds of the rebuild (`nix build`, evaluation included; the fastest of
REPEATS changes) and of evaluation alone (`nix eval` of the .drv path afterwards), store growth of the revision (NAR size of
the store paths the new revision added to the closure), the revision's own size, the closure
it links to, and `repx export` (size and seconds). Target (issue 11): the python rebuild
takes at most 1.5x the shell rebuild.

    .venv/bin/python bench/bench_revisions.py [--json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
NIX = ["nix", "--extra-experimental-features", "nix-command flakes"]
NO_CACHE = ["--no-write-lock-file", "--option", "eval-cache", "false"]
#: Rebuilds measured per lab (each adds one sweep value); the fastest is reported.
REPEATS = 3

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
RUN = """{ name = "sweep"; pipelines = [ ./pipe.nix ]; parameters = { i = [ %s ]; }; }
"""
PIPE = """{ repx }: repx.mkPipe { make = repx.callStage ./make.nix [ ]; }
"""
SHELL_STAGE = """{ pkgs }: {
  pname = "make";
  outputs = { "value.txt" = "$out/value.txt"; };
  parameters = { i = 0; };
  run = { outputs, parameters, ... }: ''
    echo "${parameters.i}" > "${outputs."value.txt"}"
  '';
}
"""
PYTHON_STAGE = """{ pkgs }: {
  pname = "make";
  outputs = { "value.txt" = "$out/value.txt"; };
  parameters = { i = 0; };
  runDependencies = [ (pkgs.python3.withPackages (ps: [ ps.numpy ps.pandas ps.matplotlib ])) ];
  run = { outputs, parameters, ... }: ''
    python3 -c "import numpy, pandas, matplotlib; print(int(numpy.arange(${parameters.i}).sum()))" \\
      > "${outputs."value.txt"}"
  '';
}
"""


def _flake_copy(dest: Path, repo: Path) -> Path:
    """Copy the working tree's flake so uncommitted changes are measured."""
    for item in ("flake.nix", "nix", "templates"):
        src = repo / item
        if src.is_dir():
            shutil.copytree(src, dest / item)
        else:
            shutil.copy2(src, dest / item)
    return dest


def _write_lab(directory: Path, stage: str, values: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / "flake.nix").write_text(FLAKE)
    (directory / "run.nix").write_text(RUN % values)
    (directory / "pipe.nix").write_text(PIPE)
    (directory / "make.nix").write_text(stage)


def _eval(directory: Path, override: list[str]) -> float:
    """Seconds of evaluation alone (the lab's .drv path), without the eval cache."""
    started = time.monotonic()
    subprocess.run(
        [*NIX, "eval", *NO_CACHE, "--raw", ".#default.drvPath", *override],
        cwd=directory,
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def _build(directory: Path, override: list[str]) -> tuple[float, Path]:
    started = time.monotonic()
    result = subprocess.run(
        [*NIX, "build", *NO_CACHE, "-o", "result", *override],
        cwd=directory,
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"nix build in {directory} failed:\n{result.stderr[-2000:]}")
    return time.monotonic() - started, (directory / "result").resolve()


def _closure_sizes(path: Path) -> dict[str, int]:
    """NAR size of every path of ``path``'s closure."""
    out = subprocess.run(
        [*NIX, "path-info", "-r", "--json", path], check=True, capture_output=True, text=True
    ).stdout
    data = json.loads(out)
    infos = [{"path": k, **v} for k, v in data.items()] if isinstance(data, dict) else data
    return {i["path"]: int(i["narSize"]) for i in infos}


def bench_lab(name: str, stage: str, workdir: Path, override: list[str]) -> dict[str, float]:
    directory = workdir / name
    _write_lab(directory, stage, "1 2")
    _build(directory, override)  # warm: host-tools, scripts, closure description
    first = _closure_sizes((directory / "result").resolve())
    best: tuple[float, float, Path] | None = None
    for n in range(REPEATS):  # the one-parameter change: one more sweep value
        _write_lab(directory, stage, " ".join(str(v) for v in range(1, n + 4)))
        seconds, lab = _build(directory, override)
        eval_s = _eval(directory, override)  # after: the .drv files exist, as in the build
        if best is None or seconds < best[0]:
            best = (seconds, eval_s, lab)
        if n == 0:
            second = _closure_sizes(lab)
    assert best is not None
    seconds, eval_s, lab = best
    # of the first change: what the new revision added to the store
    growth = sum(size for path, size in second.items() if path not in first)
    archive = workdir / f"{name}.tar"
    started = time.monotonic()
    subprocess.run(
        [VENV_BIN / "repx", "export", "--lab", lab, "-o", archive], check=True, capture_output=True
    )
    export_s = time.monotonic() - started
    return {
        "rebuild_s": round(seconds, 2),
        "eval_s": round(eval_s, 2),
        "growth_mib": round(growth / 2**20, 3),
        "lab_mib": round(_closure_sizes(lab)[str(lab)] / 2**20, 3),
        "closure_mib": round(sum(second.values()) / 2**20, 1),
        "export_mib": round(archive.stat().st_size / 2**20, 1),
        "export_s": round(export_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    parser.add_argument(
        "--repx",
        type=Path,
        default=REPO,
        help="the repx checkout whose Nix library builds the labs",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="repx-bench-") as tmp:
        workdir = Path(tmp)
        (workdir / "repx-flake").mkdir()
        repx_flake = _flake_copy(workdir / "repx-flake", args.repx)
        override = ["--override-input", "repx", f"path:{repx_flake}"]
        rows = {
            name: bench_lab(name, stage, workdir, override)
            for name, stage in (("shell", SHELL_STAGE), ("python", PYTHON_STAGE))
        }
    for name, row in rows.items():
        print(
            f"{name:>6}: rebuild {row['rebuild_s']:5.2f} s (evaluation {row['eval_s']:.2f} s),"
            f" store growth {row['growth_mib']} MiB"
            f" (lab {row['lab_mib']} MiB, links to a {row['closure_mib']} MiB closure),"
            f" export {row['export_mib']} MiB in {row['export_s']:.2f} s",
            flush=True,
        )
    ratio = rows["python"]["rebuild_s"] / max(rows["shell"]["rebuild_s"], 1e-9)
    growth = rows["python"]["growth_mib"] / max(rows["shell"]["growth_mib"], 1e-9)
    met = "met" if ratio <= 1.5 else "MISSED"
    print(f"python/shell: rebuild {ratio:.2f}x (target <= 1.5x: {met}), store growth {growth:.2f}x")
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
