"""repx init: templates copied with real ``nix flake new``, never overwriting, git-staged."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repx import git, nix
from repx.cli import app
from repx.errors import TemplateError, UsageError
from repx.services.init import init_experiment, list_templates

REPO = Path(__file__).resolve().parents[2]
needs_nix = pytest.mark.skipif(shutil.which("nix") is None, reason="needs nix")

FAKE_FLAKE = """{
  description = "fake repx flake for tests";
  outputs = { self }: {
    templates = {
      default = {
        path = ./templates/default;
        description = "Fake default template, with \\"quotes\\"";
      };
      minimal = { path = ./templates/minimal; description = "Fake minimal"; };
    };
  };
}
"""


@pytest.fixture
def fake_flake(tmp_path: Path) -> Path:
    """A tiny repx-like flake with two templates (no git: referenced as path:)."""
    root = tmp_path / "fake-repx"
    (root / "nix" / "lib").mkdir(parents=True)
    (root / "nix" / "lib" / "default.nix").write_text("{ }\n")
    (root / "flake.nix").write_text(FAKE_FLAKE)
    default = root / "templates" / "default"
    (default / "nix").mkdir(parents=True)
    (default / "flake.nix").write_text(
        '{\n  description = "my-experiment: own description";\n  outputs = { self }: { };\n}\n'
    )
    (default / "nix" / "lab.nix").write_text('{ name = "my-experiment"; }\n')
    (default / ".gitignore").write_text("/result\n")
    (default / "run.sh").write_text("#!/bin/sh\necho my-experiment\n")
    (default / "run.sh").chmod(0o755)
    minimal = root / "templates" / "minimal"
    minimal.mkdir()
    (minimal / "flake.nix").write_text('{ description = "unused"; outputs = { self }: { }; }\n')
    undeclared = root / "templates" / "extra"
    undeclared.mkdir()
    (undeclared / "flake.nix").write_text(
        '{ description = "Only in its own flake"; outputs = _: { }; }\n'
    )
    return root


def staged_files(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", repo, "diff", "--cached", "--name-only"],
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(out.stdout.split())


def snapshot(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def test_list_templates_reads_descriptions_without_nix(fake_flake):
    templates = {t.name: t.description for t in list_templates(fake_flake)}
    assert templates == {
        "default": 'Fake default template, with "quotes"',
        "extra": "Only in its own flake",
        "minimal": "Fake minimal",
    }


@needs_nix
def test_init_new_directory(fake_flake, tmp_path):
    dest = tmp_path / "exp"
    result = init_experiment(dest, "default", "pi-demo", flake_dir=fake_flake)
    assert result.git_initialized
    assert result.git_staged
    assert sorted(p.relative_to(dest).as_posix() for p in result.files) == [
        ".gitignore",
        "flake.nix",
        "nix/lab.nix",
        "run.sh",
    ]
    assert (dest / "nix" / "lab.nix").read_text() == '{ name = "pi-demo"; }\n'
    assert "pi-demo: own description" in (dest / "flake.nix").read_text()
    assert os.access(dest / "run.sh", os.X_OK)  # nix flake new drops it; we restore it
    assert git.find_repo_root(dest) == dest
    assert staged_files(dest) == [".gitignore", "flake.nix", "nix/lab.nix", "run.sh"]


@needs_nix
def test_init_keeps_placeholder_without_name(fake_flake, tmp_path):
    init_experiment(tmp_path / "exp", flake_dir=fake_flake)
    assert "my-experiment" in (tmp_path / "exp" / "nix" / "lab.nix").read_text()


@pytest.mark.parametrize("existing", ["flake.nix", "nix/lab.nix"])
def test_refuses_to_overwrite_and_writes_nothing(fake_flake, tmp_path, monkeypatch, existing):
    dest = tmp_path / "exp"
    (dest / existing).parent.mkdir(parents=True, exist_ok=True)
    (dest / existing).write_text("the user's own file\n")
    (dest / "notes.txt").write_text("unrelated\n")
    before = snapshot(dest)

    def must_not_run(*_args: object) -> None:
        raise AssertionError("nix flake new must not run")

    monkeypatch.setattr(nix, "flake_new", must_not_run)
    with pytest.raises(
        TemplateError, match=rf"refusing to overwrite existing files in {dest}: {existing}"
    ):
        init_experiment(dest, flake_dir=fake_flake)
    assert snapshot(dest) == before
    assert not (dest / ".git").exists()


@needs_nix
def test_inside_a_repository_only_new_files_are_staged(fake_flake, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git.init(repo)
    (repo / "unrelated.txt").write_text("not ours to stage\n")
    result = init_experiment(repo / "experiments" / "one", "minimal", flake_dir=fake_flake)
    assert not result.git_initialized
    assert not (repo / "experiments" / "one" / ".git").exists()
    assert staged_files(repo) == ["experiments/one/flake.nix"]


def test_unknown_template(fake_flake, tmp_path):
    with pytest.raises(
        TemplateError, match=r"unknown template 'nope' \(available: default, extra, minimal\)"
    ):
        init_experiment(tmp_path / "exp", "nope", flake_dir=fake_flake)
    assert not (tmp_path / "exp").exists()


def test_invalid_name(fake_flake, tmp_path):
    with pytest.raises(UsageError, match="invalid experiment name 'a b'"):
        init_experiment(tmp_path / "exp", "default", "a b", flake_dir=fake_flake)


def test_untracked_template_in_a_git_checkout_is_explained(fake_flake, tmp_path):
    git.init(fake_flake)
    git.add(fake_flake, [Path("flake.nix")])
    with pytest.raises(
        TemplateError, match=r"template 'default' is not tracked by git .*git add templates/default"
    ):
        init_experiment(tmp_path / "exp", flake_dir=fake_flake)


@needs_nix
def test_cli_init_and_list(fake_flake, tmp_path, monkeypatch):
    monkeypatch.setenv("REPX_FLAKE_DIR", str(fake_flake))
    runner = CliRunner()
    listed = runner.invoke(app, ["init", "--list"])
    assert listed.exit_code == 0
    assert listed.stdout.splitlines()[0] == 'default\tFake default template, with "quotes"'
    dest = tmp_path / "exp"
    created = runner.invoke(app, ["init", str(dest), "--name", "cli-demo"])
    assert created.exit_code == 0, created.output
    assert created.stdout == ""
    assert f"cd {dest} && repx build" in created.stderr
    assert (dest / "nix" / "lab.nix").read_text() == '{ name = "cli-demo"; }\n'
    again = runner.invoke(app, ["init", str(dest)])
    assert again.exit_code == 2
    assert again.stderr.startswith("error: refusing to overwrite existing files")


@needs_nix
@pytest.mark.parametrize("template", ["default", "minimal"])
def test_real_templates(template, tmp_path):
    dest = tmp_path / "exp"
    result = init_experiment(dest, template, "real-demo", flake_dir=REPO)
    assert (dest / "flake.nix").is_file()
    assert result.git_initialized
    assert "flake.nix" in staged_files(dest)
    assert not any(
        "my-experiment" in p.read_text(errors="replace") for p in result.files if p.is_file()
    )
