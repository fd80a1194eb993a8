"""The Nix library with real nix: job-id semantics, parameter sweeps, evaluation errors,
build-time validation, and the nixpkgs-shaped path.

Experiments are written into temporary directories; ``nixpkgs`` resolves to the offline
toolchain through the flake registry and ``repx`` is overridden with a copy of this
checkout's flake, so the working tree is what gets tested.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import REPO, REPX_BIN

pytestmark = pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")

FLAKE = """{
  inputs = { nixpkgs.url = "nixpkgs"; repx.url = "repx"; };
  outputs = { self, nixpkgs, repx }: {
    packages.x86_64-linux.default = repx.lib.mkLab {
      pkgs = nixpkgs.legacyPackages.x86_64-linux;
      gitHash = repx.lib.gitHashOf self;
      runs = import ./runs.nix { repx = repx.lib; };
    };
  };
}
"""
#: The same lab with containerMode = "none" (no image: the hermetic sandbox).
HERMETIC = FLAKE.replace("runs = import", 'containerMode = "none";\n      runs = import')


def stage(
    pname: str,
    body: str,
    *,
    inputs: list[str] = (),
    outputs: dict[str, str] | None = None,
    params: dict[str, object] | None = None,
    deps: str = "",
) -> str:
    outputs = outputs if outputs is not None else {"out.txt": "$out/out.txt"}
    ins = " ".join(json.dumps(i) for i in inputs)
    outs = " ".join(f"{json.dumps(k)} = {json.dumps(v)};" for k, v in outputs.items())
    pars = " ".join(f"{k} = {json.dumps(v)};" for k, v in (params or {}).items())
    return (
        f'{{ pkgs }}: {{\n  pname = "{pname}";\n  inputs = [ {ins} ];\n'
        f"  outputs = {{ {outs} }};\n  parameters = {{ {pars} }};\n"
        f"  runDependencies = [ {deps} ];\n"
        f"  run = {{ inputs, outputs, parameters, ... }}: ''\n{textwrap.indent(body, '    ')}\n  '';\n}}\n"
    )


class Experiment:
    """A throw-away experiment flake that tests edit file by file."""

    def __init__(self, root: Path, flake_copy: Path) -> None:
        self.root = root
        self.override = ["--override-input", "repx", f"path:{flake_copy}"]
        root.mkdir(parents=True)
        (root / "flake.nix").write_text(FLAKE)

    def write(self, name: str, text: str) -> None:
        (self.root / name).write_text(text)

    def eval_jobs(self) -> dict[str, dict[str, object]]:
        proc = subprocess.run(
            ["nix", "eval", "--json", ".#default.repx.jobs", *self.override],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def build(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(REPX_BIN),
                "build",
                "--json",
                "--override-input",
                self.override[-2] + "=" + self.override[-1],
                *extra,
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env=os.environ.copy(),
        )


@pytest.fixture
def exp(tmp_path: Path, repx_flake_copy: Path) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


def sweep_experiment(exp: Experiment, a_values: list[int]) -> None:
    """make(a, b) -> post (per job) -> agg (gather all); side(b) is independent of a."""
    exp.write("runs.nix", "{ repx }: [ (repx.callRun ./run.nix [ ]) ]")
    exp.write(
        "run.nix",
        f'{{ name = "sweep"; pipelines = [ ./pipe.nix ]; '
        f"parameters = {{ a = [ {' '.join(map(str, a_values))} ]; b = [ 1 2 ]; }}; }}",
    )
    exp.write(
        "pipe.nix",
        "{ repx }: repx.mkPipe rec {\n"
        "  make = repx.callStage ./make.nix [ ];\n"
        "  post = repx.callStage ./post.nix [ make ];\n"
        '  agg = repx.callStage ./agg.nix [ [ (repx.gather post) "post.txt" "all" ] ];\n'
        "  side = repx.callStage ./side.nix [ ];\n"
        "}\n",
    )
    exp.write(
        "make.nix",
        stage(
            "make",
            'echo "${parameters.a} ${parameters.b}" > "${outputs."make.txt"}"',
            outputs={"make.txt": "$out/make.txt"},
            params={"a": 0, "b": 0},
        ),
    )
    exp.write(
        "post.nix",
        stage(
            "post",
            'cat "${inputs."make.txt"}" > "${outputs."post.txt"}"',
            inputs=["make.txt"],
            outputs={"post.txt": "$out/post.txt"},
        ),
    )
    exp.write(
        "agg.nix",
        stage(
            "agg",
            'jq length "${inputs.all}" > "${outputs."n.txt"}"',
            inputs=["all"],
            outputs={"n.txt": "$out/n.txt"},
        ),
    )
    exp.write(
        "side.nix",
        stage(
            "side",
            'echo "${parameters.b}" > "${outputs."side.txt"}"',
            outputs={"side.txt": "$out/side.txt"},
            params={"b": 0},
        ),
    )


def by_stage(jobs: dict[str, dict[str, object]], pname: str) -> dict[str, dict[str, object]]:
    return {k: v for k, v in jobs.items() if v["pname"] == pname}


@pytest.mark.slow
def test_sweep_counts_and_collapse(exp: Experiment) -> None:
    sweep_experiment(exp, list(range(500)))
    jobs = exp.eval_jobs()
    assert len(by_stage(jobs, "make")) == 1000  # a x b
    assert len(by_stage(jobs, "post")) == 1000  # inherits make's axes
    assert len(by_stage(jobs, "agg")) == 1  # gathers everything
    assert len(by_stage(jobs, "side")) == 2  # declares only b: collapses over a
    (agg,) = by_stage(jobs, "agg").values()
    assert sorted(agg["inputs"]) == sorted(by_stage(jobs, "post"))
    for job_id, job in by_stage(jobs, "post").items():
        (upstream,) = job["inputs"]
        assert jobs[upstream]["params"] == {
            "a": jobs[upstream]["params"]["a"],
            "b": jobs[upstream]["params"]["b"],
        }
        assert job_id.endswith("-post") and len(job_id.split("-")[0]) == 32


@pytest.mark.slow
def test_changing_one_value_changes_exactly_the_affected_ids(exp: Experiment) -> None:
    sweep_experiment(exp, list(range(500)))
    before = exp.eval_jobs()
    sweep_experiment(exp, [*range(7), 1007, *range(8, 500)])  # a = 7 becomes 1007
    after = exp.eval_jobs()

    changed = set(before) - set(after)
    made = {k for k, v in by_stage(before, "make").items() if v["params"]["a"] == 7}
    posts = {k for k, v in by_stage(before, "post").items() if set(v["inputs"]) & made}
    assert len(made) == 2 and len(posts) == 2
    assert changed == made | posts | set(by_stage(before, "agg"))
    assert len(set(after) - set(before)) == len(changed)
    assert set(by_stage(before, "side")) == set(by_stage(after, "side"))


@pytest.mark.slow
def test_upstream_change_reaches_downstream_whatever_the_names(exp: Experiment) -> None:
    # RepX hashed stages alphabetically: a producer named after its consumer was missed.
    exp.write("runs.nix", "{ repx }: [ (repx.callRun ./run.nix [ ]) ]")
    exp.write("run.nix", '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { }; }')
    exp.write(
        "pipe.nix",
        "{ repx }: repx.mkPipe rec { zzz = repx.callStage ./zzz.nix [ ]; "
        "aaa = repx.callStage ./aaa.nix [ zzz ]; }",
    )
    exp.write(
        "aaa.nix",
        stage("aaa", 'cat "${inputs."z.txt"}" > "${outputs."out.txt"}"', inputs=["z.txt"]),
    )
    exp.write(
        "zzz.nix", stage("zzz", 'echo one > "${outputs."z.txt"}"', outputs={"z.txt": "$out/z.txt"})
    )
    before = exp.eval_jobs()
    exp.write(
        "zzz.nix", stage("zzz", 'echo two > "${outputs."z.txt"}"', outputs={"z.txt": "$out/z.txt"})
    )
    after = exp.eval_jobs()
    assert set(by_stage(before, "aaa")) != set(by_stage(after, "aaa"))


def minimal_experiment(
    exp: Experiment,
    *,
    run: str | None = None,
    runs: str | None = None,
    stage_text: str | None = None,
    pipe: str | None = None,
) -> None:
    exp.write("runs.nix", runs or "{ repx }: [ (repx.callRun ./run.nix [ ]) ]")
    exp.write(
        "run.nix",
        run or '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = [ 1 2 ]; }; }',
    )
    exp.write("pipe.nix", pipe or "{ repx }: repx.mkPipe { s = repx.callStage ./s.nix [ ]; }")
    exp.write(
        "s.nix",
        stage_text
        or stage("s", 'echo "${parameters.n}" > "${outputs."out.txt"}"', params={"n": 0}),
    )


BAD_INPUTS = {
    "unknown stage attribute": (
        {
            "stage_text": '{ pkgs }: { pname = "s"; outputs = { }; run = _: "true"; colour = "red"; }'
        },
        ["s.nix (stage s)", "unknown attribute(s) 'colour'"],
    ),
    "non-list parameter": (
        {"run": '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = 3; }; }'},
        ["run.nix (run r)", "parameter 'n' must be a non-empty list"],
    ),
    "parameter no run provides": (
        {"run": '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { m = [ 1 ]; }; }'},
        ["s.nix (stage s)", "parameter 'n' is not provided by run 'r'"],
    ),
    "unresolved input": (
        {"stage_text": stage("s", "true", inputs=["data.csv"])},
        ["s.nix (stage s)", "unresolved input(s) 'data.csv'"],
    ),
    "output/input name mismatch": (
        {
            "pipe": "{ repx }: repx.mkPipe rec { p = repx.callStage ./p.nix [ ]; "
            's = repx.callStage ./s.nix [ [ p "nope.csv" "data.csv" ] ]; }',
            "stage_text": stage("s", "true", inputs=["data.csv"]),
        },
        ["s.nix (stage s)", "stage p has no output 'nope.csv'"],
    ),
    "implicit match fails": (
        {
            "pipe": "{ repx }: repx.mkPipe rec { p = repx.callStage ./p.nix [ ]; "
            "s = repx.callStage ./s.nix [ p ]; }",
            "stage_text": stage("s", "true", inputs=["other.csv"]),
        },
        ["s.nix (stage s)", "implicit dependency resolution failed"],
    ),
    "float that JSON would round": (
        {
            "run": '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = [ 0.1234561 0.1234562 ]; }; }'
        },
        ["run.nix (run r)", "parameter 'n': the float", "write it as a string"],
    ),
    "integer beyond 2^53": (
        {
            "run": '{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = [ 9007199254740993 ]; }; }'
        },
        ["parameter 'n': the integer 9007199254740993 is beyond 2^53"],
    ),
    "empty zip": (
        {
            "run": '{ repx }: { name = "r"; pipelines = [ ./pipe.nix ]; parameters = repx.zip { n = [ ]; m = [ ]; }; }'
        },
        ["zip: the lists 'm', 'n' are empty"],
    ),
    "parameter both direct and zipped": (
        {
            "run": '{ repx }: { name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = [ 1 ]; } // repx.zip { n = [ 2 ]; m = [ 3 ]; }; }'
        },
        ["parameter(s) 'n' given more than once"],
    ),
    "output escaping $out": (
        {"stage_text": stage("s", "true", outputs={"x": "$out/../x"})},
        ["s.nix (stage s)", "output(s) 'x'"],
    ),
    "invalid memory hint": (
        {
            "stage_text": '{ pkgs }: { pname = "s"; resources = { mem = "lots"; }; run = _: "true"; }'
        },
        ["s.nix (stage s)", "resources.mem: invalid value"],
    ),
    "pname with a space": (
        {"stage_text": '{ pkgs }: { pname = "my stage"; run = _: "true"; }'},
        ["s.nix", "pname 'my stage' must be a plain word"],
    ),
    "duplicate run names": (
        {"runs": "{ repx }: [ (repx.callRun ./run.nix [ ]) (repx.callRun ./run.nix [ ]) ]"},
        ["duplicate run name(s) 'r'"],
    ),
    "cyclic run dependencies": (
        {
            "runs": "{ repx }: let a = repx.callRun ./run.nix [ b ]; b = repx.callRun ./run2.nix [ a ]; in [ a b ]"
        },
        ["cyclic run dependencies: "],
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_with_a_message_naming_the_place(exp: Experiment, case: str) -> None:
    edits, expected = BAD_INPUTS[case]
    minimal_experiment(exp, **edits)
    exp.write(
        "run2.nix", '{ name = "r2"; pipelines = [ ./pipe.nix ]; parameters = { n = [ 1 ]; }; }'
    )
    exp.write(
        "p.nix", stage("p", 'echo > "${outputs."data.csv"}"', outputs={"data.csv": "$out/data.csv"})
    )
    proc = exp.build()
    assert proc.returncode == 1, proc.stderr  # nix evaluation failed: a build failure
    assert "Traceback" not in proc.stderr
    for fragment in expected:
        assert fragment in proc.stderr, proc.stderr
    assert not (exp.root / "result").exists()


@pytest.mark.slow
def test_shellcheck_finding_fails_the_build_naming_file_and_line(exp: Experiment) -> None:
    minimal_experiment(
        exp,
        stage_text=stage(
            "s", 'x=$(echo "${parameters.n}")\necho $x > "${outputs."out.txt"}"', params={"n": 0}
        ),
    )
    proc = exp.build()
    assert proc.returncode == 1
    # The body starts on line 8 of s.nix; `$x` is on its second line.
    assert "stage 's' (s.nix:9:" in proc.stderr, proc.stderr
    assert "SC2086" in proc.stderr


@pytest.mark.slow
def test_missing_run_dependency_fails_the_build_naming_the_command(exp: Experiment) -> None:
    minimal_experiment(exp, stage_text=stage("s", 'python3 -c "print(1)" > "${outputs."out.txt"}"'))
    proc = exp.build()
    assert proc.returncode == 1
    assert "command 'python3' is not provided by runDependencies" in proc.stderr, proc.stderr
    assert "stage 's'" in proc.stderr
    # Declaring the dependency fixes it (gawk provides awk in both package sets).
    minimal_experiment(
        exp,
        stage_text=stage("s", 'awk "BEGIN { print 1 }" > "${outputs."out.txt"}"', deps="pkgs.gawk"),
    )
    assert exp.build().returncode == 0


@pytest.mark.slow
def test_host_program_path_fails_the_build_naming_file_and_line(exp: Experiment) -> None:
    body = 'echo start\n/usr/bin/python3 -c "print(1)" > "${outputs."out.txt"}"'
    minimal_experiment(exp, stage_text=stage("s", body))
    proc = exp.build()
    assert proc.returncode == 1
    # Body line 2 is line 9 of s.nix, indented by 4 columns.
    expected = "stage 's' (s.nix:9:5): '/usr/bin/python3' is a program outside the Nix store"
    assert expected in proc.stderr, proc.stderr
    assert "(e.g. pkgs.python3) to runDependencies and call it by name ('python3')" in proc.stderr


@pytest.mark.slow
def test_default_template_builds_against_the_nixpkgs_standin(
    tmp_path: Path, repx_flake_copy: Path, built_lab
) -> None:
    """The same experiment files build with a nixpkgs-shaped package set passed as nixpkgs."""
    standin = tmp_path / "standin"
    shutil.copytree(REPO / "tests/assets/nixpkgs-standin", standin)
    lab = built_lab("default")
    proc = subprocess.run(
        [
            str(REPX_BIN),
            "build",
            "--json",
            "--out-link",
            "result-standin",
            "--override-input",
            f"repx=path:{repx_flake_copy}",
            "--override-input",
            f"nixpkgs=path:{standin}",
        ],
        cwd=lab.experiment,
        env=lab.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["total_jobs"] == lab.summary["total_jobs"] == 10
    # Different package set, so different scripts and job ids; same experiment structure.
    assert summary["lab_id"] != lab.summary["lab_id"]
    standin_lab = lab.experiment / "result-standin"
    for part in ("lab/lab-metadata.json", "revision/metadata.json", "readme/README.md"):
        assert (standin_lab / part).is_file()
    scripts = list((standin_lab / "jobs").glob("*/bin/*"))
    assert len(scripts) == 10


@pytest.mark.slow
def test_unified_container_mode_writes_an_image_a_job_runs_in(
    exp: Experiment, tmp_path: Path
) -> None:
    minimal_experiment(exp)
    exp.write(
        "flake.nix",
        FLAKE.replace("runs = import", 'containerMode = "unified";\n      runs = import'),
    )
    proc = exp.build()
    assert proc.returncode == 0, proc.stderr
    lab = (exp.root / "result").resolve()
    meta = json.loads((lab / "lab/lab-metadata.json").read_text())
    assert meta["container_mode"] == "unified"
    image = lab / meta["images"]["unified"]
    assert json.loads((image / "image.json").read_text())["format"] == "repx-image/1"
    rootfs = image / "rootfs"
    job = next((lab / "jobs").iterdir())
    out = tmp_path / "o"
    out.mkdir()
    (out / "inputs.json").write_text("{}")
    # The job sees the image's /bin, /usr, /etc and the store: nothing else of the host.
    argv = ["bwrap", "--tmpfs", "/"]
    for part in ("bin", "usr", "etc"):
        argv += ["--ro-bind", str(rootfs / part), f"/{part}"]
    argv += [
        "--ro-bind",
        "/nix/store",
        "/nix/store",
        "--bind",
        str(out),
        str(out),
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--unshare-all",
        "--die-with-parent",
        str(job / "bin/s"),
        str(out / "job"),
        str(out / "inputs.json"),
        str(job / "parameters.json"),
    ]
    run = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert (out / "job/out.txt").read_text().strip() in {"1", "2"}
    # "unified" is the default; "none" labs carry no images/ (and no OCI layout).
    minimal_experiment(exp)
    assert exp.build().returncode == 0
    default = json.loads(((exp.root / "result") / "lab/lab-metadata.json").read_text())
    assert default["container_mode"] == "unified"
    exp.write("flake.nix", HERMETIC)
    assert exp.build().returncode == 0
    assert not ((exp.root / "result") / "images").exists()
    assert not list((exp.root / "result").glob("store/*-repx-oci-image"))


@pytest.mark.slow
def test_repeated_values_collapse_into_one_job_gathered_once(exp: Experiment) -> None:
    minimal_experiment(
        exp,
        run='{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = [ 1 1 2 ]; }; }',
        pipe="{ repx }: repx.mkPipe rec { s = repx.callStage ./s.nix [ ]; "
        'g = repx.callStage ./g.nix [ [ (repx.gather s) "out.txt" "all" ] ]; }',
    )
    exp.write(
        "g.nix", stage("g", 'jq length "${inputs.all}" > "${outputs."out.txt"}"', inputs=["all"])
    )
    jobs = exp.eval_jobs()
    assert len(by_stage(jobs, "s")) == 2
    (gather,) = by_stage(jobs, "g").values()
    assert sorted(gather["inputs"]) == sorted(by_stage(jobs, "s"))


@pytest.mark.slow
def test_file_parameters_are_part_of_the_lab_store(exp: Experiment) -> None:
    """A path given as a parameter value travels in the lab, for hosts without Nix."""
    minimal_experiment(
        exp,
        run='{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { n = [ ./data.txt ]; }; }',
        stage_text=stage("s", 'cat "${parameters.n}" > "${outputs."out.txt"}"', params={"n": ""}),
    )
    exp.write("data.txt", "payload\n")
    proc = exp.build()
    assert proc.returncode == 0, proc.stderr
    lab = (exp.root / "result").resolve()
    meta = json.loads((lab / "lab/lab-metadata.json").read_text())
    (data,) = [p for p in meta["store_paths"] if p.endswith("-data.txt")]
    assert (lab / "store" / Path(data).name).read_text() == "payload\n"


@pytest.mark.slow
def test_a_few_thousand_jobs_build_and_pass_validation(exp: Experiment) -> None:
    """Long file lists go through the builder's batched passes intact (integrity checked)."""
    sweep_experiment(exp, list(range(1500)))
    proc = exp.build()
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout)
    assert summary["total_jobs"] == 3000 + 3000 + 1 + 2  # make, post, agg, side
    meta = json.loads((exp.root / "result/lab/lab-metadata.json").read_text())
    assert len(meta["files"]) > 2 * 3000
