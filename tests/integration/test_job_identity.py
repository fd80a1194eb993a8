"""What a job can see is part of its id: switching containerMode changes every job id."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_nix_lib import FLAKE, HERMETIC, Experiment, minimal_experiment

pytestmark = pytest.mark.slow

UNIFIED = FLAKE.replace("runs = import", 'containerMode = "unified";\n      runs = import')


@pytest.fixture
def exp(tmp_path: Path, repx_flake_copy: Path) -> Experiment:
    return Experiment(tmp_path / "exp", repx_flake_copy)


def test_container_mode_changes_job_ids(exp: Experiment) -> None:
    minimal_experiment(exp)
    exp.write("flake.nix", HERMETIC)
    hermetic = set(exp.eval_jobs())
    exp.write("flake.nix", UNIFIED)
    image = set(exp.eval_jobs())
    assert len(hermetic) == len(image) == 2
    assert hermetic.isdisjoint(image)
    # the stage name stays readable in the id; the same lab evaluates to the same ids
    assert all(job.endswith("-s") for job in image)
    assert set(exp.eval_jobs()) == image
    exp.write("flake.nix", HERMETIC)
    assert set(exp.eval_jobs()) == hermetic
    exp.write("flake.nix", FLAKE)  # "unified" is the default
    assert set(exp.eval_jobs()) == image
