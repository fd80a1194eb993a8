"""Build errors in the user's terms: an untracked stage file, paths of the experiment."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from runlab import ASSETS, _repx_flake, repx_argv, require_nix

pytestmark = pytest.mark.slow


@pytest.fixture
def experiment(tmp_path: Path) -> Path:
    require_nix()
    exp = tmp_path / "exp"
    shutil.copytree(ASSETS / "sweep", exp)
    subprocess.run(["git", "init", "-q"], cwd=exp, check=True)
    subprocess.run(["git", "add", "-A"], cwd=exp, check=True)
    pipeline = exp / "nix" / "pipelines" / "report.nix"
    pipeline.write_text(pipeline.read_text().replace("stages/report.nix", "stages/plot.nix"))
    return exp


def _build(exp: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        repx_argv("build", "--override-input", f"repx=path:{_repx_flake()}"),
        cwd=exp,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=False,
    )


def test_an_untracked_stage_file_is_named_with_what_to_do(experiment):
    shutil.copy(experiment / "nix" / "stages" / "report.nix", experiment / "nix/stages/plot.nix")
    done = _build(experiment)
    assert done.returncode == 1
    assert done.stderr == (
        "error: nix/stages/plot.nix is not tracked by git: git add it"
        " (a flake in a git repository sees only the files git knows)\n"
    )


def test_a_missing_file_and_errors_in_a_stage_name_the_experiments_own_paths(experiment):
    done = _build(experiment)
    assert done.returncode == 1
    assert "error: nix/stages/plot.nix does not exist in" in done.stderr
    (experiment / "nix/stages/plot.nix").write_text("{ pkgs }: undefinedThing\n")
    subprocess.run(["git", "add", "-A"], cwd=experiment, check=True)
    done = _build(experiment)
    assert done.returncode == 1
    assert "at nix/stages/plot.nix:1:" in done.stderr and "-source/" not in done.stderr


def test_run_warns_about_a_stale_result_and_build_rebuilds_it(tmp_path):
    require_nix()
    exp = tmp_path / "exp"
    shutil.copytree(ASSETS / "sweep", exp)
    subprocess.run(["git", "init", "-q"], cwd=exp, check=True)
    subprocess.run(["git", "add", "-A"], cwd=exp, check=True)
    # pin the library to this checkout's copy: `run --build` passes no --override-input
    lock = ["nix", "flake", "lock", "--override-input", "repx", f"path:{_repx_flake()}"]
    subprocess.run(lock, cwd=exp, check=True, capture_output=True)
    subprocess.run(["git", "add", "-A"], cwd=exp, check=True)

    def repx(*args: str) -> subprocess.CompletedProcess[str]:
        argv = repx_argv(*args, "--base", str(tmp_path / "base"))
        return subprocess.run(
            argv, cwd=exp, env=dict(os.environ), capture_output=True, text=True, check=False
        )

    first = repx("run", "--build")
    assert first.returncode == 0, first.stderr
    assert "built lab " in first.stderr and (exp / "result").is_symlink()
    stage = exp / "nix" / "stages" / "simulate.nix"
    earlier = (exp / "result").lstat().st_mtime - 5  # whatever the file system's granularity
    os.utime(exp / "result", (earlier, earlier), follow_symlinks=False)
    stage.write_text(stage.read_text().replace("print c + 0", "print c + 0 # edited"))
    stale = repx("run")
    assert stale.returncode == 0, stale.stderr
    assert "warning: nix/stages/simulate.nix changed after result was built" in stale.stderr
    rebuilt = repx("run", "--build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "changed after" not in rebuilt.stderr and "built lab " in rebuilt.stderr
