"""validate_lab and the integrity check: precise problems, and the verdict cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labfactory import RunSpec, StageSpec, edit_json, refresh_integrity, write_lab
from repx.errors import LabError
from repx.lab import integrity
from repx.lab.loader import LAB_METADATA, open_lab
from repx.lab.validate import find_problems, validate_lab

REV = "revision/metadata.json"


def problems_of(root: Path, *, check_integrity: bool = True) -> tuple[str, ...]:
    return find_problems(open_lab(root), check_integrity=check_integrity).problems


def test_factory_lab_is_valid(factory_lab):
    result = validate_lab(open_lab(factory_lab.root), use_cache=False)
    assert result.ok
    assert result.integrity_checked
    # 14 jobs x 2, README, 3 revision files, lab metadata, job index, 9 host tools
    assert result.file_count == 43
    assert result.size_bytes and result.size_bytes > 0
    assert not result.cached


def test_missing_executable(factory_lab):
    job_id = factory_lab.run_jobs["simulation"][0]
    rel = f"jobs/{job_id}/bin/simulate"
    (factory_lab.root / rel).unlink()
    manifest = factory_lab.manifest_path("simulation").relative_to(factory_lab.root)
    assert problems_of(factory_lab.root) == (
        f"{manifest}: jobs.{job_id}.executables.main.path: file '{rel}' does not exist",
        f"{LAB_METADATA}: files: '{rel}' is missing",
    )


def test_missing_parameters_file_and_host_tools(factory_lab):
    job_id = factory_lab.run_jobs["report"][0]
    (factory_lab.root / f"jobs/{job_id}/parameters.json").unlink()
    tools = open_lab(factory_lab.root).meta.host_tools
    for link in (factory_lab.root / tools / "bin").iterdir():
        link.unlink()
    (factory_lab.root / tools / "bin").rmdir()
    (factory_lab.root / tools).rmdir()
    problems = problems_of(factory_lab.root, check_integrity=False)
    assert problems == (
        f"{LAB_METADATA}: host_tools: directory '{tools}' does not exist",
        f"{factory_lab.manifest_path('report').relative_to(factory_lab.root)}: jobs.{job_id}"
        f".parameters_file: file 'jobs/{job_id}/parameters.json' does not exist",
    )


def test_altered_and_extra_files(factory_lab):
    job_id = factory_lab.run_jobs["simulation"][1]
    (factory_lab.root / f"jobs/{job_id}/parameters.json").write_text('{"seed": 99}')
    (factory_lab.root / "jobs" / job_id / "out" / "stray.txt").write_text("x")
    assert problems_of(factory_lab.root) == (
        f"{LAB_METADATA}: files: 'jobs/{job_id}/parameters.json' was altered (sha256 differs)",
        f"{LAB_METADATA}: files: 'jobs/{job_id}/out/stray.txt' is not listed (unexpected file)",
    )
    assert problems_of(factory_lab.root, check_integrity=False) == ()


def test_run_dependency_cycle(factory_lab):
    edit_json(
        factory_lab.root / REV,
        lambda rev: rev["runs"]["simulation"]["depends_on"].update(report="soft"),
    )
    refresh_integrity(factory_lab.root)
    problems = problems_of(factory_lab.root)
    assert f"{REV}: runs: dependency cycle simulation -> report -> simulation" in problems or (
        f"{REV}: runs: dependency cycle report -> simulation -> report" in problems
    )


def test_unknown_run_dependency_group_member_and_run_order(factory_lab):
    def break_revision(rev):
        rev["runs"]["report"]["depends_on"]["ghost"] = "hard"
        rev["groups"]["all"].append("phantom")
        rev["run_order"] = ["report", "simulation"]

    edit_json(factory_lab.root / REV, break_revision)
    refresh_integrity(factory_lab.root)
    assert problems_of(factory_lab.root) == (
        f"{REV}: runs.report.depends_on: unknown run 'ghost'",
        f"{REV}: run_order: 'report' comes before its dependency 'simulation'",
        f"{REV}: groups.all: unknown run 'phantom'",
    )


def test_input_from_unknown_job_and_undeclared_run(factory_lab):
    plot = factory_lab.run_jobs["report"][0]
    manifest = factory_lab.manifest_path("report")

    def break_inputs(m):
        m["jobs"][plot]["inputs"][0]["job"] = "0" * 32 + "-ghost"

    edit_json(manifest, break_inputs)
    edit_json(factory_lab.root / REV, lambda rev: rev["runs"]["report"]["depends_on"].clear())
    refresh_integrity(factory_lab.root)
    rel = manifest.relative_to(factory_lab.root)
    assert problems_of(factory_lab.root) == (
        f"{rel}: jobs.{plot}.inputs[0].run: run 'simulation' is not a dependency of run 'report'",
        f"{rel}: jobs.{plot}.inputs[0].job: unknown job '{'0' * 32}-ghost'",
    )


def test_job_input_cycle(factory_lab):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]
    manifest = factory_lab.manifest_path("simulation")
    simulate = json.loads(manifest.read_text())["jobs"][stats]["inputs"][0]["job"]
    loop = {"name": "loop", "job": stats, "output": "stats.json", "run": "simulation"}
    edit_json(manifest, lambda m: m["jobs"][simulate]["inputs"].append(loop))
    assert problems_of(factory_lab.root, check_integrity=False) in (
        (f"jobs: input cycle {simulate} -> {stats} -> {simulate}",),
        (f"jobs: input cycle {stats} -> {simulate} -> {stats}",),
    )


def test_malformed_job_id(tmp_path):
    lab = write_lab(tmp_path / "lab", [RunSpec("r", (StageSpec("s"),))])
    (job_id,) = lab.run_jobs["r"]
    bad = "E" * 32 + "-s"
    edit_json(lab.manifest_path("r"), lambda m: m["jobs"].update({bad: m["jobs"].pop(job_id)}))
    problems = problems_of(lab.root, check_integrity=False)
    rel = lab.manifest_path("r").relative_to(lab.root)
    assert problems == (
        f"{rel}: jobs.{bad}: malformed job id (want <32 nix-base32 characters>-<stage>)",
    )


def test_job_id_stage_mismatch_and_count(tmp_path):
    lab = write_lab(tmp_path / "lab", [RunSpec("r", (StageSpec("s"),))])
    (job_id,) = lab.run_jobs["r"]
    other = job_id.replace("-s", "-t")
    edit_json(lab.manifest_path("r"), lambda m: m["jobs"].update({other: m["jobs"][job_id]}))
    problems = problems_of(lab.root, check_integrity=False)
    rel = lab.manifest_path("r").relative_to(lab.root)
    assert problems == (
        f"{LAB_METADATA}: job_count: 1, but the runs hold 2 jobs",
        f"{REV}: runs.r.job_count: 1, but {rel} holds 2 jobs",
        f"{rel}: jobs.{other}: job id names stage 't' but stage is 's'",
    )


def test_validate_lab_raises_one_error_listing_all(factory_lab):
    for job_id in factory_lab.run_jobs["simulation"][:3]:
        (factory_lab.root / f"jobs/{job_id}/parameters.json").write_text("{}")
    with pytest.raises(LabError) as info:
        validate_lab(open_lab(factory_lab.root), use_cache=False)
    error = info.value
    assert error.exit_code == 2
    assert error.message.endswith("was altered (sha256 differs) (and 2 more problems)")
    assert "\n" not in error.message
    assert len(error.details.splitlines()) == 3


def test_format_version_is_checked_on_load(factory_lab):
    edit_json(factory_lab.manifest_path("report"), lambda m: m.update(format="repx-run/7"))
    with pytest.raises(LabError, match=r"format: unsupported format 'repx-run/7'"):
        open_lab(factory_lab.root)


# -- the verdict cache --------------------------------------------------------------------


@pytest.fixture
def store_lab(tmp_path, monkeypatch):
    """A factory lab inside a fake Nix store (so its verdict may be cached)."""
    store = tmp_path / "store"
    monkeypatch.setenv("NIX_STORE_DIR", str(store))
    return write_lab(store / ("0" * 32 + "-repx-lab-test"))


def test_successful_verdict_is_cached_for_store_paths(store_lab, isolated_home):
    first = validate_lab(open_lab(store_lab.root))
    entry = isolated_home / ".cache/repx/validated" / f"{store_lab.root.name}.json"
    assert json.loads(entry.read_text())["size_bytes"] == first.size_bytes
    # store paths are immutable: a second validation trusts the cache entirely
    job_id = store_lab.job_ids[0]
    (store_lab.root / f"jobs/{job_id}/parameters.json").write_text("tampered")
    second = validate_lab(open_lab(store_lab.root))
    assert second.cached
    assert second.size_bytes == first.size_bytes
    with pytest.raises(LabError, match="altered"):
        validate_lab(open_lab(store_lab.root), use_cache=False)


def test_cache_without_integrity_does_not_satisfy_integrity(store_lab):
    validate_lab(open_lab(store_lab.root), check_integrity=False)
    result = validate_lab(open_lab(store_lab.root), check_integrity=True)
    assert not result.cached
    assert result.integrity_checked


def test_just_built_store_lab_counts_as_the_integrity_scan(store_lab, isolated_home):
    """repx build does not read back what Nix just built; the counts it shows are the same."""
    full = validate_lab(open_lab(store_lab.root), use_cache=False)
    built = validate_lab(open_lab(store_lab.root), use_cache=False, just_built=True)
    assert built.integrity_checked and not built.cached
    assert (built.file_count, built.size_bytes) == (full.file_count, full.size_bytes)
    # with the size the lab builder records, no scan is needed and the sum is the same
    listed = full.size_bytes - (store_lab.root / LAB_METADATA).stat().st_size
    edit_json(store_lab.root / LAB_METADATA, lambda meta: meta.update(files_bytes=listed))
    refresh_integrity(store_lab.root)
    recorded = validate_lab(open_lab(store_lab.root), use_cache=False, just_built=True)
    assert recorded.size_bytes == validate_lab(open_lab(store_lab.root), use_cache=False).size_bytes


def test_just_built_still_runs_the_structural_checks(store_lab, isolated_home):
    job_id = store_lab.run_jobs["simulation"][0]
    (store_lab.root / f"jobs/{job_id}/bin/simulate").unlink()
    with pytest.raises(LabError, match="does not exist"):
        validate_lab(open_lab(store_lab.root), just_built=True)


def test_labs_outside_the_store_are_not_cached(factory_lab, isolated_home):
    validate_lab(open_lab(factory_lab.root))
    assert not (isolated_home / ".cache/repx/validated").exists()


def test_failed_verdict_is_not_cached(store_lab, isolated_home):
    (store_lab.root / "readme/README.md").write_text("changed")
    with pytest.raises(LabError):
        validate_lab(open_lab(store_lab.root))
    assert not (isolated_home / ".cache/repx/validated").exists()


# -- integrity ------------------------------------------------------------------------------


def test_hashing_any_file_name(tmp_path):
    names = ["plain", "with space", "back\\slash", "new\nline", "ünïcode", "big"]
    for i, name in enumerate(names):
        (tmp_path / name).write_text(f"content {i}" * (300_000 if name == "big" else 1))
    expected = {name: integrity.sha256_file(tmp_path / name) for name in names}
    assert integrity.hash_files(tmp_path, [*names, "absent"]) == expected


def test_scan_files_skips_symlinks(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("abc")
    (tmp_path / "link").symlink_to(tmp_path / "d" / "f")
    (tmp_path / "dirlink").symlink_to(tmp_path / "d")
    assert integrity.scan_files(tmp_path) == {"d/f": 3}


def test_integrity_of_10k_job_lab(factory_lab_10k):
    lab = open_lab(factory_lab_10k.root)
    report = integrity.check_integrity(lab.root, lab.meta, exclude=(LAB_METADATA,))
    assert report.ok
    assert report.file_count == 20_014
