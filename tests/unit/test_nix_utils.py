"""RepX's parameter helpers (`repx-lib.utils`, nix/lib/sweep.nix) with real nix: each
helper's value, and the errors naming the helper and what is wrong. Only the helpers are
evaluated, so each case costs a few milliseconds."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("nix") is None, reason="nix is not installed")


def evaluate(expr: str) -> subprocess.CompletedProcess[str]:
    prelude = f"let utils = (import {REPO}/nix/lib).utils; in "
    return subprocess.run(
        ["nix-instantiate", "--eval", "--strict", "--json", "-E", prelude + expr],
        capture_output=True,
        text=True,
        check=False,
    )


def value(expr: str) -> object:
    proc = evaluate(expr)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def entries(expr: str) -> list[str]:
    """The values of a helper giving store paths, as the entry names they end in."""
    paths = value(expr)
    assert isinstance(paths, list)
    return [Path(str(p)).name.split("-", 1)[1] for p in paths]


def test_range_list_env_and_zip() -> None:
    assert value("utils.range 2 4") == [2, 3, 4]
    assert value('(utils.list [ "a" "b" ]).values') == ["a", "b"]
    assert value('utils.env { A = "1"; B = "x y"; }') == "export A=1 B=x y"
    assert value("utils.env { }") == ""
    zipped = value('utils.zip { a = utils.range 1 2; b = utils.list [ "x" "y" ]; }')
    assert zipped == {"_repx_zip": True, "groups": {"a": [1, 2], "b": ["x", "y"]}, "length": 2}


def test_zip_of_unequal_lists_names_each_list_and_its_length() -> None:
    proc = evaluate("utils.zip { a = [ 1 2 3 ]; b = [ 1 ]; }")
    assert proc.returncode != 0
    assert "utils.zip: the lists must have the same length, but 'a' has 3, 'b' has 1" in proc.stderr


def test_scan_files_and_dirs_give_one_store_path_per_entry(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in ("one", "two"):
        (src / d).mkdir(parents=True)
        (src / d / "f.txt").write_text(d)
    (src / "a.json").write_text("{}")
    (src / "b.txt").write_text("b")
    dirs = value(f"(utils.dirs {src}).values")
    assert isinstance(dirs, list)
    assert entries(f"(utils.dirs {src}).values") == ["one", "two"]
    assert all(str(p).startswith("/nix/store/") for p in dirs)
    assert entries(f"(utils.files {src}).values") == ["a.json", "b.txt"]
    scan = f'(utils.scan {{ src = {src}; match = ".*\\\\.json"; type = "file"; }}).values'
    assert entries(scan) == ["a.json"]
    # Editing one directory changes only its value (so only the jobs that use it rerun).
    (src / "two" / "f.txt").write_text("changed")
    after = value(f"(utils.dirs {src}).values")
    assert isinstance(after, list)
    assert after[0] == dirs[0] and after[1] != dirs[1]


def test_scan_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    proc = evaluate(f'utils.scan {{ src = {tmp_path}; match = ".*\\\\.json"; }}')
    assert proc.returncode != 0
    assert "utils.scan: no entry of" in proc.stderr
    assert "a parameter needs at least one value" in proc.stderr


def test_sanitize_copies_a_path_and_keeps_anything_else(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("x\n")
    copied = value(f"utils.sanitize {tmp_path}/data.csv")
    assert isinstance(copied, str) and copied.startswith("/nix/store/")
    assert copied.endswith("-data.csv")
    assert value('utils.sanitize "text"') == "text"
