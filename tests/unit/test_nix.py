"""nix.py against real nix and a tiny busybox-built flake (tests/assets/tiny-flake)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from repx import nix
from repx.errors import NixError
from repx.nix_log import BuildStatus

ASSET = Path(__file__).resolve().parents[1] / "assets" / "tiny-flake"
BUSYBOX = Path("/bin/busybox")

pytestmark = pytest.mark.skipif(
    shutil.which("nix") is None or not BUSYBOX.is_file(), reason="needs nix and /bin/busybox"
)


@pytest.fixture
def tiny_flake(tmp_path: Path) -> Path:
    flake = tmp_path / "tiny"
    shutil.copytree(ASSET, flake)
    (flake / "bb").mkdir()
    shutil.copy2(BUSYBOX, flake / "bb" / "busybox")
    return flake


def test_build_returns_store_path_and_links(tiny_flake, tmp_path):
    statuses: list[BuildStatus] = []
    link = tmp_path / "result"
    out = nix.build(f"path:{tiny_flake}", link, on_status=statuses.append)
    assert out.parent == Path("/nix/store")
    assert out.name.endswith("-tiny-ok")
    assert link.resolve() == out
    assert (out / "greeting").read_text() == "hi\n"


def test_build_without_link(tiny_flake, tmp_path):
    out = nix.build(f"path:{tiny_flake}", None, cwd=tmp_path)
    assert out.name.endswith("-tiny-ok")
    assert not (tmp_path / "result").exists()


def test_builder_failure_reports_repx_lines(tiny_flake, tmp_path):
    lines: list[str] = []
    with pytest.raises(NixError) as info:
        nix.build(
            f"path:{tiny_flake}#fails", tmp_path / "r", on_log_line=lines.append, verbose=True
        )
    error = info.value
    assert error.message == f"nix build of 'path:{tiny_flake}#fails' failed"
    details = error.details.splitlines()
    assert details[0] == "repx: stage 'x' (stages/x.nix:1:2): ShellCheck SC2086 (info): quote this"
    assert any(
        "builder for" in x and "tiny-fails.drv' failed with exit code 3" in x for x in details
    )
    assert "tiny-fails> checking stage x" in lines  # verbose streams the build log
    assert not (tmp_path / "r").exists()


def test_builder_failure_without_repx_lines_shows_log_tail(tiny_flake):
    with pytest.raises(NixError) as info:
        nix.build(f"path:{tiny_flake}#failsPlain", None)
    details = info.value.details.splitlines()
    assert "last 10 log lines of tiny-fails-plain:" in details
    assert details[-1] == "> log line 12"
    assert "> log line 2" not in details


def test_evaluation_error_is_the_repx_line(tiny_flake):
    with pytest.raises(NixError) as info:
        nix.build(f"path:{tiny_flake}#evalError", None)
    assert info.value.details == "repx: stages/a.nix (stage a): unknown attribute 'foo'"


def test_eval_json(tiny_flake):
    assert nix.eval_json(f"path:{tiny_flake}#value") == {"a": 1, "b": [True, None, "x"]}
    assert nix.eval_json(expr="1 + 2") == 3
    assert nix.eval_json(f"path:{tiny_flake}#value", apply="v: v.a") == 1


def test_eval_error_is_trimmed(tiny_flake):
    with pytest.raises(NixError) as info:
        nix.eval_json(f"path:{tiny_flake}#packages.x86_64-linux.evalError")
    assert info.value.details.splitlines()[0] == (
        "repx: stages/a.nix (stage a): unknown attribute 'foo'"
    )


def test_flake_new_copies_template(tiny_flake, tmp_path):
    nix.flake_new(f"path:{tiny_flake}#default", tmp_path / "new")
    assert "my-experiment" in (tmp_path / "new" / "flake.nix").read_text()


def test_flake_new_unknown_template(tiny_flake, tmp_path):
    with pytest.raises(NixError, match="nix flake new failed") as info:
        nix.flake_new(f"path:{tiny_flake}#nope", tmp_path / "new")
    assert "does not provide attribute 'templates.nope'" in info.value.details
