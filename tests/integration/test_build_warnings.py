"""repx build's warnings on a real build: a run parameter no stage uses (with its line),
``${parameters.x}`` inside single quotes, and a command typo named before ShellCheck."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from runlab import ASSETS, _repx_flake, repx_argv, require_nix

pytestmark = pytest.mark.slow

RUN = """\
{
  name = "simulation";
  pipelines = [ ../pipelines/simulation.nix ];
  parameters = {
    seed = [ 1 2 ];
    samples = [ 1000 ];
    tmperature = [ 1.5 ];
  };
}
"""


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    require_nix()
    exp = tmp_path / "exp"
    shutil.copytree(ASSETS / "sweep", exp)
    (exp / "nix" / "runs" / "simulation.nix").write_text(RUN)
    stage = exp / "nix" / "stages" / "simulate.nix"
    text = stage.read_text()
    # jq's own $-syntax: ShellCheck is silent, but the job would get the literal text
    quoted = text.replace(
        "      jq -n --argjson seed",
        "      jq -n '{first: ${parameters.seed}}' > /dev/null\n      jq -n --argjson seed",
    )
    assert quoted != text
    stage.write_text(quoted)
    subprocess.run(["git", "init", "-q"], cwd=exp, check=True)
    subprocess.run(["git", "add", "-A"], cwd=exp, check=True)
    return exp


def _build(exp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        repx_argv("build", "--override-input", f"repx=path:{_repx_flake()}", *args),
        cwd=exp,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )


def _line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


def test_warnings_name_the_file_and_line_every_build(experiment):
    stage = experiment / "nix" / "stages" / "simulate.nix"
    quoted_line = _line_of(stage, "{first: ${parameters.seed}}")
    expected = [
        "warning: run 'simulation' (nix/runs/simulation.nix:7): parameter 'tmperature' is used"
        " by no stage (stages: simulate, aggregate), so it changes no job; remove it, or declare"
        " it in the parameters of the stage that needs it",
        f"warning: stage 'simulate' (nix/stages/simulate.nix:{quoted_line}:22): ${{parameters.seed}}"
        " is inside single quotes, where bash does not expand it: the job gets the literal text"
        " ${PARAMS[seed]}; close the quotes around it ('...'\"${parameters.seed}\"'...') or use"
        " double quotes",
    ]
    first = _build(experiment)
    assert first.returncode == 0, first.stderr
    assert [line for line in first.stderr.splitlines() if line.startswith("warning: ")] == expected
    # the checks are not run again (cached): the lab still carries their warnings
    again = _build(experiment, "--json")
    assert again.returncode == 0, again.stderr
    assert [line for line in again.stderr.splitlines() if line.startswith("warning: ")] == expected
    assert '"warnings"' in again.stdout


def test_a_command_typo_is_named_before_shellcheck(experiment):
    stage = experiment / "nix" / "stages" / "simulate.nix"
    stage.write_text(stage.read_text().replace("      jq -n --argjson", "      jqq -n --argjson"))
    line = _line_of(stage, "jqq -n --argjson")
    done = _build(experiment)
    assert done.returncode == 1
    lines = [x for x in done.stderr.splitlines() if "repx: stage 'simulate'" in x]
    assert lines[0].endswith(
        f"repx: stage 'simulate' (nix/stages/simulate.nix:{line}:7): command 'jqq' is not found"
        " in the stage's packages (runDependencies); did you mean 'jq'? (if not, add the package"
        " that provides it to runDependencies)"
    ), done.stderr
