"""repx verify: every file hashed again and compared with the lab's list."""

from __future__ import annotations

import pytest

from labfactory import LAB_METADATA
from repx.errors import LabError
from repx.inspect.verify import verify_lab


def test_an_intact_lab_is_ok(factory_lab):
    report = verify_lab(factory_lab.root)
    assert report.ok
    assert (report.missing, report.extra, report.altered, report.problems) == ([], [], [], [])
    assert report.lab_id == factory_lab.lab_id
    assert report.files_listed == report.files_found - 1  # lab-metadata.json is not listed
    assert report.size_bytes > 0


def test_missing_extra_and_altered_files(factory_lab):
    job = factory_lab.job_ids[0]
    params = f"jobs/{job}/parameters.json"
    readme = "readme/README.md"
    (factory_lab.root / params).write_text('{"seed": 42}')
    (factory_lab.root / readme).unlink()
    (factory_lab.root / "jobs" / job / "stray.txt").write_text("x")
    report = verify_lab(factory_lab.root)
    assert not report.ok
    assert report.altered == [params]
    assert report.missing == [readme]
    assert report.extra == [f"jobs/{job}/stray.txt"]
    assert report.problems == [
        "lab/lab-metadata.json: readme: file 'readme/README.md' does not exist"
    ]


def test_a_corrupted_manifest_is_reported_not_raised(factory_lab):
    manifest = factory_lab.manifest_path("simulation")
    manifest.write_text(manifest.read_text()[:100])
    report = verify_lab(factory_lab.root)
    assert not report.ok
    rel = manifest.relative_to(factory_lab.root).as_posix()
    assert report.altered == [rel]
    assert len(report.problems) == 1
    assert report.problems[0].startswith(f"{rel}: invalid JSON")


def test_unreadable_metadata_is_a_lab_error(factory_lab, tmp_path):
    (factory_lab.root / LAB_METADATA).write_text("{")
    with pytest.raises(LabError, match=r"lab/lab-metadata.json: invalid JSON"):
        verify_lab(factory_lab.root)
    with pytest.raises(LabError, match="no such lab"):
        verify_lab(tmp_path / "nothing")
