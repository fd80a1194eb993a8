"""``repx init`` + ``repx build`` with real nix, the Nix library and the templates."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from runlab import build_lab, lab_jobs, repx

from repx.lab.loader import open_lab
from repx.lab.models import Job
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
    # the builder's job index points at every record of every manifest (lab/job-index.tsv)
    lazy = open_lab(built.result, lazy=True)
    assert lazy.index is not None
    for run, entry in lab.revision.runs.items():
        records = json.loads(lab.path(entry.manifest).read_bytes())["jobs"]
        assert list(lazy.runs[run].jobs) == list(records)
        for job_id, record in records.items():
            assert lazy.jobs[job_id] == Job.model_validate(record)
            assert lazy.upstream[job_id] == tuple(sorted({i["job"] for i in record["inputs"]}))


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
    meta = lab.integrity_list()
    listed = {
        **{f.path: ("file", f.executable) for f in meta.files},
        **{s.path: ("symlink", s.target) for s in meta.symlinks},
        **{d: ("directory", None) for d in meta.empty_dirs},
    }
    found = {
        p: (e.kind, e.executable if e.kind == "file" else e.target or None)
        for p, e in on_disk.items()
        if p in listed
    }
    assert found == listed
    assert meta.symlinks and meta.empty_dirs
    assert all(f.executable for f in meta.files if f.path.startswith("jobs/") and "/bin/" in f.path)
    proc = repx_cli.run("verify", "--lab", str(built.result), "--expect", lab.meta.lab_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = repx_cli.ok("build", *repx_cli.override_args, cwd=built.experiment)
    assert f"--expect {lab.meta.lab_id}" in text.replace("\n", " ")


def _closure_links(lab: Path) -> dict[str, str]:
    """The lab's links to store paths (store/<name>, host-tools/<hash>) and their targets."""
    return {
        f"{sub}/{entry.name}": os.readlink(entry)
        for sub in ("store", "host-tools")
        for entry in sorted((lab / sub).iterdir())
    }


def _nar_size(path: Path) -> int:
    result = subprocess.run(
        ["nix", "--extra-experimental-features", "nix-command", "path-info", "--json", path],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(result.stdout)
    infos = list(data.values()) if isinstance(data, dict) else data
    return int(infos[0]["narSize"])


def _more_seeds(flake: Path) -> None:
    run = flake / "nix" / "runs" / "simulation.nix"
    run.write_text(run.read_text().replace("seed = [ 1 2 3 ];", "seed = [ 1 2 3 4 ];"))


def test_revisions_share_host_tools_and_the_closure():
    """A one-parameter change builds a new lab that links to the same store paths.

    host-tools and every closure path are links into the store (the same targets in both
    revisions); the lab itself is only its own small files.
    """
    first = build_lab("sweep")
    second = build_lab("sweep", edit=_more_seeds, variant="more-seeds")
    assert first != second
    links = _closure_links(first)
    assert links == _closure_links(second)
    assert all(t.startswith("/nix/store/") for t in links.values())
    host_tools = next(t for p, t in links.items() if p.startswith("host-tools/"))
    assert Path(host_tools, "bin", "bwrap").is_file()
    assert (first / "lab" / "closure.json").read_bytes() == (
        second / "lab" / "closure.json"
    ).read_bytes()
    closure = json.loads((first / "lab" / "closure.json").read_bytes())
    assert {e["path"] for e in closure["entries"]} == set(links)
    closure_size = sum(e["nar_size"] for e in closure["entries"])
    # the revision itself: links and small JSON files, not the closure
    assert _nar_size(second) < 1 << 20 < closure_size
    meta = json.loads((second / "lab" / "lab-metadata.json").read_bytes())
    assert not any(f["path"].startswith(("store/", "host-tools/")) for f in meta["files"])


def _per_run(flake: Path) -> None:
    lab = flake / "nix" / "lab.nix"
    lab.write_text(
        lab.read_text().replace(
            "inherit pkgs gitHash;", 'inherit pkgs gitHash;\n  containerMode = "per-run";'
        )
    )


def test_per_run_images_are_keyed_by_run(tmp_path):
    lab = build_lab("sweep", edit=_per_run, variant="per-run")
    meta = json.loads((lab / "lab" / "lab-metadata.json").read_bytes())
    assert meta["container_mode"] == "per-run"
    assert set(meta["images"]) == {"simulation", "report"}
    closure = json.loads((lab / "lab" / "closure.json").read_bytes())
    paths = {}
    for run, rel in meta["images"].items():
        image = json.loads((lab / rel / "image.json").read_bytes())
        assert (lab / rel / "rootfs" / "nix" / "store").is_dir()
        assert set(image["store_paths"]) == set(closure["runs"][run])
        assert set(image["store_paths"]) <= set(meta["store_paths"])
        paths[run] = set(image["store_paths"])
    assert paths["simulation"] != paths["report"]
    assert find_problems(open_lab(lab)).problems == ()
    # jobs see the same under "per-run" and "unified": the same ids
    unified = build_lab("sweep", edit=_unified, variant="unified")
    assert set(lab_jobs(lab)) == set(lab_jobs(unified))
    run = repx("run", "--lab", lab, "--base", tmp_path / "base")
    assert run.returncode == 0, run.stderr


def _unified(flake: Path) -> None:
    lab = flake / "nix" / "lab.nix"
    lab.write_text(
        lab.read_text().replace(
            "inherit pkgs gitHash;", 'inherit pkgs gitHash;\n  containerMode = "unified";'
        )
    )


def _one_run_lab(run_mode: str | None) -> Callable[[Path], None]:
    """A unified lab whose flake builds `.runs.simulation` (with runContainerMode)."""

    def edit(flake: Path) -> None:
        _unified(flake)
        if run_mode is not None:
            lab = flake / "nix" / "lab.nix"
            lab.write_text(
                lab.read_text().replace(
                    'containerMode = "unified";',
                    f'containerMode = "unified";\n  runContainerMode = "{run_mode}";',
                )
            )
        nix = flake / "flake.nix"
        nix.write_text(
            nix.read_text()
            .replace(
                "gitHash = repx.lib.gitHashOf self;\n      };",
                "gitHash = repx.lib.gitHashOf self;\n      }).runs.simulation;",
            )
            .replace("default = import ./nix/lab.nix {", "default = (import ./nix/lab.nix {")
        )

    return edit


def test_one_run_labs_follow_run_container_mode():
    whole = build_lab("sweep", edit=_unified, variant="unified")
    # RepX's default for .runs.<name>: "per-run" -- the same view, so the same job ids
    per_run = build_lab("sweep", edit=_one_run_lab(None), variant="runs-default")
    meta = json.loads((per_run / "lab" / "lab-metadata.json").read_bytes())
    assert (meta["container_mode"], set(meta["images"])) == ("per-run", {"simulation"})
    assert lab_jobs(per_run) and set(lab_jobs(per_run)) < set(lab_jobs(whole))
    # "none": no image, so jobs see something else and get ids of their own
    bare = build_lab("sweep", edit=_one_run_lab("none"), variant="runs-none")
    meta = json.loads((bare / "lab" / "lab-metadata.json").read_bytes())
    assert (meta["container_mode"], meta["images"]) == ("none", {})
    assert len(lab_jobs(bare)) == len(lab_jobs(per_run))
    assert not set(lab_jobs(bare)) & set(lab_jobs(whole))
