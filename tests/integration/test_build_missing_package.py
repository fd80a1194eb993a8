"""A missing package is one clear line (issue 11): real ``repx build`` of a tiny experiment
whose stage names a package the package set lacks, against the repx offline toolchain (the
registry's ``nixpkgs``) and against the nixpkgs stand-in; ``--show-trace``; the stage
check's package hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

STANDIN = Path(__file__).resolve().parents[1] / "assets" / "nixpkgs-standin"

STAGE = """{ pkgs }:
{
  pname = "hello";
  outputs = {
    "greeting.txt" = "$out/greeting.txt";
  };
  runDependencies = [
    DEPENDENCY
  ];
  run =
    { outputs, ... }:
    ''
      BODY > "${outputs."greeting.txt"}"
    '';
}
"""


@pytest.fixture
def experiment(repx_cli, tmp_path):
    """A ``minimal`` experiment; ``write(dep, body)`` replaces its stage file."""
    exp = tmp_path / "exp"
    repx_cli.ok("init", str(exp), "--template", "minimal")

    def write(dependency: str, body: str = "echo hi") -> Path:
        text = STAGE.replace("DEPENDENCY", dependency).replace("BODY", body)
        (exp / "nix" / "stage-hello.nix").write_text(text)
        return exp

    return write


def error_lines(proc) -> list[str]:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return [x for x in proc.stderr.splitlines() if not x.startswith("warning:")]


def test_top_level_package_offline(repx_cli, experiment):
    exp = experiment("pkgs.pythonn3")
    lines = error_lines(repx_cli.run("build", *repx_cli.override_args, cwd=exp))
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("error: nix/stage-hello.nix:8:5: 'pythonn3' is not in the offline ")
    assert "offline package set" in line
    assert "closest names: python3" in line
    assert not (exp / "result").exists()


def test_python_package_in_with_packages_offline(repx_cli, experiment):
    exp = experiment("(pkgs.python3.withPackages (ps: [ ps.numpy ps.numpyy ]))")
    lines = error_lines(repx_cli.run("build", *repx_cli.override_args, cwd=exp))
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "error: nix/stage-hello.nix:8:48: 'numpyy' is not in the python3Packages set of the "
        "offline package set"
    )
    names = lines[0].split("closest names: ")[1].split(" (")[0].split(", ")
    assert names[0] == "numpy"


def test_with_pkgs_and_other_mistakes(repx_cli, experiment):
    """A name after ``with pkgs;`` is a package; other missing names keep nix's report."""
    exp = experiment("pkgs.bash ] ++ (with pkgs; [ pythn ]) ++ [")
    lines = error_lines(repx_cli.run("build", *repx_cli.override_args, cwd=exp))
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: nix/stage-hello.nix:8:34: 'pythn' is not in the offline")
    exp = experiment("pkgs.bash ] ++ [ (builtins.listToAttrs [ ]).foo")
    proc = repx_cli.run("build", *repx_cli.override_args, cwd=exp)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: nix build of '.' failed\n  error: attribute 'foo'")
    assert "stage-hello.nix:8:" in proc.stderr


def test_against_real_nixpkgs_shape(repx_cli, experiment, tmp_path):
    """The stand-in has no ``repxOffline``: the line says just that the set lacks the name."""
    standin = tmp_path / "standin"
    shutil.copytree(STANDIN, standin)
    exp = experiment("pkgs.pythonn3")
    over = [*repx_cli.override_args[:2], "--override-input", f"nixpkgs=path:{standin}"]
    lines = error_lines(repx_cli.run("build", *over, cwd=exp))
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        "error: nix/stage-hello.nix:8:5: the package set has no attribute 'pythonn3'; "
        "closest names: python3"
    )
    assert "offline" not in lines[0]


def test_show_trace_is_passed_to_nix(repx_cli, experiment):
    exp = experiment("(pkgs.python3.withPackages (ps: [ ps.numpyy ]))")
    short = repx_cli.run("build", *repx_cli.override_args, cwd=exp)
    traced = repx_cli.run("build", "--show-trace", *repx_cli.override_args, cwd=exp)
    assert traced.returncode == 1
    first = error_lines(traced)[0]
    assert first == error_lines(short)[0].replace(
        " (repx build --show-trace shows nix's trace)", ""
    )
    # nix's own trace follows: only nix --show-trace prints the frames it went through
    assert "… while evaluating" in traced.stderr
    assert "… while evaluating" not in short.stderr
    assert "error: attribute 'numpyy' missing" in traced.stderr


def test_check_suggests_only_existing_packages(repx_cli, experiment):
    exp = experiment("pkgs.bc", body="gnuplot -e 'print 1'; frobnicate")
    proc = repx_cli.run("build", *repx_cli.override_args, cwd=exp)
    assert proc.returncode == 1, proc.stderr
    hints = [x.strip() for x in proc.stderr.splitlines() if "is not provided" in x]
    advice = "is not provided by runDependencies; add the package that provides it"
    assert hints == [
        f"repx: stage 'hello' (nix/stage-hello.nix:13:7): command 'gnuplot' {advice} "
        "(e.g. pkgs.gnuplot) to runDependencies",
        f"repx: stage 'hello' (nix/stage-hello.nix:13:29): command 'frobnicate' {advice} "
        "to runDependencies",
    ]
