"""bubblewrap argv: read-only root, private /dev /proc /tmp, binds, store replacement."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from repx import bwrap


def pairs(args, flag):
    return [tuple(args[i + 1 : i + 3]) for i, a in enumerate(args) if a == flag]


def test_default_sandbox():
    args = bwrap.sandbox_options(
        readonly=[Path("/tmp/lab"), Path("/home/me/lab")],
        writable=[Path("/tmp/work/out")],
        chdir=Path("/tmp/work/out"),
    )
    assert args[:3] == ["--ro-bind", "/", "/"]
    for flag in ("--unshare-all", "--die-with-parent"):
        assert flag in args
    assert args[args.index("--tmpfs") + 1] == "/tmp"
    # /tmp is replaced: paths under it are bound again; others are visible already
    assert pairs(args, "--ro-bind")[1:] == [("/tmp/lab", "/tmp/lab")]
    assert pairs(args, "--bind") == [("/tmp/work/out", "/tmp/work/out")]
    assert args.index("--tmpfs") < args.index("--bind")
    assert args[-2:] == ["--chdir", "/tmp/work/out"]


def test_store_replacement_binds_root_entries_but_nix():
    args = bwrap.sandbox_options(readonly=[Path("/nix/store/x-lab")], store=Path("/data/lab/store"))
    assert ("/", "/") not in pairs(args, "--ro-bind")
    assert ("/data/lab/store", "/nix/store") in pairs(args, "--ro-bind")
    bound = {dst for _, dst in pairs(args, "--ro-bind")} | {d for _, d in pairs(args, "--symlink")}
    assert "/usr" in bound
    assert "/nix" not in bound and "/proc" not in bound and "/tmp" not in bound
    assert ("/nix/store/x-lab", "/nix/store/x-lab") in pairs(args, "--ro-bind")
    for entry in os.scandir("/"):
        if entry.is_symlink():
            assert (os.readlink(entry.path), entry.path) in pairs(args, "--symlink")


def test_command_is_an_argv():
    argv = bwrap.command(Path("/usr/bin/bwrap"), ["--ro-bind", "/", "/"], ["/bin/echo", "a b"])
    assert argv == ["/usr/bin/bwrap", "--ro-bind", "/", "/", "--", "/bin/echo", "a b"]


def test_find_prefers_host_then_host_tools(tmp_path, monkeypatch):
    tools = tmp_path / "bin"
    tools.mkdir()
    fake = tools / "bwrap"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", "/var/empty")
    assert bwrap.find(tools) == fake
    assert bwrap.find(None) is None


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bwrap not installed")
def test_sandbox_is_read_only_and_offline(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    options = bwrap.sandbox_options(writable=[out], chdir=out)
    # /tmp is a private tmpfs: writing beside `out` lands there, not on the host
    script = (
        f"touch ok {tmp_path}/nope && ! touch /etc/repx-test 2>/dev/null"
        ' && test "$(grep -c : /proc/net/dev)" = 1 && echo fine'
    )
    result = subprocess.run(
        bwrap.command(Path(shutil.which("bwrap")), options, ["/bin/sh", "-c", script]),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.stdout.strip() == "fine", result.stderr
    assert (out / "ok").exists()
    assert not (tmp_path / "nope").exists()
    assert bwrap.probe(Path(shutil.which("bwrap")), options, ["/bin/true"], {}) is None
    bad = bwrap.probe(Path(shutil.which("bwrap")), options, ["/nonexistent"], {})
    assert bad is not None
