"""Copies of the store paths a lab links to (lab/closure.json) checked by their NAR hash.

The expected hashes come from nix_record.nar_sha256, which test_integrity_list compares
with ``nix hash path``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import labfactory
from repx.lab import closure, integrity, nix_record
from repx.lab.loader import read_model
from repx.lab.models import LabMetadata


def _store_path(root: Path) -> Path:
    """A small tree like a store path: files, an executable, inner links (file and dir)."""
    path = root / "abc-pkg"
    (path / "bin").mkdir(parents=True)
    (path / "share" / "doc").mkdir(parents=True)
    (path / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (path / "bin" / "tool").chmod(0o755)
    (path / "bin" / "alias").symlink_to("tool")
    (path / "share" / "doc" / "README").write_text("readme\n")
    (path / "doc").symlink_to("share/doc")
    return path


def _entry(path: Path) -> closure.ClosureEntry:
    links = {str(p.relative_to(path)): str(p.readlink()) for p in path.rglob("*") if p.is_symlink()}
    return closure.ClosureEntry(
        path=f"store/{path.name}",
        store_path=f"/nix/store/{path.name}",
        nar_hash=f"sha256:{nix_record.nar_sha256(path)}",
        nar_size=0,
        symlinks=links,
    )


@pytest.fixture
def original(tmp_path):
    return _store_path(tmp_path / "orig")


def _lab_with(tmp_path: Path, original: Path, *, dereference: bool) -> Path:
    lab = tmp_path / "lab"
    (lab / "store").mkdir(parents=True)
    if dereference:
        subprocess.run(["cp", "-rL", original, lab / "store" / original.name], check=True)
    else:
        shutil.copytree(original, lab / "store" / original.name, symlinks=True)
    return lab


@pytest.mark.parametrize("dereference", [False, True], ids=["links-kept", "cp-rL"])
def test_an_intact_copy_passes(tmp_path, original, dereference):
    lab = _lab_with(tmp_path, original, dereference=dereference)
    assert (lab / "store" / original.name / "doc").is_symlink() is not dereference
    assert closure.check_copy(lab, f"store/{original.name}", _entry(original)) is None


@pytest.mark.parametrize("dereference", [False, True], ids=["links-kept", "cp-rL"])
def test_a_changed_file_is_caught(tmp_path, original, dereference):
    lab = _lab_with(tmp_path, original, dereference=dereference)
    (lab / "store" / original.name / "share" / "doc" / "README").write_text("evil\n")
    reason = closure.check_copy(lab, f"store/{original.name}", _entry(original))
    assert reason == (
        f"content differs from /nix/store/{original.name} (NAR hash {_entry(original).nar_hash})"
    )


def test_a_dereferenced_link_with_other_content_is_caught(tmp_path, original):
    """cp -rL made bin/alias a file: it must still be what bin/tool is."""
    lab = _lab_with(tmp_path, original, dereference=True)
    alias = lab / "store" / original.name / "bin" / "alias"
    alias.write_text("#!/bin/sh\necho evil\n")
    reason = closure.check_copy(lab, f"store/{original.name}", _entry(original))
    assert reason == (
        f"'store/{original.name}/bin/alias' replaces a link of /nix/store/{original.name} "
        "by other content"
    )


def test_an_added_file_and_a_changed_link_are_caught(tmp_path, original):
    lab = _lab_with(tmp_path, original, dereference=False)
    copy = lab / "store" / original.name
    (copy / "bin" / "extra").write_text("x")
    assert closure.check_copy(lab, f"store/{original.name}", _entry(original)) is not None
    (copy / "bin" / "extra").unlink()
    (copy / "bin" / "alias").unlink()
    (copy / "bin" / "alias").symlink_to("/bin/sh")
    assert closure.check_copy(lab, f"store/{original.name}", _entry(original)) is not None


def test_a_bad_closure_file_is_one_line(tmp_path):
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "closure.json").write_text(
        '{"format": "repx-closure/1", "entries": [{"path": "store/a/b", "store_path": "/x"}]}'
    )
    with pytest.raises(closure.LabError) as caught:
        closure.load(tmp_path, "lab/closure.json")
    assert caught.value.message.startswith("lab/closure.json: entries.0.")
    assert "\n" not in caught.value.message


def _lab_with_closure(tmp_path: Path, original: Path, *, link_store: bool) -> Path:
    """A factory lab whose store/<name> is ``original`` (linked or copied), recorded in
    lab/closure.json, plus a lab-own link into it (as an image's /bin/sh)."""
    lab = labfactory.write_lab(tmp_path / "lab").root
    store_dir = lab / "store" / original.name
    if link_store:  # a copy that kept the link, on a host without that store path
        store_dir.symlink_to(f"/nix/store/{original.name}")
    else:
        shutil.copytree(original, store_dir, symlinks=True)
    (lab / "images" / "i" / "rootfs" / "bin").mkdir(parents=True)
    (lab / "images" / "i" / "rootfs" / "bin" / "tool").symlink_to(
        f"/nix/store/{original.name}/bin/tool"
    )
    entry = _entry(original)
    (lab / "lab" / "closure.json").write_text(
        json.dumps({"format": "repx-closure/1", "entries": [entry.model_dump()], "runs": {}})
    )
    labfactory.edit_json(
        lab / labfactory.LAB_METADATA,
        lambda m: m.update(closure="lab/closure.json", store_paths=[f"/nix/store/{original.name}"]),
    )
    labfactory.refresh_integrity(lab)
    return lab


def _problems(lab: Path) -> list[str]:
    meta = read_model(lab, labfactory.LAB_METADATA, LabMetadata)
    report = integrity.check_integrity(lab, meta, exclude=(labfactory.LAB_METADATA,))
    return [
        f"{p}: {report.reasons.get(p, 'missing')}"
        for p in (*report.altered, *report.extra, *report.missing)
    ]


def test_a_copied_store_path_in_a_lab_is_checked_by_its_nar_hash(tmp_path, original):
    lab = _lab_with_closure(tmp_path, original, link_store=False)
    assert _problems(lab) == []
    (lab / "store" / original.name / "bin" / "tool").write_text("evil\n")
    (lab / "store" / original.name / "bin" / "tool").chmod(0o755)
    [problem] = _problems(lab)
    assert problem.startswith(f"store/{original.name}: content differs from /nix/store/")


def test_a_dereferenced_lab_link_into_the_closure_must_match(tmp_path, original):
    lab = _lab_with_closure(tmp_path, original, link_store=False)
    tool = lab / "images" / "i" / "rootfs" / "bin" / "tool"
    tool.unlink()
    shutil.copy2(original / "bin" / "tool", tool)  # what cp -rL makes of the link
    assert _problems(lab) == []
    tool.write_text("#!/bin/sh\necho evil\n")
    [problem] = _problems(lab)
    assert problem.startswith("images/i/rootfs/bin/tool: content differs from 'store/")


def test_a_link_to_a_store_path_this_host_lacks_is_reported(tmp_path, original):
    lab = _lab_with_closure(tmp_path, original, link_store=True)
    assert _problems(lab) == [
        f"store/{original.name}: a link to /nix/store/{original.name}, which this host lacks:"
        " copy the lab with its closure (repx export, cp -rL or rsync -rL)"
    ]
