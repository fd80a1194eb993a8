"""A bad resource hint fails the build with one line naming the stage file, the stage and
the field, and good hints reach the lab normalised: the real nix/lib/stage.nix loading a
real stage file (only the stage is evaluated, so each case costs a few milliseconds)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def load_resources(tmp_path: Path, resources: str) -> subprocess.CompletedProcess[str]:
    stage = tmp_path / "stages" / "simulate.nix"
    stage.parent.mkdir(exist_ok=True)
    stage.write_text(
        f'{{ pkgs }}: {{\n  pname = "simulate";\n  resources = {resources};\n  run = "true";\n}}\n'
    )
    expr = (
        f"let util = import {REPO}/nix/lib/util.nix; "
        f"stages = import {REPO}/nix/lib/stage.nix {{ inherit util; tools = {{ }}; }}; "
        f"in (stages.load {{ }} {{ file = {stage}; }}).resources"
    )
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", expr],
        capture_output=True,
        text=True,
        check=False,
    )


BAD = {
    "time past 59 seconds": (
        '{ time = "99:99"; }',
        'resources.time: invalid value "99:99": use minutes (30) or "MM:SS"',
    ),
    "zero memory": (
        '{ mem = "0"; }',
        'resources.mem: invalid value "0": use a whole number of MiB',
    ),
    "zero cpus": ("{ cpus = 0; }", "resources.cpus: invalid value 0: use a whole number of CPUs"),
    "second sbatch option": (
        '{ sbatch_opts = [ "--qos=long" "oops" ]; }',
        'resources.sbatch_opts[1]: invalid value "oops": use one option per element',
    ),
    "an option repx sets": (
        '{ sbatch_opts = [ "--exclusive" "--dependency=afterok:1" ]; }',
        'resources.sbatch_opts[1]: invalid value "--dependency=afterok:1": --dependency is set by repx itself',
    ),
    "a single option string": (
        '{ sbatch_opts = "--qos=long"; }',
        'resources.sbatch_opts: invalid value "--qos=long": use a list of sbatch options',
    ),
    "a bad partition": (
        '{ partition = "a b"; }',
        'resources.partition: invalid value "a b": use a partition name',
    ),
    "an unknown key": ("{ gpus = 1; }", "unknown resource key(s) 'gpus'"),
    "not an attribute set": ('"4G"', "'resources' must be an attribute set"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_hint_fails_naming_file_stage_and_field(tmp_path, case):
    resources, message = BAD[case]
    proc = load_resources(tmp_path, resources)
    assert proc.returncode != 0
    assert f"repx: {tmp_path}/stages/simulate.nix (stage simulate): {message}" in proc.stderr


def test_hints_reach_the_lab_normalised(tmp_path):
    proc = load_resources(
        tmp_path,
        '{ cpus = 2; mem = 512; time = 30; partition = "short"; sbatch_opts = [ "--qos=x" ]; }',
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "cpus": 2,
        "mem": 512,
        "time": 30,
        "partition": "short",
        "sbatch_opts": ["--qos=x"],
    }
    proc = load_resources(tmp_path, '{ mem = "1.5G"; time = "1-00:00:00"; }')
    assert json.loads(proc.stdout) == {"mem": 1536, "time": 1440}
    assert json.loads(load_resources(tmp_path, "{ }").stdout) == {}
