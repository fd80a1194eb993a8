"""``repx init`` + ``repx build`` with real nix, the Nix library and the templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from repx.lab.loader import open_lab
from repx.lab.summary import summarize_lab
from repx.lab.validate import find_problems

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("template", ["default", "minimal"])
def test_template_builds_a_valid_lab(built_lab, template):
    built = built_lab(template)
    lab = open_lab(built.result)
    assert built.result.resolve().parent == Path("/nix/store")
    assert find_problems(lab).problems == ()
    summary = built.summary
    assert summary["lab_id"] == lab.meta.lab_id
    assert summary["total_jobs"] == len(lab.jobs) > 0
    expected = summarize_lab(lab, size_bytes=summary["size_bytes"]).model_dump(mode="json")
    assert {k: v for k, v in summary.items() if k not in ("build_seconds", "out_link")} == {
        k: v for k, v in expected.items() if k not in ("build_seconds", "out_link")
    }


def test_rebuild_is_a_cached_no_op(built_lab, repx_cli):
    built = built_lab("default")
    stdout = repx_cli.ok("build", "--json", *repx_cli.override_args, cwd=built.experiment)
    again = json.loads(stdout)
    assert again["lab_id"] == built.summary["lab_id"]
    assert again["size_bytes"] == built.summary["size_bytes"]
    cache = Path(repx_cli.env["XDG_CACHE_HOME"]) / "repx" / "validated"
    assert (cache / f"{Path(again['path']).name}.json").is_file()


def test_stage_error_is_reported_with_the_repx_line(repx_cli, tmp_path):
    experiment = tmp_path / "exp"
    repx_cli.ok("init", str(experiment), "--template", "minimal")
    stage = next(experiment.rglob("stage*.nix"), None) or next((experiment / "nix").rglob("*.nix"))
    text = stage.read_text()
    stage.write_text(text.replace("pname =", "frobnicate = 1;\n  pname =", 1))
    proc = repx_cli.run("build", *repx_cli.override_args, cwd=experiment)
    assert proc.returncode == 1, proc.stderr
    assert "error: nix build of '.' failed\n" in proc.stderr
    assert "Traceback" not in proc.stderr
    repx_lines = [line.strip() for line in proc.stderr.splitlines() if "repx:" in line]
    assert repx_lines, proc.stderr
    assert "frobnicate" in proc.stderr
    assert not (experiment / "result").exists()
