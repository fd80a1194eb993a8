"""containerMode "unified": bwrap jobs run in the lab's image, not on the host's root."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_nix_lib import FLAKE, HERMETIC, Experiment, minimal_experiment, stage

from conftest import REPX_BIN

pytestmark = pytest.mark.slow


@pytest.fixture
def exp(tmp_path: Path, repx_flake_copy: Path) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


# The host's root has /etc/debian_version, the image an /etc/passwd of its own, the
# hermetic sandbox ("none") no /etc at all.
PROBE = (
    "if [ -e /etc/debian_version ]; then echo host; elif [ -e /etc/passwd ]; then echo image;"
    ' else echo hermetic; fi > "${outputs."out.txt"}"'
)


def run_and_read(exp: Experiment, base: str, seen: set[Path]) -> str:
    assert exp.build().returncode == 0
    proc = subprocess.run(
        [str(REPX_BIN), "run", "--runtime", "bwrap", "--base", str(exp.root / base)],
        cwd=exp.root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    # the job this run committed: the one whose output was not there before
    (out,) = set((exp.root / base / "outputs").glob("*-s/out/out.txt")) - seen
    seen.add(out)
    return out.read_text().strip()


def test_unified_lab_runs_jobs_in_its_image(exp: Experiment) -> None:
    minimal_experiment(
        exp,
        run='{ name = "r"; pipelines = [ ./pipe.nix ]; parameters = { }; }',
        stage_text=stage("s", PROBE),
    )
    seen: set[Path] = set()
    exp.write("flake.nix", HERMETIC)
    assert run_and_read(exp, "runs", seen) == "hermetic"
    exp.write("flake.nix", FLAKE)  # containerMode "unified", the default
    # The image is part of the job id: the same base does not reuse the "none" result.
    assert run_and_read(exp, "runs", seen) == "image"
    assert len(list((exp.root / "runs" / "outputs").glob("*-s"))) == 2
