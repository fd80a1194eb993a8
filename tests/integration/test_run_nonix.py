"""A lab runs on a host without Nix: no /nix, no nix binary; bwrap binds the lab's store/.

The host is simulated as NIX-OFFLINE.md describes: a private mount namespace
(``unshare -m``) with a tmpfs over ``/nix`` and ``/dev/null`` over the nix binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from runlab import build_lab, copy_with_closure, lab_jobs, outputs_digest, repx, repx_argv

pytestmark = pytest.mark.slow

_NO_NIX = """
set -e
mount -t tmpfs none /nix
if nix_bin="$(command -v nix)"; then mount --bind /dev/null "$nix_bin"; fi
test ! -e /nix/store
if command -v nix >/dev/null; then echo "nix still visible" >&2; exit 97; fi
exec "$@"
"""


def _require_unshare() -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare to hide /nix")


def _without_nix(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", _NO_NIX, "sh", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_lab_runs_without_nix_byte_identical_to_native(tmp_path):
    _require_unshare()
    lab = build_lab("sweep")
    # the lab out of the store, with the store paths it links to (as repx export lays it out)
    copy = copy_with_closure(lab, tmp_path / "lab")

    native = repx("run", "--lab", lab, "--base", tmp_path / "native", "--runtime", "native")
    assert native.returncode == 0, native.stderr

    result = _without_nix(repx_argv("run", "--lab", copy, "--base", tmp_path / "nonix"))
    assert result.returncode == 0, result.stderr
    assert "runtime bwrap" in result.stderr

    jobs = sorted(lab_jobs(lab))
    assert outputs_digest(tmp_path / "nonix", jobs) == outputs_digest(tmp_path / "native", jobs)


def test_native_is_refused_without_nix(tmp_path):
    _require_unshare()
    lab = build_lab("sweep")
    copy = copy_with_closure(lab, tmp_path / "lab")
    argv = repx_argv("run", "--lab", copy, "--base", tmp_path / "base", "--runtime", "native")
    result = _without_nix(argv)
    assert result.returncode == 2
    assert "--runtime native needs the lab's store paths" in result.stderr
    assert "--runtime bwrap" in result.stderr


@pytest.mark.parametrize(
    "copy_argv",
    [["cp", "-rL"], ["rsync", "-rL"]],
    ids=["cp-rL", "rsync-rL"],
)
def test_dereferenced_copy_runs_without_nix(tmp_path, copy_argv):
    """Copies without symlinks (cp -rL, rsync -rL, a filesystem without symlinks) verify and run.

    Every symlink of the lab becomes a copy of what it pointed to (the busybox applets make
    this ~1.2 GiB): accepted because the content matches the link's target in the list.
    """
    _require_unshare()
    if shutil.which(copy_argv[0]) is None:
        pytest.skip(f"{copy_argv[0]} is not installed")
    lab = build_lab("sweep")
    copy = tmp_path / "lab"
    try:
        subprocess.run([*copy_argv, f"{lab}/", f"{copy}/"], check=True, timeout=300)
        assert not any(path.is_symlink() for path in copy.rglob("*"))

        native = repx("run", "--lab", lab, "--base", tmp_path / "native", "--runtime", "native")
        assert native.returncode == 0, native.stderr
        result = _without_nix(repx_argv("verify", "--lab", copy))
        assert result.returncode == 0, result.stdout + result.stderr
        result = _without_nix(repx_argv("run", "--lab", copy, "--base", tmp_path / "nonix"))
        assert result.returncode == 0, result.stderr
        assert "runtime bwrap" in result.stderr

        jobs = sorted(lab_jobs(lab))
        assert outputs_digest(tmp_path / "nonix", jobs) == outputs_digest(tmp_path / "native", jobs)
    finally:
        shutil.rmtree(copy, ignore_errors=True)  # do not keep 1.2 GiB in pytest's tmp dirs
