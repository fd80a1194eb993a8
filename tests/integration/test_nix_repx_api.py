"""RepX's definition API with real nix: a lab file called as RepX's flake calls it
(`{ pkgs, repx-lib, gitHash }`, `.lab` / `.runs.<name>`), run files taking `repx-lib` /
`pkgs` / `_:`, `repx-lib.utils`, `[ null ]`, dot notation, dynamic stage attributes,
hashMode, inter-run inputs, and the errors for what RepX refuses.

Experiments are our own tiny ones, written into temporary directories (RepX's files are
exercised by tools/repx-upstream.sh, never copied here).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import REPX_BIN

pytestmark = pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")

FLAKE = """{
  inputs = { nixpkgs.url = "nixpkgs"; repx.url = "repx"; };
  outputs = { self, nixpkgs, repx }:
    let
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      labs = import ./lab.nix { inherit pkgs; repx-lib = repx.lib; gitHash = "unknown"; };
    in {
      packages.x86_64-linux.default = labs.lab;
      inherit labs;
    };
}
"""

LAB = """{ pkgs, repx-lib, gitHash }:
let
  runs = rec {
    sim = repx-lib.callRun ./run-sim.nix [ ];
    ana = repx-lib.callRun ./run-ana.nix [ [ sim "soft" ] ];
  };
