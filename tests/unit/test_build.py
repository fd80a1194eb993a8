"""services/build.py and ``repx build`` with nix replaced by a factory lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labfactory import write_lab
from repx import nix
from repx.cli import app
from repx.errors import BuildValidationError
from repx.lab.summary import LabSummary
from repx.services.build import BuildOptions, build_lab

runner = CliRunner()


@pytest.fixture
def fake_nix_build(monkeypatch):
    """Make nix.build 'build' a given directory: it links out_link to it and returns it."""
    calls: list[dict[str, object]] = []

    def install(result: Path) -> list[dict[str, object]]:
        def build(flake_ref, out_link, **kwargs):
            calls.append({"flake_ref": flake_ref, "out_link": out_link, **kwargs})
            if out_link is not None:
                Path(out_link).symlink_to(result)
            return result

        monkeypatch.setattr(nix, "build", build)
        return calls

    return install


def test_build_lab_summarises(factory_lab, fake_nix_build, tmp_path):
    calls = fake_nix_build(factory_lab.root)
    options = BuildOptions(
        flake_ref="./exp", out_link=tmp_path / "result", override_inputs={"repx": "path:/r"}
    )
    summary = build_lab(options)
    assert calls[0]["flake_ref"] == "./exp"
    assert calls[0]["override_inputs"] == {"repx": "path:/r"}
    assert summary.lab_id == factory_lab.lab_id
    assert summary.path == str(factory_lab.root.resolve())
    assert summary.out_link == str(tmp_path / "result")
    assert [(r.name, r.jobs, r.stages) for r in summary.runs] == [
        ("simulation", 13, ("simulate", "stats", "aggregate")),
        ("report", 1, ("plot",)),
    ]
    assert summary.runs[1].depends_on == {"simulation": "hard"}
    assert summary.total_jobs == 14
    assert summary.size_bytes > 0
    assert summary.build_seconds is not None


def test_build_of_something_that_is_not_a_lab(fake_nix_build, tmp_path):
    (tmp_path / "not-a-lab").mkdir()
    fake_nix_build(tmp_path / "not-a-lab")
    with pytest.raises(
        BuildValidationError, match=r"is not a valid repx lab: .*lab-metadata\.json missing"
    ) as info:
        build_lab(BuildOptions(out_link=None))
    assert info.value.exit_code == 1


def test_build_of_a_corrupt_lab(factory_lab, fake_nix_build):
    (factory_lab.root / "readme" / "README.md").write_text("changed")
    fake_nix_build(factory_lab.root)
    with pytest.raises(BuildValidationError, match=r"'readme/README\.md' was altered"):
        build_lab(BuildOptions(out_link=None))


def test_cli_build_json(factory_lab, fake_nix_build, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_nix_build(factory_lab.root)
    result = runner.invoke(app, ["build", "--json", "--override-input", "repx=path:/somewhere"])
    assert result.exit_code == 0, result.output
    summary = LabSummary.model_validate_json(result.stdout)
    assert summary.total_jobs == 14
    assert json.loads(result.stdout)["runs"][0]["name"] == "simulation"
    assert (tmp_path / "result").resolve() == factory_lab.root.resolve()


def test_cli_build_table(factory_lab, fake_nix_build, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = fake_nix_build(factory_lab.root)
    result = runner.invoke(app, ["build", "--no-link"])
    assert result.exit_code == 0, result.output
    assert calls[0]["out_link"] is None
    for text in (
        f"lab {factory_lab.lab_id}",
        "simulation",
        "simulate → stats → aggregate",
        "report",
        "simulation (hard)",
        "jobs: 14",
    ):
        assert text in result.stdout


def test_cli_build_failure_leaves_stdout_empty(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_lab(tmp_path / "lab")
    (tmp_path / "lab" / "readme" / "README.md").unlink()

    def build(flake_ref, out_link, **kwargs):
        return tmp_path / "lab"

    monkeypatch.setattr(nix, "build", build)
    result = runner.invoke(app, ["build", "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("error: nix built ")
    assert "readme: file 'readme/README.md' does not exist" in result.stderr
