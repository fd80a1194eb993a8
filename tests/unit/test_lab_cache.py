"""The per-lab cache of lab-metadata.json's header (repx.lab.cache): it agrees with a full
read, is never trusted when its key does not match, and an interrupted write is harmless."""

from __future__ import annotations

import json
import os

import pytest

from labfactory import edit_json, pipeline_runs, write_lab
from repx.errors import LabError
from repx.lab import cache, loader
from repx.lab.loader import LAB_METADATA, header_of, open_lab
from repx.lab.models import LabMetadata


@pytest.fixture
def settled(monkeypatch):
    """Cache files however recently they changed (a lab written an instant ago)."""
    monkeypatch.setattr(cache, "SETTLE_NS", 0)


@pytest.fixture
def lab(tmp_path):
    return write_lab(tmp_path / "lab", pipeline_runs(20))


@pytest.fixture
def full_reads(monkeypatch):
    """Count the reads of the whole of lab-metadata.json."""
    calls: list[str] = []
    real = loader.read_model

    def counting(root, rel, model):
        if model is LabMetadata:
            calls.append(rel)
        return real(root, rel, model)

    monkeypatch.setattr(loader, "read_model", counting)
    return calls


def entry_of(root):
    key = cache.key_of(root.resolve() / LAB_METADATA)
    assert key is not None
    return cache.entry_path(key)


def test_a_cached_open_agrees_with_a_full_read(lab, settled, full_reads):
    first = open_lab(lab.root)
    assert full_reads == [LAB_METADATA]
    assert entry_of(lab.root).is_file()
    second = open_lab(lab.root)
    assert full_reads == [LAB_METADATA]  # the header came from the cache
    assert isinstance(first.meta, LabMetadata)
    assert not isinstance(second.meta, LabMetadata)
    assert second.meta == header_of(first.meta)
    assert (second.revision, second.runs, second.jobs, second.job_runs) == (
        first.revision,
        first.runs,
        first.jobs,
        first.job_runs,
    )
    assert second.integrity_list() == first.integrity_list() == first.meta
    assert full_reads == [LAB_METADATA, LAB_METADATA]  # read when asked for, once
    second.integrity_list()
    assert len(full_reads) == 2


def test_a_recently_changed_file_is_not_cached(lab, full_reads):
    open_lab(lab.root)
    open_lab(lab.root)
    assert not entry_of(lab.root).exists()
    assert len(full_reads) == 2


def test_a_changed_file_is_read_again(lab, settled, full_reads):
    open_lab(lab.root)
    path = lab.root / LAB_METADATA
    data = path.read_bytes()
    changed = data.replace(b'"lab_version": "0.1.0"', b'"lab_version": "0.2.0"')
    assert changed != data and len(changed) == len(data)
    stat = path.stat()
    path.write_bytes(changed)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and mtime: ctime tells
    assert open_lab(lab.root).meta.lab_version == "0.2.0"
    assert len(full_reads) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda text: text[: len(text) // 2],  # torn
        lambda text: "not json",
        lambda text: json.dumps({**json.loads(text), "format": "repx-lab-cache/99"}),
        lambda text: json.dumps(
            {**json.loads(text), "key": {**json.loads(text)["key"], "size": 1}}
        ),
        lambda text: json.dumps(
            {
                **json.loads(text),
                "header": {**json.loads(text)["header"], "lab_id": "0" * 32},
            }
        ),
    ],
    ids=["torn", "garbage", "format", "key", "lab-id"],
)
def test_a_stale_or_corrupt_entry_is_a_miss_and_rewritten(lab, settled, full_reads, damage):
    open_lab(lab.root)
    entry = entry_of(lab.root)
    good = entry.read_text()
    entry.write_text(damage(good))
    reopened = open_lab(lab.root)
    assert len(full_reads) == 2
    assert isinstance(reopened.meta, LabMetadata)
    assert entry.read_text() == good  # rebuilt from the file
    open_lab(lab.root)
    assert len(full_reads) == 2


def test_an_interrupted_write_is_harmless(lab, settled, monkeypatch):
    entry = entry_of(lab.root)
    entry.parent.mkdir(parents=True)
    # a writer killed before its rename leaves its temporary file: never read
    (entry.parent / f".{entry.name}.12345.tmp").write_text('{"format": "repx-lab')

    def killed(self, target):
        raise OSError(5, "Input/output error")

    with monkeypatch.context() as patch:
        patch.setattr(type(entry), "replace", killed)
        assert open_lab(lab.root).meta.job_count == 41
    assert not entry.exists()
    assert sorted(p.name for p in entry.parent.iterdir()) == [f".{entry.name}.12345.tmp"]
    open_lab(lab.root)
    assert entry.is_file()
    assert open_lab(lab.root).meta == header_of(open_lab(lab.root).integrity_list())


def test_an_unwritable_cache_costs_only_the_full_read(lab, settled, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    assert open_lab(lab.root).meta.job_count == 41
    assert open_lab(lab.root).meta.job_count == 41


def test_a_lab_not_starting_with_its_id_loads_uncached(lab, settled, full_reads):
    """Labs written by other tools (or by hand) keep loading, read whole each time."""
    edit_json(lab.root / LAB_METADATA, lambda meta: None)  # re-indented: '{\n "lab_id"'
    assert cache.key_of(lab.root / LAB_METADATA) is None
    assert open_lab(lab.root).meta.job_count == 41
    assert open_lab(lab.root).meta.job_count == 41
    assert len(full_reads) == 2


def test_a_listing_changed_since_the_open_is_refused(lab, settled):
    open_lab(lab.root)
    cached = open_lab(lab.root)
    edit_json(lab.root / LAB_METADATA, lambda meta: meta.update(lab_version="9"))
    with pytest.raises(LabError, match="changed since the lab was opened"):
        cached.integrity_list()


def test_a_cached_open_still_refuses_a_listed_path_outside_the_lab(lab, settled):
    open_lab(lab.root)
    cached = open_lab(lab.root)
    path = lab.root / LAB_METADATA
    data = path.read_bytes()
    bad = data.replace(b'"path": "readme/README.md"', b'"path": "../../README.md"', 1)
    assert bad != data
    path.write_bytes(bad)
    with pytest.raises(LabError, match="is not a path inside the lab"):
        open_lab(lab.root)
    with pytest.raises(LabError):
        cached.integrity_list()
