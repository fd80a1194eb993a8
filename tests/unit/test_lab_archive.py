"""Lab archives (``repx export``, ``--lab lab.tar[.zst]``) on hand-written labs (no Nix).

The archive is written and read by the real CLI; malicious archives are written with
Python's tarfile, as an attacker would.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

import labfactory
from repx.dirs import cache_dir
from repx.lab import archive

_NAME_X = "0" * 31 + "1-tool-1.0"
_NAME_Y = "0" * 31 + "2-wrapper-1.0"


def repx(*args: object, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "repx", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.fixture
def lab(tmp_path: Path) -> Path:
    """A factory lab whose closure has an absolute link into another carried store path."""
    root = tmp_path / "lab"
    labfactory.write_lab(root)
    tool = root / "store" / _NAME_X / "bin" / "tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho tool\n")
    tool.chmod(0o755)
    wrapper = root / "store" / _NAME_Y / "bin"
    wrapper.mkdir(parents=True)
    (wrapper / "tool").symlink_to(f"/nix/store/{_NAME_X}/bin/tool")
    (wrapper / "same").symlink_to("tool")
    labfactory.edit_json(
        root / "lab" / "lab-metadata.json",
        lambda m: m.update(store_paths=[f"/nix/store/{_NAME_X}", f"/nix/store/{_NAME_Y}"]),
    )
    labfactory.refresh_integrity(root)
    ok = repx("verify", "--lab", root)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    return root


def _tree(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            found[rel] = f"-> {os.readlink(path)}"
        elif path.is_dir():
            found[rel] = "dir"
        else:
            found[rel] = f"{path.read_bytes()!r} {os.access(path, os.X_OK)}"
    return found


@pytest.mark.parametrize("suffix", [".tar", ".tar.zst"])
def test_export_holds_the_lab_and_every_command_reads_it(lab, tmp_path, suffix):
    if suffix == ".tar.zst" and shutil.which("zstd") is None:
        pytest.skip("zstd is not installed")
    out = tmp_path / f"lab{suffix}"
    result = repx("export", "--lab", lab, "-o", out)
    assert result.returncode == 0, result.stderr
    lab_id = labfactory.lab_id_of(lab)
    assert result.stdout.strip() == str(out)
    assert f"wrote {out} (" in result.stderr and f"lab {lab_id}" in result.stderr

    unpacked = archive.unpacked(out)
    assert _tree(unpacked) == _tree(lab)  # links kept as links, the absolute one included
    assert os.readlink(unpacked / "store" / _NAME_Y / "bin" / "tool").startswith("/nix/store/")

    listed = repx("list", "jobs", "--lab", out)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == repx("list", "jobs", "--lab", lab).stdout
    verified = repx("verify", "--lab", out)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"lab {lab_id}:" in verified.stderr and ": ok" in verified.stderr


def test_export_is_reproducible_and_unpacks_once(lab, tmp_path):
    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    assert repx("export", "--lab", lab, "-o", first).returncode == 0
    assert repx("export", "--lab", lab, "-o", second).returncode == 0
    assert first.read_bytes() == second.read_bytes()
    umask = os.umask(0o022)
    os.umask(umask)
    assert first.stat().st_mode & 0o777 == 0o666 & ~umask  # a file to hand out, not 0600
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(m.name for m in members)
    assert {(m.uid, m.gid, m.mtime) for m in members} == {(0, 0, 1)}
    assert not any(m.islnk() for m in members)  # no hard links: each file once, whole

    unpacked = archive.unpacked(first)
    assert archive.unpacked(second) == unpacked  # same content, same cache entry
    assert unpacked.parent == cache_dir() / "labs"
    assert [p.name for p in unpacked.parent.iterdir()] == [unpacked.name]  # nothing left over


def test_links_out_of_the_lab_are_dereferenced(lab, tmp_path):
    """A lab whose store/ is a link to a shared directory: the archive holds the content."""
    shared = tmp_path / "shared-store"
    shutil.move(lab / "store", shared)
    (lab / "store").symlink_to(shared)
    out = tmp_path / "lab.tar"
    assert repx("export", "--lab", lab, "-o", out).returncode == 0, "export"
    unpacked = archive.unpacked(out)
    assert (unpacked / "store").is_dir() and not (unpacked / "store").is_symlink()
    assert (unpacked / "store" / _NAME_X / "bin" / "tool").read_text() == "#!/bin/sh\necho tool\n"


def test_a_tampered_member_is_refused_by_verify(lab, tmp_path):
    out = tmp_path / "lab.tar"
    assert repx("export", "--lab", lab, "-o", out).returncode == 0
    tampered = tmp_path / "tampered.tar"
    victim = f"store/{_NAME_X}/bin/tool"
    with tarfile.open(out) as src, tarfile.open(tampered, "w") as dst:
        for member in src.getmembers():
            data = src.extractfile(member) if member.isfile() else None
            if member.name == victim:
                body = b"#!/bin/sh\necho evil\n"
                member.size = len(body)
                data = io.BytesIO(body)
            dst.addfile(member, data)
    result = repx("verify", "--lab", tampered)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"altered\t{victim}\t(sha256 differs)" in result.stdout
    run = repx("run", "--lab", tampered, "--base", tmp_path / "base", "--runtime", "native")
    assert run.returncode != 0 and victim in run.stderr


def _member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


@pytest.mark.parametrize(
    ("members", "refused"),
    [
        ([_member("../x")], "'../x' refused"),
        ([_member("/etc/evil")], "'/etc/evil' refused"),
        ([_member("a", tarfile.SYMTYPE, "../../../etc"), _member("a/passwd")], "'a' refused"),
        ([_member("a", tarfile.SYMTYPE, "/etc")], "'a' refused"),
        ([_member("l", tarfile.SYMTYPE, "/nix/store/x"), _member("l/f")], "'l/f' refused"),
        ([_member("dev", tarfile.CHRTYPE)], "'dev' refused"),
    ],
    ids=["dotdot", "absolute", "symlink-out", "absolute-symlink", "through-store-link", "device"],
)
def test_a_malicious_archive_is_refused_in_one_line(tmp_path, members, refused):
    out = tmp_path / "evil.tar"
    with tarfile.open(out, "w") as tar:
        for member in members:
            tar.addfile(member, io.BytesIO(b"") if member.isfile() else None)
    result = repx("list", "jobs", "--lab", out)
    assert result.returncode == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {out}: member ")
    assert refused in lines[0]
    assert not (tmp_path / "x").exists() and not Path("/etc/evil").exists()
    labs = cache_dir() / "labs"
    assert not labs.exists() or list(labs.iterdir()) == []  # the partial copy is gone


def test_not_an_archive_and_no_zstd_are_one_line(lab, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar file" * 100)
    result = repx("verify", "--lab", junk)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {junk}: not a lab archive (")
    assert len(result.stderr.splitlines()) == 1

    if shutil.which("zstd") is not None:
        cut = tmp_path / "cut.tar.zst"
        assert repx("export", "--lab", lab, "-o", tmp_path / "whole.tar.zst").returncode == 0
        cut.write_bytes((tmp_path / "whole.tar.zst").read_bytes()[:200])
        truncated = repx("verify", "--lab", cut)
        assert truncated.returncode == 2
        assert truncated.stderr.startswith(f"error: {cut}: zstd failed: ")
        assert len(truncated.stderr.splitlines()) == 1

    bad_suffix = repx("export", "--lab", lab, "-o", tmp_path / "lab.zip")
    assert bad_suffix.returncode == 2
    assert "must end with .tar or .tar.zst" in bad_suffix.stderr

    empty_path = tmp_path / "empty-path"
    empty_path.mkdir()
    no_zstd = repx(
        "export", "--lab", lab, "-o", tmp_path / "lab.tar.zst", env={"PATH": str(empty_path)}
    )
    assert no_zstd.returncode == 2
    assert no_zstd.stderr == (
        "error: zstd is not installed: install it (Debian: apt-get install zstd) or use a .tar\n"
    )
    assert not (tmp_path / "lab.tar.zst").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".lab")] == []


def test_concurrent_unpacks_of_one_archive(lab, tmp_path):
    """Two processes open the archive at once: both see the whole lab, one copy stays."""
    out = tmp_path / "lab.tar"
    assert repx("export", "--lab", lab, "-o", out).returncode == 0
    argv = [sys.executable, "-m", "repx", "verify", "--lab", str(out)]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stdout + stderr
    assert [p.name for p in (cache_dir() / "labs").iterdir()] == [archive.unpacked(out).name]


def test_losing_the_unpack_race_uses_the_winners_copy(lab, tmp_path, monkeypatch):
    """The race made certain: another process renames its copy into place while this one
    is still extracting; this one's rename fails, and it uses the winner's copy."""
    out = tmp_path / "lab.tar"
    assert repx("export", "--lab", lab, "-o", out).returncode == 0
    real_extract = archive._extract

    def extract_while_another_wins(path: Path, dest: Path) -> None:
        other = repx("list", "jobs", "--lab", path)  # a whole unpack, renamed into place
        assert other.returncode == 0, other.stderr
        real_extract(path, dest)

    monkeypatch.setattr(archive, "_extract", extract_while_another_wins)
    unpacked = archive.unpacked(out)
    assert [p.name for p in unpacked.parent.iterdir()] == [unpacked.name]
    assert _tree(unpacked) == _tree(lab)


def test_copies_of_killed_unpacks_are_removed(lab, tmp_path):
    """An unpack killed half-way leaves its temporary copy; the next unpack removes it,
    unless its process lives or it was made on another host (a shared home)."""
    out = tmp_path / "lab.tar"
    assert repx("export", "--lab", lab, "-o", out).returncode == 0
    labs = cache_dir() / "labs"
    dead = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # never a process
    host = socket.gethostname()
    abandoned = labs / f".{host}.{dead}.x1"
    (abandoned / "jobs").mkdir(parents=True)
    abandoned_tar = labs / f".{host}.{dead}.x2.tar"
    abandoned_tar.write_bytes(b"half")
    living = labs / f".{host}.{os.getpid()}.x3"
    living.mkdir()
    other_host = labs / f".{host}-other.{dead}.x4"
    other_host.mkdir()

    unpacked = archive.unpacked(out)
    assert sorted(p.name for p in labs.iterdir()) == sorted(
        [unpacked.name, living.name, other_host.name]
    )
