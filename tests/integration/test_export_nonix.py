"""``repx export`` of a real lab, run from the archive on a host without Nix.

The host is simulated as in test_run_nonix.py (``unshare -m``, a tmpfs over ``/nix``, the
nix binary hidden); the outputs must be byte-identical to a native run of the same lab.
"""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest
from runlab import build_lab, lab_jobs, outputs_digest, repx, repx_argv
from test_run_nonix import _require_unshare, _without_nix

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("suffix", [".tar", ".tar.zst"])
def test_run_from_the_archive_without_nix_byte_identical_to_native(tmp_path, suffix):
    _require_unshare()
    if suffix == ".tar.zst" and shutil.which("zstd") is None:
        pytest.skip("zstd is not installed")
    lab = build_lab("sweep")
    out = tmp_path / f"lab{suffix}"
    exported = repx("export", "--lab", lab, "-o", out)
    assert exported.returncode == 0, exported.stderr
    assert str(out) in exported.stderr

    native = repx("run", "--lab", lab, "--base", tmp_path / "native", "--runtime", "native")
    assert native.returncode == 0, native.stderr

    verified = _without_nix(repx_argv("verify", "--lab", out))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    listed = _without_nix(repx_argv("list", "jobs", "--lab", out))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == repx("list", "jobs", "--lab", lab).stdout

    result = _without_nix(repx_argv("run", "--lab", out, "--base", tmp_path / "nonix"))
    assert result.returncode == 0, result.stderr
    assert "runtime bwrap" in result.stderr
    jobs = sorted(lab_jobs(lab))
    assert outputs_digest(tmp_path / "nonix", jobs) == outputs_digest(tmp_path / "native", jobs)


def test_exporting_twice_gives_the_same_bytes(tmp_path):
    lab = build_lab("sweep")
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    for out in (first, second):
        assert repx("export", "--lab", lab, "-o", out).returncode == 0
    assert first.read_bytes() == second.read_bytes()


def test_archive_holds_the_closure_and_a_tampered_copy_is_caught(tmp_path):
    """The lab links to store paths; its archive holds them as real trees (NAR-checked)."""
    lab = build_lab("sweep")
    assert (lab / "store").is_dir() and all(p.is_symlink() for p in (lab / "store").iterdir())
    out = tmp_path / "lab.tar"
    assert repx("export", "--lab", lab, "-o", out).returncode == 0
    closure = json.loads((lab / "lab" / "closure.json").read_bytes())
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for entry in closure["entries"]:
            member = members[entry["path"]]
            assert member.isdir() or member.isfile(), entry["path"]
        files = sum(m.size for m in members.values() if m.isfile())
        assert files >= sum(e["nar_size"] for e in closure["entries"]) // 2
        unpacked = tmp_path / "unpacked"
        tar.extractall(unpacked, filter="fully_trusted")  # our own archive: links kept
    assert repx("verify", "--lab", unpacked).returncode == 0
    bash = next(p for p in (unpacked / "store").iterdir() if p.name.endswith("-bash-5.2.15"))
    target = next(p for p in sorted(bash.rglob("*")) if p.is_file() and not p.is_symlink())
    target.chmod(0o644)
    target.write_bytes(target.read_bytes() + b"x")  # a real file of the copy, not the store
    verify = repx("verify", "--lab", unpacked)
    assert verify.returncode == 1
    assert f"content differs from /nix/store/{bash.name} (NAR hash" in verify.stdout
