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


def test_lab_id_commits_to_the_content(built_lab, repx_cli):
    """The builder's lab id is the hash of its metadata, which lists every entry."""
    from repx.lab.integrity import content_lab_id, scan_tree  # noqa: PLC0415

    built = built_lab("default")
    lab = open_lab(built.result)
    data = (lab.root / "lab" / "lab-metadata.json").read_bytes()
    assert content_lab_id(data) == lab.meta.lab_id == built.summary["lab_id"]
    assert lab.meta.lab_id not in str(lab.root)  # no longer the store path's hash
    on_disk = scan_tree(lab.root)
    listed = {
        **{f.path: ("file", f.executable) for f in lab.meta.files},
        **{s.path: ("symlink", s.target) for s in lab.meta.symlinks},
        **{d: ("directory", None) for d in lab.meta.empty_dirs},
    }
    found = {
        p: (e.kind, e.executable if e.kind == "file" else e.target or None)
        for p, e in on_disk.items()
        if p in listed
    }
    assert found == listed
    assert lab.meta.symlinks and lab.meta.empty_dirs
    assert all(
        f.executable for f in lab.meta.files if f.path.startswith("jobs/") and "/bin/" in f.path
    )
    proc = repx_cli.run("verify", "--lab", str(built.result), "--expect", lab.meta.lab_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = repx_cli.ok("build", *repx_cli.override_args, cwd=built.experiment)
    assert f"--expect {lab.meta.lab_id}" in text.replace("\n", " ")
