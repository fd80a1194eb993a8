"""The blueprint path of the lab build against the evaluation path: same lab, byte for byte.

A lab whose stages are all constant (no dynamic pname/outputs/resources, no scatter-gather)
is built by the blueprint path: evaluation renders the runs' blueprints and the builder's
expand-lab.py expands the jobs and computes their ids. Every lab also offers
`.repx.evaluationPath`, the same lab built by expanding the jobs during evaluation (the
path every id-semantics test pinned). Here both are built for representative experiments
and compared file by file (bytes, executable bits, link targets): same job ids, manifests,
jobs table, README and lab id.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest
from runlab import ASSETS, NIXPKGS_ENV, _repx_flake, require_nix

from conftest import REPX_BIN

TOOLCHAIN = Path("/var/lib/repx/toolchain")
STANDIN = Path(__file__).resolve().parents[1] / "assets" / "nixpkgs-standin"
TEMPLATES = Path(__file__).resolve().parents[2] / "templates"


def _nix(flake: Path, *args: str, over: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nix", *args, "--override-input", "repx", f"path:{_repx_flake()}", *over],
        cwd=flake,
        capture_output=True,
        text=True,
        check=False,
    )


def _default_over() -> list[str]:
    nixpkgs = os.environ.get(NIXPKGS_ENV)
    return ["--override-input", "nixpkgs", nixpkgs] if nixpkgs else []


def _tree(root: Path) -> dict[str, tuple[str, object]]:
    """Every entry under root: ("link", target), ("dir", None) or ("file", (mode, bytes))."""
    entries: dict[str, tuple[str, object]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = ("dir", None)
            else:
                mode = stat.S_IMODE(path.stat().st_mode)
                entries[rel] = ("file", (mode, path.read_bytes()))
        dirnames[:] = [d for d in dirnames if not (Path(dirpath) / d).is_symlink()]
    return entries


def both_ways(flake: Path, attr: str = "default", over: list[str] | None = None) -> str:
    """Build `attr` and its `.repx.evaluationPath`; assert the two labs are identical.

    Returns the path `attr` was built by ("blueprint" or "evaluation").
    """
    over = _default_over() if over is None else over
    proc = _nix(flake, "eval", "--raw", f".#{attr}.repx.expansion", over=over)
    assert proc.returncode == 0, proc.stderr[-3000:]
    expansion = proc.stdout
    proc = _nix(
        flake,
        "build",
        "--no-link",
        "--json",
        f".#{attr}",
        f".#{attr}.repx.evaluationPath",
        over=over,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    new, old = (Path(e["outputs"]["out"]) for e in json.loads(proc.stdout))
    a, b = _tree(new), _tree(old)
    only = sorted(set(a) ^ set(b))
    assert only == [], f"{attr}: {only[:10]} in one of {new} and {old} only"
    differ = [p for p in a if a[p] != b[p]]
    assert differ == [], f"{attr}: {differ[:10]} differ between {new} and {old}"
    return expansion


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns("result", "flake.lock"))
    return dest


@pytest.mark.parametrize(
    ("asset", "expansion"),
    [
        ("sweep", "blueprint"),
        ("pipeline", "blueprint"),
        ("hostile", "blueprint"),
        ("realsw", "blueprint"),
        ("repxpy", "blueprint"),
        ("scatter", "blueprint"),
    ],
)
def test_asset_labs_are_the_same_both_ways(tmp_path: Path, asset: str, expansion: str) -> None:
    require_nix()
    flake = _copy(ASSETS / asset, tmp_path / asset)
    assert both_ways(flake) == expansion


@pytest.mark.parametrize("template", ["default", "minimal"])
def test_templates_are_the_same_both_ways(tmp_path: Path, template: str) -> None:
    require_nix()
    flake = _copy(TEMPLATES / template, tmp_path / template)
    assert both_ways(flake) == "blueprint"


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


FLAKE = """\
{
  inputs = { nixpkgs.url = "nixpkgs"; repx.url = "repx"; };
  outputs = { self, nixpkgs, repx }: {
    packages.x86_64-linux.default = repx.lib.mkLab {
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      gitHash = "blueprint";
      name = "bp";
      @EXTRA@
      runs = import ./runs.nix { repx = repx.lib; };
      groups = { both = [ "a" "b" ]; };
    };
  };
}
"""


def _stage(pname: str, run: str, **attrs: str) -> str:
    body = "".join(f"  {k} = {v};\n" for k, v in attrs.items())
    return f"{{ pkgs }}: {{\n  pname = \"{pname}\";\n{body}  run = {{ inputs, outputs, parameters, ... }}: ''\n    {run}\n  '';\n}}\n"


def _agg(parameters: str) -> str:
    """The gathering stage of both experiments (each keeps its own parameter)."""
    return _stage(
        "agg",
        'cat "${inputs.all}" > "${outputs."agg.txt"}"',
        inputs='[ "all" ]',
        outputs='{ "agg.txt" = "$out/agg.txt"; }',
        parameters=parameters,
    )


EXPERIMENT = {
    "runs.nix": """\
        { repx }:
        let
          a = repx.callRun ./run-a.nix [ ];
          b = repx.callRun ./run-b.nix [ a ];
          c = repx.callRun ./run-c.nix [ [ a "soft" ] ];
          twin = repx.callRun ./run-twin.nix [ ];
        in { inherit a b c twin; }
        """,
    "input.csv": "x,y\n1,2\n",
    # sweep x repeated value (one job), zip (repx.zip and utils.zip), a path, a package
    # path, null for the stage's default
    "run-a.nix": """\
        { repx, repx-lib, pkgs }: {
          name = "a";
          pipelines = [ ./pipe-a.nix ./pipe-a2.nix ];
          parametersDependencies = [ pkgs.jq ];
          parameters = {
            "extra.k" = repx-lib.utils.range 5 6;
            files = repx-lib.utils.files ./data;
            x = [ 1 2 2 ];
            y = [ "p" (builtins.fromJSON ''"q\\"quote\\b\\f\\u0001\\t naïve"'') ];
            z = [ null "set" ];
            data = [ ./input.csv ];
            tool = [ "${pkgs.bash}/bin/bash" ];
            pair = repx-lib.utils.zip { m = [ 1 2 ]; n = [ "one" "two" ]; };
          } // repx.zip { u = [ 1 2 ]; v = [ "s" "t" ]; };
        }
        """,
    "run-twin.nix": """\
        { repx, repx-lib, pkgs }: (import ./run-a.nix { inherit repx repx-lib pkgs; }) // { name = "twin"; }
        """,
    "data/one.txt": "1\n",
    "data/two.txt": "2\n",
    # a second pipeline sharing a stage (one job for both), a two-element dependency, dot
    # notation ("extra.k"), a diamond, outputs in subdirectories, a stage given as a
    # function, a directory's files as values
    "pipe-a2.nix": """\
        { repx }: repx.mkPipe rec {
          make = repx.callStage ./make.nix [ ];
          extra = repx.callStage ./extra.nix [ [ make "value.txt" ] ];
          # a diamond: the axes of both upstream stages
          both = repx.callStage ./both.nix [ [ make "value.txt" "v1" ] [ extra "e.txt" "v2" ] ];
          inline = repx.callStage ({ pkgs }: {
            pname = "inline";
            params = { files = ""; };
            outputs = { "i.txt" = "$out/i.txt"; };
            run = { outputs, parameters, ... }: ''
              cat "${parameters.files}" > "${outputs."i.txt"}"
            '';
          }) [ ];
        }
        """,
    "both.nix": _stage(
        "both",
        'cat "${inputs.v1}" "${inputs.v2}" > "${outputs."b.txt"}"',
        inputs='[ "v1" "v2" ]',
        outputs='{ "b.txt" = "$out/deep/er/b.txt"; "c.txt" = "$out/c.txt"; }',
    ),
    "extra.nix": _stage(
        "extra",
        'cat "${inputs."value.txt"}" > "${outputs."e.txt"}"; echo "${toString parameters.k}"',
        inputs='[ "value.txt" ]',
        outputs='{ "e.txt" = "$out/e.txt"; }',
        parameters="{ k = 0; }",
    ),
    "pipe-a.nix": """\
        { repx }: repx.mkPipe rec {
          make = repx.callStage ./make.nix [ ];
          post = repx.callStage ./post.nix [ make ];
          agg = repx.callStage ./agg.nix [ [ (repx.gather post) "post.txt" "all" ] ];
          side = repx.callStage ./side.nix [ ];
          pairs = repx.callStage ./pairs.nix [ [ side "side.txt" ] ];
        }
        """,
    "make.nix": _stage(
        "make",
        'cat "${parameters.data}" > "${outputs."value.txt"}"; echo "${toString parameters.x}"',
        outputs='{ "value.txt" = "$out/sub/value.txt"; }',
        parameters='{ x = 0; y = "d"; z = "dz"; u = 0; v = "w"; data = ""; tool = ""; }',
        resources="{ cpus = 2; mem = 512; }",
    ),
    "post.nix": _stage(
        "post",
        'cat "${inputs."value.txt"}" > "${outputs."post.txt"}"',
        inputs='[ "value.txt" ]',
        outputs='{ "post.txt" = "$out/post.txt"; }',
    ),
    "agg.nix": _agg('{ y = ""; }'),
    "side.nix": _stage(
        "side",
        'echo side > "${outputs."side.txt"}"',
        outputs='{ "side.txt" = "$out/side.txt"; }',
    ),
    "pairs.nix": _stage(
        "pairs",
        'echo "${toString parameters.m} ${parameters.n}" > "${outputs."p.txt"}"',
        inputs='[ "side.txt" ]',
        outputs='{ "p.txt" = "$out/p.txt"; }',
        parameters='{ m = 0; n = ""; }',
    ),
    # fromRun: a gather of a swept stage and a single job, from a hard dependency
    "run-b.nix": """\
        { name = "b"; pipelines = [ ./pipe-b.nix ]; parameters = { k = [ 1 2 ]; }; }
        """,
    "pipe-b.nix": """\
        { repx }: repx.mkPipe rec {
          use = repx.callStage ./use.nix [ [ (repx.gather (repx.fromRun "a" "agg")) "agg.txt" "aggs" ] ];
          one = repx.callStage ./one.nix [ [ (repx.fromRun "a" "side") "side.txt" "side" ] use ];
        }
        """,
    "use.nix": _stage(
        "use",
        'cat "${inputs.aggs}" > "${outputs."use.txt"}"',
        inputs='[ "aggs" ]',
        outputs='{ "use.txt" = "$out/use.txt"; }',
        parameters="{ k = 0; }",
    ),
    "one.nix": _stage(
        "one",
        'cat "${inputs.side}" "${inputs."use.txt"}" > "${outputs."one.txt"}"',
        inputs='[ "side" "use.txt" ]',
        outputs='{ "one.txt" = "$out/one.txt"; }',
    ),
    # a soft dependency's metadata, the lab's store, hashMode params-only
    "run-c.nix": """\
        { name = "c"; hashMode = "params-only"; pipelines = [ ./pipe-c.nix ]; parameters = { s = [ 1 2 3 ]; }; }
        """,
    "pipe-c.nix": """\
        { repx }: repx.mkPipe { meta = repx.callStage ./meta.nix [ ]; }
        """,
    "meta.nix": _stage(
        "meta",
        'cat "${inputs.metadata__a}" > "${outputs."m.txt"}"',
        inputs='[ "metadata__a" "store__base" ]',
        outputs='{ "m.txt" = "$out/m.txt"; }',
        parameters="{ s = 0; }",
        version='"2.1"',
    ),
}


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The experiment under each containerMode (the default "unified", "none", "per-run", and
    "none" with one-run labs in "unified")."""
    out = {}
    for mode in ("unified", "none", "per-run", "none+unified"):
        root = tmp_path_factory.mktemp(f"bp-{mode}") / "exp"
        if mode == "none+unified":
            # one-run labs with images, the lab without: their ids differ (two expansions)
            extra = 'containerMode = "none"; runContainerMode = "unified";'
        else:
            extra = "" if mode == "unified" else f'containerMode = "{mode}";'
        _write(root, {"flake.nix": FLAKE.replace("@EXTRA@", extra), **EXPERIMENT})
        out[mode] = root
    return out


@pytest.mark.parametrize("mode", ["unified", "none", "per-run", "none+unified"])
def test_runs_sweeps_zips_gathers_and_run_dependencies_are_the_same_both_ways(
    experiments: dict[str, Path], mode: str
) -> None:
    require_nix()
    assert both_ways(experiments[mode]) == "blueprint"


@pytest.mark.parametrize(
    ("mode", "run"),
    [
        ("unified", "a"),
        ("unified", "b"),
        ("unified", "c"),
        ("unified", "twin"),
        ("none+unified", "b"),
        ("none+unified", "twin"),
    ],
)
def test_one_run_labs_are_the_same_both_ways(
    experiments: dict[str, Path], mode: str, run: str
) -> None:
    require_nix()
    assert both_ways(experiments[mode], f"default.runs.{run}") == "blueprint"


def test_the_twin_run_has_its_own_ids_for_jobs_fed_by_its_own_jobs(
    experiments: dict[str, Path],
) -> None:
    """Run twin is run a under another name: the jobs without inputs are shared, the ones
    fed by the run's own jobs are not (their records name the run), on both paths."""
    require_nix()
    proc = _nix(
        experiments["unified"],
        "eval",
        "--json",
        ".#default.repx",
        "--apply",
        "r: { inherit (r) runs jobs; }",
        over=_default_over(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    repx = json.loads(proc.stdout)
    runs, jobs = repx["runs"], repx["jobs"]
    shared = set(runs["a"]) & set(runs["twin"])
    assert shared == {i for i in runs["a"] if not jobs[i]["inputs"]}
    assert len(runs["a"]) == len(runs["twin"])


def test_with_the_nixpkgs_standin(experiments: dict[str, Path], tmp_path: Path) -> None:
    """The builder's python3 is the package set's: real nixpkgs' names work too."""
    require_nix()
    if not TOOLCHAIN.is_dir():
        pytest.skip("the offline toolchain is not at /var/lib/repx/toolchain")
    standin = _copy(STANDIN, tmp_path / "nixpkgs")
    flake = _copy(experiments["none"], tmp_path / "exp")
    over = [
        "--override-input",
        "nixpkgs",
        f"path:{standin}",
        "--override-input",
        "nixpkgs/toolchain",
        f"path:{TOOLCHAIN}",
    ]
    assert both_ways(flake, over=over) == "blueprint"


DYNAMIC = {
    "runs.nix": """\
        { repx }:
        let
          dyn = repx.callRun ./run.nix [ ];
          later = repx.callRun ./later.nix [ dyn ];
        in [ dyn later ]
        """,
    "run.nix": """\
        {
          name = "dyn";
          pipelines = [ ./pipe.nix ];
          parameters = { i = [ 1 2 3 ]; mode = [ "fast" "slow" ]; size = [ "s" "l" ]; };
        }
        """,
    "pipe.nix": """\
        { repx }: repx.mkPipe rec {
          make = repx.callStage ./make.nix [ ];
          post = repx.callStage ./post.nix [ make ];
          agg = repx.callStage ./agg.nix [ [ (repx.gather post) "post.txt" "all" ] ];
          spost = repx.callStage ./spost.nix [ make ];
        }
        """,
    # pname and outputs are functions of `mode`, version and resources of `size` (so the
    # jobs of one pname differ in resources: the manifest's entry is its lowest id's)
    "make.nix": """\
        { pkgs }: {
          pname = { parameters }: "make-${parameters.mode}";
          version = { parameters }: "1.${parameters.size}";
          outputs = { parameters }: { "value.txt" = "$out/value-${parameters.mode}.txt"; };
          resources = { parameters }: { mem = if parameters.size == "l" then "1G" else "256M"; };
          parameters = { i = 0; mode = "fast"; size = "s"; };
          run = { outputs, parameters, ... }: ''
            echo "${toString parameters.i}" > "${outputs."value.txt"}"
          '';
        }
        """,
    "post.nix": EXPERIMENT["post.nix"],
    "agg.nix": _agg('{ mode = ""; }'),
    # a scatter-gather stage after the dynamic one
    "spost.nix": """\
        { pkgs }:
        let
          half = {
            inputs = { worker__item = ""; };
            outputs.half = "$out/half.txt";
            run = { inputs, outputs, ... }: ''
              jq -r .v "${inputs.worker__item}" > "${outputs.half}"
            '';
          };
        in
        {
          pname = "spost";
          scatter = {
            inputs."value.txt" = "";
            outputs.work__items = "$out/work_items.json";
            run = { inputs, outputs, ... }: ''
              jq -n --argjson v "$(cat "${inputs."value.txt"}")" '[{v: $v}]' > "${outputs.work__items}"
            '';
          };
          steps = { inherit half; };
          gather = {
            inputs.worker__outs = "";
            outputs."double.txt" = "$out/double.txt";
            run = { inputs, outputs, ... }: ''
              jq -r '.[].half' "${inputs.worker__outs}" | xargs cat > "${outputs."double.txt"}"
            '';
          };
        }
        """,
    # another run gathers one pname of the dynamic stage
    "later.nix": """\
        { name = "later"; hashMode = "params-only"; pipelines = [ ./pipe-later.nix ]; parameters = { }; }
        """,
    "pipe-later.nix": """\
        { repx }: repx.mkPipe {
          use = repx.callStage ./use.nix [ [ (repx.gather (repx.fromRun "dyn" "make-slow")) "value.txt" "vals" ] ];
        }
        """,
    "use.nix": _stage(
        "use",
        'cat "${inputs.vals}" > "${outputs."use.txt"}"',
        inputs='[ "vals" ]',
        outputs='{ "use.txt" = "$out/use.txt"; }',
    ),
}


def _dynamic(root: Path, **changes: str) -> Path:
    flake = FLAKE.replace("@EXTRA@", "").replace('groups = { both = [ "a" "b" ]; };', "")
    _write(root, {"flake.nix": flake, **DYNAMIC, **changes})
    return root


def test_dynamic_stage_attributes_are_the_same_both_ways(tmp_path: Path) -> None:
    require_nix()
    root = _dynamic(tmp_path / "exp")
    assert both_ways(root) == "blueprint"
    assert both_ways(root, "default.runs.later") == "blueprint"


def test_a_dynamic_attribute_whose_reads_depend_on_a_value_takes_the_evaluation_path(
    tmp_path: Path,
) -> None:
    """`i` is read only when mode is "slow" (not at the first job, where the reads are
    probed): the blueprint cannot list the stage's variants, the gate falls back."""
    require_nix()
    make = DYNAMIC["make.nix"].replace(
        '"make-${parameters.mode}"',
        'if parameters.mode == "fast" then "make-fast" else "make-slow${toString parameters.i}"',
    )
    root = _dynamic(tmp_path / "exp", **{"make.nix": make})
    (root / "pipe-later.nix").write_text(
        '{ repx }: repx.mkPipe { use = repx.callStage ./use.nix [ [ (repx.gather (repx.fromRun "dyn" "make-fast")) "value.txt" "vals" ] ]; }\n'
    )
    assert both_ways(root) == "evaluation"


SCALE = {
    "runs.nix": """\
        { repx }: [ (repx.callRun ./run.nix [ ]) ]
        """,
    "run.nix": """\
        {
          name = "scale";
          pipelines = [ ./pipe.nix ];
          parameters = { i = builtins.genList (x: x) @I@; j = builtins.genList (x: x) @J@; mode = [ "fast" "slow" ]; };
        }
        """,
    "pipe.nix": """\
        { repx }: repx.mkPipe rec {
          make = repx.callStage ./make.nix [ ];
          post = repx.callStage ./post.nix [ make ];
          agg = repx.callStage ./agg.nix [ [ (repx.gather post) "post.txt" "all" ] ];
        }
        """,
    "make.nix": """\
        { pkgs }: {
          pname = { parameters }: "make-${parameters.mode}";
          outputs = { parameters }: { "value.txt" = "$out/value-${parameters.mode}.txt"; };
          parameters = { i = 0; j = 0; mode = "fast"; };
          run = { outputs, parameters, ... }: ''
            echo "${toString parameters.i} ${toString parameters.j}" > "${outputs."value.txt"}"
          '';
        }
        """,
    "post.nix": DYNAMIC["post.nix"],
    "agg.nix": DYNAMIC["agg.nix"],
}


def _eval_stats(root: Path) -> dict[str, int]:
    """Nix's own counters of the evaluation of the lab's derivation (deterministic)."""
    stats = root / "stats.json"
    proc = subprocess.run(
        [
            "nix",
            "eval",
            "--raw",
            ".#default.drvPath",
            "--override-input",
            "repx",
            f"path:{_repx_flake()}",
            *_default_over(),
        ],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "NIX_SHOW_STATS": "1", "NIX_SHOW_STATS_PATH": str(stats)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(stats.read_text())
    return {
        "thunks": data["nrThunks"],
        "function calls": data["nrFunctionCalls"],
        "primop calls": data["nrPrimOpCalls"],
        "value bytes": data["values"]["bytes"],
        "env bytes": data["envs"]["bytes"],
    }


def test_evaluation_does_not_grow_with_the_sweep(tmp_path: Path) -> None:
    """The same definition swept over 1,200 and 120,000 jobs (two axes of 10 x 20 and 100 x
    200 values, a dynamic stage, a per-job stage and a gather): Nix's counters of thunks,
    calls and memory grow with the values written in the definition (270 more), not with
    the jobs (100 times as many). Counters, not seconds: deterministic on any machine."""
    require_nix()
    counts = {}
    for jobs, (i, j) in {1_200: (10, 20), 120_000: (100, 200)}.items():
        files = {k: v.replace("@I@", str(i)).replace("@J@", str(j)) for k, v in SCALE.items()}
        root = tmp_path / str(jobs)
        flake = FLAKE.replace("@EXTRA@", "").replace('groups = { both = [ "a" "b" ]; };', "")
        _write(root, {"flake.nix": flake, **files})
        counts[jobs] = _eval_stats(root)
    small, large = counts[1_200], counts[120_000]
    # 270 more values, 118,800 more jobs: a budget per value that one unit per job would
    # exceed many times over (measured: 8-14 thunks and calls, 340-360 bytes per value)
    budget = {k: 270 * (2_000 if "bytes" in k else 50) for k in small}
    grown = {k: large[k] - small[k] for k in small}
    assert all(grown[k] <= budget[k] for k in small), (grown, small, large)


def test_an_error_found_after_expansion_names_the_stage_on_both_paths(tmp_path: Path) -> None:
    """How many jobs an upstream stage of another run has is known only once its ids are:
    the blueprint path fails the build with the evaluation path's one-line message."""
    require_nix()
    root = tmp_path / "exp"
    pipe = EXPERIMENT["pipe-b.nix"].replace(
        '[ (repx.fromRun "a" "side") "side.txt" "side" ]',
        '[ (repx.fromRun "a" "post") "post.txt" "side" ]',
    )
    _write(root, {"flake.nix": FLAKE.replace("@EXTRA@", ""), **EXPERIMENT, "pipe-b.nix": pipe})
    message = (
        "repx: one.nix (stage one): stage 'post' of run 'a' has 16 jobs; consume it with"
        ' repx.gather (repx.fromRun "a" "post")'
    )
    old = _nix(root, "eval", "--raw", ".#default.repx.evaluationPath.drvPath", over=_default_over())
    assert old.returncode != 0 and message in old.stderr, old.stderr[-3000:]
    new = subprocess.run(
        [str(REPX_BIN), "build", "--override-input", f"repx=path:{_repx_flake()}"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert new.returncode == 1
    assert message in [line.strip() for line in new.stderr.splitlines()], new.stderr
