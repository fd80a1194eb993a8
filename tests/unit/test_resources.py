"""resources.py (locating the repx flake) and git.py."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from repx import git, resources

REPO = Path(__file__).resolve().parents[2]


def make_flake_dir(path: Path) -> Path:
    (path / "nix" / "lib").mkdir(parents=True)
    (path / "flake.nix").write_text("{ outputs = { self }: { }; }\n")
    (path / "templates").mkdir()
    return path


def test_checkout_is_found_from_the_package():
    assert resources.is_flake_dir(REPO)
    assert resources.flake_dir() == REPO
    assert resources.templates_dir() == REPO / "templates"


def test_environment_override(tmp_path, monkeypatch):
    flake = make_flake_dir(tmp_path / "repx")
    monkeypatch.setenv(resources.FLAKE_DIR_ENV, str(flake))
    assert resources.flake_dir() == flake


def test_bad_environment_override(tmp_path, monkeypatch):
    monkeypatch.setenv(resources.FLAKE_DIR_ENV, str(tmp_path))
    with pytest.raises(resources.FlakeNotFoundError, match="is not a repx flake"):
        resources.flake_dir()


def test_flake_ref_uses_git_only_for_checkouts(tmp_path):
    flake = make_flake_dir(tmp_path / "repx")
    assert resources.flake_ref(flake) == f"path:{flake}"
    (flake / ".git").mkdir()
    assert resources.flake_ref(flake) == f"git+file://{flake}"


def test_git_repo_root_init_and_add(tmp_path):
    assert git.find_repo_root(tmp_path) is None
    git.init(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.txt").write_text("a")
    (tmp_path / "b.txt").write_text("b")
    assert git.find_repo_root(tmp_path / "sub") == tmp_path
    assert git.find_repo_root(tmp_path / "sub" / "a.txt") == tmp_path
    git.add_all(tmp_path / "sub")
    staged = subprocess.run(
        ["git", "-C", tmp_path, "diff", "--cached", "--name-only"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert staged == ["sub/a.txt"]
    assert git.is_tracked(tmp_path, Path("sub/a.txt"))
    assert not git.is_tracked(tmp_path, Path("b.txt"))
    git.add(tmp_path, [Path("b.txt")])
    assert git.is_tracked(tmp_path, Path("b.txt"))