in
repx-lib.mkLab {
  inherit pkgs repx-lib gitHash runs;
  lab_version = "1.0.0";
  groups = { all = with runs; [ sim ana ]; compute = [ "sim" ]; };
}
"""

# No `name`: the run is called after its attribute ("sim").
RUN_SIM = """{ repx-lib, pkgs, ... }:
let inherit (repx-lib) utils; in
{
  pipelines = [ ./pipe-sim.nix ];
  parametersDependencies = [ pkgs.hello ];
  params = {
    n = utils.range 1 2;
    cfg = utils.zip { a = [ 1 2 ]; b = utils.list [ "x" "y" ]; };
    m = [ null ];
  };
}
"""

PIPE_SIM = """{ repx }:
repx.mkPipe rec {
  make = repx.callStage ./make.nix [ ];
  sum = repx.callStage ./sum.nix [ [ make "data" "numbers" ] ];
}
"""

MAKE = """_: {
  pname = "make";
  parameters = { n = 0; a = 0; b = "none"; m = "the-default"; };
  outputs = { data = "$out/data.txt"; };
  run = { outputs, parameters, ... }: ''
    echo "${parameters.n} ${parameters.a} ${parameters.b} ${parameters.m}" > "${outputs.data}"
  '';
}
"""

SUM = """{ pkgs }: {
  pname = "sum";
  inputs = { numbers = ""; };
  outputs = { "total" = "$out/total.txt"; };
  runDependencies = [ pkgs.gawk ];
  passthru = { note = "accepted, as in RepX"; };
  run = { inputs, outputs, ... }: ''
    awk '{ print $1 + $2 }' "${inputs.numbers}" > "${outputs.total}"
  '';
}
"""

# An inline pipeline (a function in `pipelines`), a stage given as a function, and the
# inter-run inputs of RepX.
RUN_ANA = """_: {
  name = "analysis";
  pipelines = [
    ({ repx }: {
      report = repx.callStage ({ pkgs }: {
        pname = "report";
        inputs = { "store__base" = ""; "metadata__sim" = ""; };
        outputs = { "report" = "$out/report.txt"; };
        run = { inputs, outputs, ... }: ''
          echo "${inputs."metadata__sim"} ${inputs.store__base}" > "${outputs.report}"
        '';
      }) [ ];
    })
  ];
  parameters = { };
}
"""


class Experiment:
    def __init__(self, root: Path, flake_copy: Path) -> None:
        self.root = root
        self.flake_copy = flake_copy
        root.mkdir(parents=True)
        for name, text in {
            "flake.nix": FLAKE,
            "lab.nix": LAB,
            "run-sim.nix": RUN_SIM,
            "pipe-sim.nix": PIPE_SIM,
            "make.nix": MAKE,
            "sum.nix": SUM,
            "run-ana.nix": RUN_ANA,
        }.items():
            self.write(name, text)

    def write(self, name: str, text: str) -> None:
        (self.root / name).write_text(text)

    def eval(self, attr: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                "nix",
                "eval",
                "--json",
                f".#{attr}",
                "--override-input",
                "repx",
                f"path:{self.flake_copy}",
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )

    def value(self, attr: str) -> Any:
        proc = self.eval(attr)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def jobs(self) -> dict[str, dict[str, Any]]:
        jobs = self.value("labs.lab.repx.jobs")
        assert isinstance(jobs, dict)
        return jobs

    def build(self) -> Path:
        proc = subprocess.run(
            [str(REPX_BIN), "build", "--json", "--override-input", f"repx=path:{self.flake_copy}"],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return (self.root / "result").resolve()


def manifests(lab: Path) -> dict[str, dict[str, Any]]:
    meta = json.loads((lab / "revision/metadata.json").read_text())
    return {
        name: json.loads((lab / run["manifest"]).read_text()) for name, run in meta["runs"].items()
    }


def of_stage(jobs: dict[str, dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    return [j for j in jobs.values() if str(j["pname"]).startswith(prefix)]


@pytest.fixture
def exp(tmp_path: Path, repx_flake_copy: Path) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


@pytest.mark.slow
def test_repx_shaped_lab_builds_with_groups_inter_run_inputs_and_null_defaults(
    exp: Experiment,
) -> None:
    lab = exp.build()
    meta = json.loads((lab / "revision/metadata.json").read_text())
    # Names: "sim" from its attribute, "analysis" from its file (bound to `ana`).
    assert set(meta["runs"]) == {"sim", "analysis"}
    assert meta["runs"]["analysis"]["depends_on"] == {"sim": "soft"}
    assert meta["groups"] == {"all": ["sim", "analysis"], "compute": ["sim"]}
    # parametersDependencies travel in the lab's store.
    lab_meta = json.loads((lab / "lab/lab-metadata.json").read_text())
    assert any("-hello-" in p for p in lab_meta["store_paths"])
    runs = manifests(lab)
    makes = [j for j in runs["sim"]["jobs"].values() if j["stage"] == "make"]
    # range 1 2 times zip of two rows: 4 jobs; [ null ] gives the stage's default.
    assert sorted((j["params"]["n"], j["params"]["a"], j["params"]["b"]) for j in makes) == [
        (1, 1, "x"),
        (1, 2, "y"),
        (2, 1, "x"),
        (2, 2, "y"),
    ]
    assert {j["params"]["m"] for j in makes} == {"the-default"}
    (report_id, report), *_ = runs["analysis"]["jobs"].items()
    assert report["run_inputs"] == [
        {"name": "metadata__sim", "kind": "run_metadata", "run": "sim"},
        {"name": "store__base", "kind": "store_base"},
    ]
    assert report["inputs"] == []
    # The metadata input is part of the job's identity: the upstream run's hash.
    exp.write("make.nix", MAKE.replace('echo "', 'echo "v2 '))
    assert report_id not in exp.jobs()


def test_mklab_result_has_lab_and_per_run_labs(exp: Experiment) -> None:
    runs = exp.value("labs.runs")
    assert isinstance(runs, dict)
    # A per-run lab holds the run and what it depends on, so its inputs resolve; it is
    # there by run name and by attribute.
    assert exp.value("labs.runs.ana.repx.order") == ["sim", "analysis"]
    assert exp.value("labs.runs.analysis.repx.order") == ["sim", "analysis"]
    assert exp.value("labs.runs.sim.repx.order") == ["sim"]
    assert exp.value("labs.repx.order") == exp.value("labs.lab.repx.order")


def test_call_run_and_call_stage_take_functions(exp: Experiment) -> None:
    exp.write(
        "lab.nix",
        LAB.replace(
            "ana = repx-lib.callRun",
            "extra = repx-lib.callRun ({ repx-lib, ... }: { pipelines = [ ./pipe-sim.nix ]; "
            "parameters = { n = repx-lib.utils.list [ 9 ]; cfg = repx-lib.utils.zip { a = [ 1 ]; "
            "b = [ 2 ]; }; m = [ null ]; }; }) [ sim ];\n    ana = repx-lib.callRun",
        ),
    )
    runs = exp.value("labs.lab.repx.runs")
    assert isinstance(runs, dict)
    assert set(runs) == {"sim", "analysis", "extra"}
    extra = {k: v for k, v in exp.jobs().items() if k in runs["extra"] and v["pname"] == "make"}
    assert [j["params"]["n"] for j in extra.values()] == [9]


def test_dot_notation_targets_one_stage(exp: Experiment) -> None:
    exp.write(
        "run-sim.nix",
        RUN_SIM.replace("m = [ null ];", 'm = [ null ]; "make.b" = [ "dotted" ];').replace(
            'b = utils.list [ "x" "y" ];', "c = [ 7 8 ];"
        ),
    )
    makes = of_stage(exp.jobs(), "make")
    assert {j["params"]["b"] for j in makes} == {"dotted"}


DYNAMIC = """_: {
  pname = { parameters }: "dyn-${parameters.mode}";
  parameters = { mode = "fast"; n = 0; };
  outputs = { parameters }: { result = "$out/result-${parameters.mode}.txt"; };
  resources = { parameters }: builtins.trace "repx-test-resources" {
    mem = if parameters.mode == "slow" then "1G" else "256M";
  };
  run = { outputs, parameters, ... }: ''
    echo "${parameters.n}" > "${outputs.result}"
  '';
}
"""


def dynamic_experiment(exp: Experiment) -> None:
    exp.write(
        "run-sim.nix",
        '{ name = "sim"; pipelines = [ ./pipe-sim.nix ]; '
        'parameters = { mode = [ "fast" "slow" ]; n = [ 1 2 3 4 5 6 ]; }; }',
    )
    exp.write(
        "pipe-sim.nix",
        "{ repx }: repx.mkPipe rec { dyn = repx.callStage ./dyn.nix [ ]; "
        'sum = repx.callStage ./sum.nix [ [ dyn "result" "numbers" ] ]; }',
    )
    exp.write("dyn.nix", DYNAMIC)
    exp.write(
        "run-ana.nix",
        '{ name = "ana"; pipelines = [ ./pipe-sim.nix ]; parameters = { mode = [ "fast" ]; n = [ 7 ]; }; }',
    )


@pytest.mark.slow
def test_dynamic_attributes_follow_each_jobs_own_parameters(exp: Experiment) -> None:
    dynamic_experiment(exp)
    lab = exp.build()
    jobs = manifests(lab)["sim"]["jobs"]
    dyn = [j for j in jobs.values() if j["stage"].startswith("dyn-")]
    assert len(dyn) == 12
    for job in dyn:
        mode = job["params"]["mode"]
        assert job["stage"] == f"dyn-{mode}"
        assert job["outputs"] == {"result": f"$out/result-{mode}.txt"}
        assert job["resources"]["mem"] == (1024 if mode == "slow" else 256)
    assert set(manifests(lab)["sim"]["stages"]) == {"dyn-fast", "dyn-slow", "sum"}


def test_dynamic_attribute_is_evaluated_per_distinct_value_not_per_job(exp: Experiment) -> None:
    dynamic_experiment(exp)
    proc = exp.eval("labs.runs.sim.drvPath")
    assert proc.returncode == 0, proc.stderr
    calls = proc.stderr.count("repx-test-resources")
    # 12 jobs read only `mode` (2 values): 2 probes (one per parameter) + 2 values.
    assert 0 < calls <= 4, proc.stderr


BAD = {
    "function of the wrong shape": (
        {"make.nix": MAKE.replace('pname = "make";', "pname = { mode }: mode;")},
        ["make.nix", "'pname' is a function, so it must take exactly { parameters }"],
    ),
    "run as a string": (
        {"make.nix": MAKE[: MAKE.index("  run =")] + '  run = "echo hi";\n}\n'},
        ["make.nix (stage make)", "'run' must be a function"],
    ),
    "non-scalar value": (
        {"run-sim.nix": RUN_SIM.replace("n = utils.range 1 2;", "n = [ [ 1 2 ] ];")},
        ["run-sim.nix (run sim)", "parameter 'n': the value [1,2] is a list"],
    ),
    "attribute set value": (
        {"run-sim.nix": RUN_SIM.replace("n = utils.range 1 2;", "n = [ { x = 1; } ];")},
        ["run-sim.nix (run sim)", "parameter 'n'", "is an attribute set"],
    ),
    "zip of unequal lists": (
        {"run-sim.nix": RUN_SIM.replace("a = [ 1 2 ];", "a = [ 1 2 3 ];")},
        ["utils.zip", "'a' has 3", "'b' has 2"],
    ),
    "metadata of a run that is not a dependency": (
        {"lab.nix": LAB.replace('[ [ sim "soft" ] ]', "[ ]")},
        [
            "input 'metadata__sim' asks for the jobs of run 'sim', which is not a dependency of run 'analysis'"
        ],
    ),
    "group naming a run that is not in the lab": (
        {
            "lab.nix": LAB.replace(
                'compute = [ "sim" ];', "compute = [ (repx-lib.callRun ./o.nix [ ]) ];"
            )
        },
        ["group 'compute'", "refers to a run (o.nix) that is not among mkLab's runs"],
    ),
    "dynamic outputs that change names": (
        {
            "make.nix": MAKE.replace(
                'outputs = { data = "$out/data.txt"; };',
                'outputs = { parameters }: if parameters.n == 1 then { data = "$out/d"; } else { data = "$out/d"; extra = "$out/e"; };',
            )
        },
        ["make.nix (stage make)", "'outputs' gives the names"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_refused_definitions_name_the_place(exp: Experiment, case: str) -> None:
    edits, expected = BAD[case]
    for name, text in edits.items():
        exp.write(name, text)
    proc = exp.eval("labs.lab.drvPath")
    assert proc.returncode != 0
    for fragment in expected:
        assert fragment in proc.stderr, proc.stderr


def test_hash_mode_params_only_keeps_ids_across_script_edits(exp: Experiment) -> None:
    def sum_ids() -> set[str]:
        return {k for k, v in exp.jobs().items() if v["pname"] == "sum"}

    pure = sum_ids()
    exp.write("sum.nix", SUM.replace("$1 + $2", "$2 + $1"))
    assert sum_ids().isdisjoint(pure)  # "pure": the script is part of the id
    exp.write(
        "run-sim.nix", RUN_SIM.replace("pipelines =", 'hashMode = "params-only"; pipelines =')
    )
    before = exp.jobs()
    exp.write("sum.nix", SUM)
    assert exp.jobs() == before


def test_scan_files_and_plain_attribute_set_pipelines(exp: Experiment) -> None:
    data = exp.root / "configs"
    data.mkdir()
    for name in ("a.json", "b.json", "notes.txt"):
        (data / name).write_text(name)
    exp.write(
        "run-sim.nix",
        "{ repx-lib, ... }: { pipelines = [ ./pipe-sim.nix ]; parameters = {"
        ' n = repx-lib.utils.scan { src = ./configs; match = ".*\\\\.json"; type = "file"; };'
        " a = repx-lib.utils.files ./configs; b = [ null ]; m = [ null ]; }; }",
    )
    exp.write("pipe-sim.nix", "{ repx }: { make = repx.callStage ./make.nix [ ]; }")
    makes = of_stage(exp.jobs(), "make")
    assert len(makes) == 2 * 3
    assert sorted({Path(str(j["params"]["n"])).name.split("-", 1)[1] for j in makes}) == [
        "a.json",
        "b.json",
    ]


@pytest.mark.slow
def test_two_runs_expanding_the_same_jobs_build_a_valid_lab(exp: Experiment) -> None:
    """Runs sharing a pipeline with overlapping sweeps: a job fed by its own run's jobs
    names that run, so the later run's copy gets its own id (the lab was refused before:
    'differs from the job of the same id'); jobs without such inputs stay shared."""
    exp.write(
        "lab.nix",
        "{ pkgs, repx-lib, gitHash }: repx-lib.mkLab { inherit pkgs gitHash; runs = {"
        " a = repx-lib.callRun ./run-a.nix [ ]; b = repx-lib.callRun ./run-b.nix [ ]; }; }",
    )
    for name, values in (("run-a.nix", "[ 1 ]"), ("run-b.nix", "[ 1 2 ]")):
        exp.write(
            name,
            "{ pipelines = [ ./pipe-sim.nix ]; parameters = "
            f'{{ n = {values}; a = [ 0 ]; b = [ "x" ]; m = [ null ]; }}; }}',
        )
    lab = exp.build()
    runs = manifests(lab)
    a, b = (set(runs[r]["jobs"]) for r in ("a", "b"))
    shared = a & b
    assert [runs["a"]["jobs"][j]["stage"] for j in shared] == ["make"]
    assert len(a) == 2 and len(b) == 4
