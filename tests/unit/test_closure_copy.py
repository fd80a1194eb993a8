"""Copies of the store paths a lab links to (lab/closure.json) checked by their NAR hash.

The expected hashes come from nix_record.nar_sha256, which test_integrity_list compares
with ``nix hash path``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from repx.lab import closure, nix_record


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
