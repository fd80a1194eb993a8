"""containerMode "unified": bwrap jobs run in the lab's image, not on the host's root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_nix_lib import FLAKE, Experiment, minimal_experiment, stage

from conftest import REPX_BIN

pytestmark = pytest.mark.slow


@pytest.fixture
def exp(tmp_path: Path, repx_flake_copy: Path) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


PROBE = (
    'if [ -e /etc/debian_version ]; then echo host; else echo image; fi > "${outputs."out.txt"}"'
)


def run_and_read(exp: Experiment, base: str) -> str:
    assert exp.build().returncode == 0
    proc = subprocess.run(
        [str(REPX_BIN), "run", "--runtime", "bwrap", "--base", str(exp.root / base)],
        cwd=exp.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (out,) = (exp.root / base / "outputs").glob("*-s/out/out.txt")
    return out.read_text().strip()


def test_unified_lab_runs_jobs_in_its_image(exp: Experiment) -> None:
    minimal_experiment(
        exp,
        run='{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { }; }',
        stage_text=stage("s", PROBE),
    )
    assert run_and_read(exp, "runs-none") == "host"
    exp.write(
        "flake.nix",
        FLAKE.replace("runs = import", 'containerMode = "unified";\n      runs = import'),
    )
    # Same job id (the image is not part of it): a fresh base so that it runs again.
    assert run_and_read(exp, "runs-unified") == "image"
