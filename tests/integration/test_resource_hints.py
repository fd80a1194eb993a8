"""Resource hints end to end: a lab built with RepX-style integer hints (``mem = 512;
time = 30;``, which the build used to accept and the Python side to refuse as an invalid
lab) is read back normalised and turned into sbatch options."""

from __future__ import annotations

import json
import shutil

import pytest

from integration.test_nix_lib import Experiment, minimal_experiment, stage
from repx.lab.loader import open_lab
from repx.run.slurm_resources import ResourcePolicy

pytestmark = pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")


@pytest.fixture
def exp(tmp_path, repx_flake_copy) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


@pytest.mark.slow
def test_integer_and_string_hints_build_and_read_back(exp: Experiment) -> None:
    text = stage("s", 'echo "${parameters.n}" > "${outputs."out.txt"}"', params={"n": 0})
    text = text.replace(
        "  run =",
        '  resources = { cpus = 2; mem = 512; time = 30; sbatch_opts = [ "--qos=normal" ]; };\n'
        "  run =",
        1,
    )
    minimal_experiment(exp, stage_text=text)
    proc = exp.build()
    assert proc.returncode == 0, proc.stderr
    lab = open_lab(exp.root / "result")  # refused the lab before: mem/time had to be strings
    manifest = json.loads((exp.root / "result" / lab.revision.runs["r"].manifest).read_text())
    assert manifest["stages"]["s"]["resources"] == {
        "cpus": 2,
        "mem": 512,
        "time": 30,
        "sbatch_opts": ["--qos=normal"],
    }
    for job_id, job in lab.runs["r"].jobs.items():
        assert ResourcePolicy().resolve(job_id, job, ["r"]).sbatch_args() == [
            "--cpus-per-task=2",
            "--mem=512M",
            "--time=00:30:00",
            "--qos=normal",
        ]
