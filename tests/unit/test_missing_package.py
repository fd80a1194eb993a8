"""services/missing_package.py: which package set a missing name was looked up in, the
closest names, and the argv of ``nix build --show-trace`` (the real build is in
tests/integration/test_build_missing_package.py)."""

from __future__ import annotations

import pytest

from repx import nix, process
from repx.nix_log import MissingAttribute
from repx.services.missing_package import PackageSet, closest, guess_package_set


def at(source: str, name: str, file: str = "/nonexistent/stage.nix") -> MissingAttribute:
    return MissingAttribute(name, file, 1, _column(source, name), source)


def _column(source: str, name: str) -> int:
    """1-based column of the select expression that ends in ``.name``."""
    end = source.index("." + name)
    start = end
    while start > 0 and (source[start - 1].isalnum() or source[start - 1] in "_.'-"):
        start -= 1
    return start + 1


@pytest.mark.parametrize(
    ("source", "name", "expected"),
    [
        ("    pkgs.pythonn3", "pythonn3", ()),
        ('  "${pkgs.pythonn3}/bin/python"', "pythonn3", ()),
        ("    pkgs.python3Packages.numpyy", "numpyy", ("python3Packages",)),
        ("    (pkgs.python3.withPackages (ps: [ ps.numpyy ]))", "numpyy", ("python3", "pkgs")),
        ("    pkgs.pythonn3.withPackages", "pythonn3", ()),
    ],
)
def test_package_set_of_the_lookup(source, name, expected):
    assert guess_package_set(source, at(source, name)) == PackageSet(expected)


def test_inherit_and_with_name_the_set():
    source = "  deps = let inherit (pkgs.python3Packages) numpyy; in [ numpyy ];"
    missing = MissingAttribute("numpyy", "/nonexistent", 1, source.index(" inherit") + 1, source)
    assert guess_package_set(source, missing) == PackageSet(("python3Packages",))
    source = "  runDependencies = with pkgs; [ bash pythn ];"
    missing = MissingAttribute("pythn", "/nonexistent", 1, source.index("pythn") + 1, source, True)
    assert guess_package_set(source, missing) == PackageSet(())
    # an undefined variable without `with pkgs;` before it is an ordinary Nix mistake
    source = "  runDependencies = [ pythn ]; x = with pkgs; [ ];"
    missing = MissingAttribute("pythn", "/nonexistent", 1, source.index("pythn") + 1, source, True)
    assert guess_package_set(source, missing) is None


def test_unknown_sets_are_not_guessed():
    source = "  foo.bar"
    assert guess_package_set(source, at(source, "bar")) is None
    assert guess_package_set("  ps.numpyy", at("  ps.numpyy", "numpyy")) is None  # no lambda


def test_descriptions():
    assert PackageSet(()).describe() == "package set"
    assert PackageSet(("python3", "pkgs")).describe() == "python3Packages set of the package set"
    assert PackageSet(("python3Packages",)).describe() == "python3Packages set of the package set"
    assert PackageSet(()).describe("offline package set") == "offline package set"


def test_closest_names():
    names = ["python3", "python311", "python3Packages", "bash", "numpy", "Numbat"]
    assert closest("pythonn3", names)[:2] == ["python3", "python311"]
    assert closest("numpyy", names) == ["numpy"]
    assert closest("NUMPY", names) == ["numpy"]
    assert closest("zzzzzz", names) == []


def test_show_trace_reaches_nix_argv(monkeypatch, tmp_path):
    seen: list[list[str]] = []

    def stream(args, **kwargs):
        seen.append([str(a) for a in args])
        return process.run(["echo", '[{"outputs": {"out": "/nix/store/x"}}]'])

    monkeypatch.setattr(process, "stream", stream)
    nix.build(".", None)
    nix.build(".", None, show_trace=True)
    assert "--show-trace" not in seen[0]
    assert seen[1][-1] == "--show-trace"
