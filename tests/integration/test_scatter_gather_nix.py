"""Scatter-gather stage files that the library refuses: one line naming the file and what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_nix_lib import Experiment, minimal_experiment

pytestmark = pytest.mark.slow


@pytest.fixture
def exp(tmp_path: Path, repx_flake_copy: Path) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


def sg_stage(
    *,
    scatter_outputs: str = 'work__items = "$out/items.json"; worker__arg = { i = 0; };',
    steps: str = "inherit a b;",
    b_deps: str = "[ a ]",
    a_deps: str = "[ ]",
    gather_inputs: str = '[ "worker__outs" ]',
    extra: str = "",
) -> str:
    return f"""{{ pkgs }}:
let
  a = {{
    inputs = [ "worker__item" ];
    outputs.x = "$out/x";
    deps = {a_deps};
    run = {{ inputs, outputs, ... }}: ''
      jq .i "${{inputs.worker__item}}" > "${{outputs.x}}"
    '';
  }};
  b = {{
    inputs = [ "x" ];
    outputs.y = "$out/y";
    deps = {b_deps};
    run = {{ inputs, outputs, ... }}: ''
      cat "${{inputs.x}}" > "${{outputs.y}}"
    '';
  }};
in
{{
  pname = "s";
  parameters.n = 0;
  scatter = {{
    outputs = {{ {scatter_outputs} }};
    run = {{ outputs, ... }}: ''
      echo '[{{"i": 1}}]' > "${{outputs.work__items}}"
    '';{extra}
  }};
  steps = {{ {steps} }};
  gather = {{
    inputs = {gather_inputs};
    outputs.sum = "$out/sum";
    run = {{ outputs, ... }}: ''
      echo 1 > "${{outputs.sum}}"
    '';
  }};
}}
"""


BAD_STAGES = {
    "no work__items": (
        sg_stage(scatter_outputs="worker__arg = { i = 0; };"),
        ["s.nix (scatter-gather stage s), scatter", 'declare the output "work__items"'],
    ),
    "two sink steps": (
        sg_stage(b_deps="[ ]", steps="inherit a b;"),
        ["exactly one sink step", "found 'a', 'b'"],
    ),
    "cyclic steps": (
        sg_stage(a_deps="[ b ]"),
        ["cyclic step dependencies"],
    ),
    "dependency that is no step": (
        sg_stage(steps="inherit b;"),
        ["step-b", "a dependency is not one of this stage's steps"],
    ),
    "gather without worker__outs": (
        sg_stage(gather_inputs="[ ]"),
        ["gather", 'must declare the input "worker__outs"'],
    ),
    "unknown piece attribute": (
        sg_stage(extra='\n    colour = "red";'),
        ["s.nix (scatter-gather stage s), scatter", "unknown attribute(s) 'colour'"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_STAGES))
def test_bad_scatter_gather_stage_fails_naming_the_place(exp: Experiment, case: str) -> None:
    text, expected = BAD_STAGES[case]
    minimal_experiment(exp, stage_text=text)
    proc = exp.build()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in expected:
        assert fragment in proc.stderr, proc.stderr


def test_good_stage_builds_with_one_job_per_combination(exp: Experiment) -> None:
    minimal_experiment(exp, stage_text=sg_stage())
    jobs = exp.eval_jobs()
    assert sorted(j["params"]["n"] for j in jobs.values()) == [1, 2]


DIAMOND = """{ pkgs }:
let
  a = {
    inputs = [ "worker__item" "table" ];
    outputs.x = "$out/x";
    run = { inputs, outputs, ... }: ''
      cat "${inputs.worker__item}" "${inputs.table}" > "${outputs.x}"
    '';
  };
  b = {
    inputs = [ "x" ];
    outputs.y = "$out/y";
    deps = [ a ];
    run = { inputs, outputs, ... }: ''
      cat "${inputs.x}" > "${outputs.y}"
    '';
  };
  c = {
    inputs = [ "z" ];
    outputs.w = "$out/w";
    deps = [ [ a "x" "z" ] ];
    resources = { cpus = 2; time = "00:05:00"; };
    run = { inputs, outputs, ... }: ''
      cat "${inputs.z}" > "${outputs.w}"
    '';
  };
  d = {
    inputs = [ "y" "w" ];
    outputs = { y2 = "$out/y2"; w2 = "$out/w2"; };
    deps = [ b c ];
    run = { inputs, outputs, ... }: ''
      cat "${inputs.y}" > "${outputs.y2}"
      cat "${inputs.w}" > "${outputs.w2}"
    '';
  };
in
{
  pname = "s";
  parameters.n = 0;
  scatter = {
    outputs.work__items = "$out/items.json";
    run = { outputs, ... }: ''
      echo '[1, 2]' > "${outputs.work__items}"
    '';
  };
  steps = { inherit a b c d; };
  gather = {
    inputs = [ "worker__outs" "table" ];
    outputs.sum = "$out/sum";
    run = { inputs, outputs, ... }: ''
      jq -r '.[].y2' "${inputs.worker__outs}" | xargs cat > "${outputs.sum}"
    '';
  };
}
"""


def test_diamond_of_steps_is_recorded_with_its_wiring(exp: Experiment) -> None:
    minimal_experiment(
        exp,
        stage_text=DIAMOND,
        pipe="{ repx }: repx.mkPipe rec { p = repx.callStage ./p.nix [ ]; "
        's = repx.callStage ./s.nix [ [ p "data.csv" "table" ] ]; }',
    )
    exp.write(
        "p.nix",
        '{ pkgs }: { pname = "p"; outputs."data.csv" = "$out/data.csv"; run = '
        "{ outputs, ... }: ''\n  echo > \"${outputs.\"data.csv\"}\"\n''; }\n",
    )
    proc = exp.build()
    assert proc.returncode == 0, proc.stderr
    lab = (exp.root / "result").resolve()
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    manifest = json.loads((lab / meta["runs"]["r"]["manifest"]).read_text())
    jobs = [j for j in manifest["jobs"].values() if j["stage"] == "s"]
    assert len(jobs) == 2  # one per value of n
    layout = jobs[0]["scatter_gather"]
    assert layout["step_order"][0] == "a" and layout["step_order"][-1] == "d"
    assert layout["sink"] == "d"
    steps = layout["steps"]
    assert steps["a"]["inputs"] == {
        "worker__item": {"from": "item"},
        "table": {"from": "stage", "input": "table"},
    }
    assert steps["c"]["inputs"] == {"z": {"from": "step", "step": "a", "output": "x"}}
    assert steps["c"]["resources"] == {"cpus": 2, "time": 5}
    assert sorted(steps["d"]["deps"]) == ["b", "c"]
    assert layout["gather"]["inputs"]["table"] == {"from": "stage", "input": "table"}
    # the stage's one input is wired to p; its outputs are the gather's
    assert [i["name"] for i in jobs[0]["inputs"]] == ["table"]
    assert jobs[0]["outputs"] == {"sum": "$out/sum"}


def test_repx_spelling_params_and_passthru_are_accepted(exp: Experiment) -> None:
    text = sg_stage().replace("parameters.n = 0;", "params.n = 0;\n  passthru.note = 1;")
    minimal_experiment(exp, stage_text=text)
    jobs = exp.eval_jobs()
    assert sorted(j["params"]["n"] for j in jobs.values()) == [1, 2]
