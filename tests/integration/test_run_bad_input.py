"""Bad input: an unusable base directory, an altered lab, a missing sandbox, bad config."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from runlab import assert_store_consistent, build_lab, repx, repx_argv

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))

from labfactory import RunSpec, StageSpec, write_lab  # noqa: E402


def _in_mount_namespace(script: str, *argv: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare")
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture
def small_lab(tmp_path):
    return write_lab(tmp_path / "lab").root


def test_read_only_base_is_refused_and_nothing_written(small_lab, tmp_path):
    target = tmp_path / "ro"
    target.mkdir()
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    argv = repx_argv("run", "--lab", small_lab, "--base", target / "base", "--runtime", "native")
    result = _in_mount_namespace(script, str(target), *argv)
    assert result.returncode == 2, result.stderr
    assert "is not usable" in result.stderr and "Read-only file system" in result.stderr
    assert list(target.iterdir()) == []


def test_full_base_is_refused(small_lab, tmp_path):
    target = tmp_path / "full"
    target.mkdir()
    script = 'mount -t tmpfs -o size=1m none "$1" && shift && exec "$@"'
    argv = repx_argv("run", "--lab", small_lab, "--base", target / "base", "--runtime", "native")
    result = _in_mount_namespace(script, str(target), *argv)
    assert result.returncode == 2, result.stderr
    assert "is full" in result.stderr


def test_directory_that_is_not_a_store_is_refused(small_lab, tmp_path):
    base = tmp_path / "home"
    base.mkdir()
    (base / "thesis.tex").write_text("precious")
    result = repx("run", "--lab", small_lab, "--base", base, "--runtime", "native")
    assert result.returncode == 2
    assert "not a repx output store" in result.stderr
    assert sorted(p.name for p in base.iterdir()) == ["thesis.tex"]


def test_altered_lab_is_refused(tmp_path):
    lab = write_lab(tmp_path / "lab").root
    readme = lab / "readme" / "README.md"
    readme.write_text(readme.read_text() + "tampered\n")
    result = repx("run", "--lab", lab, "--base", tmp_path / "base", "--runtime", "native")
    assert result.returncode == 2
    assert "readme/README.md' was altered" in result.stderr
    assert not (tmp_path / "base").exists()


@pytest.mark.slow
def test_altered_nix_lab_copy_is_refused(tmp_path):
    lab = build_lab("sweep")
    copy = tmp_path / "lab"
    shutil.copytree(lab, copy, symlinks=True)
    script = next((copy / "jobs").iterdir()) / "parameters.json"
    script.chmod(0o644)
    script.write_text('{"seed": 666}')
    result = repx("run", "--lab", copy, "--base", tmp_path / "base")
    assert result.returncode == 2
    assert "was altered" in result.stderr


def test_missing_bwrap_is_an_error_unless_native_is_asked(tmp_path):
    lab = write_lab(tmp_path / "lab", host_tools=False).root
    env = {"PATH": "/var/empty"}  # neither the host nor the lab has bwrap
    result = repx("run", "--lab", lab, "--base", tmp_path / "base", env=env)
    assert result.returncode == 2
    assert "bubblewrap (bwrap) is not installed" in result.stderr
    assert "--runtime native" in result.stderr


def test_unknown_target_and_bad_config(small_lab, tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text('[targets.here]\nruntime = "lxc"\n')
    env = {"REPX_CONFIG_DIR": str(config)}
    bad = repx("run", "--lab", small_lab, env=env)
    assert bad.returncode == 2 and "targets.here.runtime" in bad.stderr
    (config / "config.toml").write_text(
        f'default_target = "here"\n[targets.here]\nbase = "{tmp_path / "tb"}"\n'
        'runtime = "native"\nconcurrency = 1\n'
    )
    unknown = repx("run", "--lab", small_lab, "--target", "there", env=env)
    assert unknown.returncode == 2 and "unknown target 'there' (targets: here)" in unknown.stderr
    ok = repx("run", "--lab", small_lab, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "runtime native, -j 1" in ok.stderr
    assert (tmp_path / "tb" / "outputs").is_dir()


def test_disk_filling_up_mid_run_leaves_nothing_half_written(tmp_path):
    runs = (
        RunSpec(
            "big",
            parameters={"seed": list(range(6))},
            stages=(
                StageSpec(
                    "fill",
                    params=("seed",),
                    script="printf '%*s' 1500000 x > \"$out/result.json\"",
                ),
            ),
        ),
    )
    lab = write_lab(tmp_path / "lab", runs).root
    small = tmp_path / "small"
    small.mkdir()
    run = repx_argv(
        "run",
        "--lab",
        lab,
        "--base",
        small / "base",
        "--runtime",
        "native",
        "-j",
        "1",
        "--continue-on-failure",
        "--json",
    )
    # The 6 MiB tmpfs exists only in the namespace: copy the store out before leaving it.
    script = (
        "small=$1 copy=$2 log=$3; shift 3\n"
        'mount -t tmpfs -o size=6m none "$small" || exit 99\n'
        '"$@" > "$log"; code=$?\n'
        'cp -a "$small/base" "$copy"; exit $code'
    )
    copy, log = tmp_path / "copy", tmp_path / "run.log"
    result = _in_mount_namespace(script, str(small), str(copy), str(log), *run)
    assert result.returncode == 1, result.stderr
    summary = json.loads(log.read_text().splitlines()[-1])
    assert summary["succeeded"] >= 1 and summary["failed"]
    for failed in summary["failed"]:
        why = f"{failed['reason']} {' '.join(failed['stderr_tail'])}"
        assert "No space left on device" in why
    assert_store_consistent(copy, lab)
