"""`repx gc` with real Nix: a pin is a GC root; `--nix` deletes old labs nothing references."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from runlab import build_lab, repx, session_dir

pytestmark = pytest.mark.slow


def _change_seed(flake: Path) -> None:
    run = flake / "nix" / "runs" / "simulation.nix"
    run.write_text(run.read_text().replace("seed = [ 1 2 3 ];", "seed = [ 7 8 9 ];"))


def _roots() -> str:
    return subprocess.run(
        ["nix-store", "--gc", "--print-roots"], capture_output=True, text=True, check=True
    ).stdout


def test_pin_is_a_gc_root_and_nix_deletes_the_unreferenced_old_lab(tmp_path):
    current = build_lab("sweep")
    old = build_lab("sweep", edit=_change_seed, variant="gc-old")
    base = tmp_path / "base"
    assert repx("run", "--lab", old, "--base", base).returncode == 0
    assert repx("run", "--lab", current, "--base", base).returncode == 0

    pinned = repx("gc", "pin", current, "--name", "paper", "--base", base)
    assert pinned.returncode == 0, pinned.stderr
    assert f"{base}/pins/paper.lab -> {current}" in _roots()

    # The old lab is still referenced by its build's result link: Nix keeps it.
    argv = ["gc", "-y", "--nix", "--keep-recent", "0", "--lab", current, "--base", base]
    kept = repx(*argv, "--json")
    assert kept.returncode == 0, kept.stderr
    report = json.loads(kept.stdout)
    assert report["nix_alive"] == [str(old)] and old.exists()
    assert {k["why"] for k in report["kept"]} == {"pinned"}  # current = the pinned lab

    (session_dir() / "flakes" / "sweep-gc-old" / "result").unlink()  # build_lab's out-link
    deleted = json.loads(repx(*argv, "--json").stdout)
    assert deleted["nix_deleted"] == [str(old)] and not old.exists()
    assert deleted["forgotten_labs"]  # its record goes with it
