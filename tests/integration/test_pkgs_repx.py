"""pkgs.repx and repx_py for real: the flake's CLI package, and RepX-style analysis code in a
job of a real built lab (python3.withPackages with pkgs.repx), reading its inter-run inputs.

Needs a package set with the toolchain's PyPI wheels (pydantic v2, typer …): the registry's
``nixpkgs`` once tools/setup.sh has assembled it, or ``$REPX_TEST_NIXPKGS``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from runlab import NIXPKGS_ENV, _repx_flake, build_lab, repx_argv, require_nix, session_dir
from test_run_nonix import _require_unshare, _without_nix

from labfactory import refresh_integrity
from repx_py import Experiment

pytestmark = pytest.mark.slow

SYSTEM = "x86_64-linux"
STANDIN = Path(__file__).resolve().parents[1] / "assets" / "nixpkgs-standin"


def _nixpkgs() -> str:
    return os.environ.get(NIXPKGS_ENV) or "nixpkgs"


def _override() -> list[str]:
    return ["--override-input", "nixpkgs", _nixpkgs()]


@pytest.fixture(scope="module")
def cli() -> Path:
    """``packages.default`` of this checkout's flake, built against the package set."""
    require_nix()
    probe = subprocess.run(
        [
            "nix",
            "eval",
            "--raw",
            f"{_nixpkgs()}#legacyPackages.{SYSTEM}.python3Packages.typer.version",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 and not os.environ.get("CI"):
        pytest.skip(
            f"{_nixpkgs()} has no python3Packages.typer: assemble the toolchain with its PyPI"
            " wheels (tools/setup.sh) or set REPX_TEST_NIXPKGS"
        )
    out = session_dir() / "repx-cli"
    built = subprocess.run(
        ["nix", "build", "-o", str(out), f"path:{_repx_flake()}", *_override()],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return out.resolve()


def test_flake_cli_runs_offline(cli):
    done = subprocess.run(
        [cli / "bin" / "repx", "--version"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("repx ")
    # `nix run <flake> -- --help` (apps.default)
    ran = subprocess.run(
        ["nix", "run", f"path:{_repx_flake()}", *_override(), "--", "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "Usage: repx" in ran.stdout
    # `nix develop`: the CLI and a Python with repx_py and pandas
    shell = subprocess.run(
        [
            "nix",
            "develop",
            f"path:{_repx_flake()}",
            *_override(),
            "-c",
            "sh",
            "-c",
            'repx --version && python3 -c "import repx_py, pandas; print(repx_py.Experiment)"',
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr[-3000:]
    assert "repx_py.models.Experiment" in shell.stdout
    # the installed package carries the flake (repx init registers it) and both import names
    site = cli / "lib" / "python3.11" / "site-packages"
    assert (site / "repx" / "_flake" / "flake.nix").is_file()
    assert (site / "repx_py" / "__init__.py").is_file()
    assert (site / "repx_lab-0.1.0.dist-info" / "entry_points.txt").is_file()


def test_nix_profile_install(cli, tmp_path):
    profile = tmp_path / "profile"
    done = subprocess.run(
        [
            "nix",
            "profile",
            "install",
            "--profile",
            str(profile),
            f"path:{_repx_flake()}",
            *_override(),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    version = subprocess.run(
        [profile / "bin" / "repx", "--version"], capture_output=True, text=True, check=False
    )
    assert version.stdout.startswith("repx "), version.stderr


def _with_run_inputs(lab: Path, dest: Path) -> Path:
    """A copy of the built lab whose analysis job declares RepX's inter-run inputs (what the
    Nix side emits for ``store__base`` and ``metadata__simulation`` inputs)."""
    shutil.copytree(lab, dest, symlinks=True)
    for path in dest.rglob("*"):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)
    dest.chmod(dest.stat().st_mode | 0o200)
    revision = json.loads((dest / "revision" / "metadata.json").read_text())
    manifest = dest / revision["runs"]["analysis"]["manifest"]
    data = json.loads(manifest.read_text())
    [job] = data["jobs"].values()
    job["run_inputs"] = [
        {"name": "metadata__simulation", "kind": "run_metadata", "run": "simulation"},
        {"name": "store__base", "kind": "store_base"},
    ]
    manifest.write_text(json.dumps(data))
    refresh_integrity(dest)
    return dest


@pytest.fixture(scope="module")
def ran(cli, tmp_path_factory):
    lab = build_lab("repxpy")
    tmp = tmp_path_factory.mktemp("repxpy")
    copy = _with_run_inputs(lab, tmp / "lab")
    base = tmp / "base"
    done = subprocess.run(
        [cli / "bin" / "repx", "run", "--lab", copy, "--base", base],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return copy, base


def test_flake_cli_draws_the_board_when_the_package_set_has_textual(cli, ran, tmp_path):
    """`repx tui` of the Nix-built CLI: textual comes with it where the package set has
    it (nixpkgs, the offline toolchain); elsewhere the command says so in one line."""
    lab, base = ran
    has = subprocess.run(
        ["nix", "eval", f"{_nixpkgs()}#legacyPackages.{SYSTEM}.python3Packages",
         "--apply", "p: p ? textual"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert has.returncode == 0, has.stderr
    shot = tmp_path / "board.svg"
    done = subprocess.run(
        [cli / "bin" / "repx", "tui", "--lab", lab, "--base", base, "--screenshot", shot],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if has.stdout.strip() == "true":
        assert done.returncode == 0, done.stderr[-3000:]
        assert "simple-plotter" in shot.read_text()
    else:
        assert done.returncode != 0 and "needs the Python package textual" in done.stderr


def test_repx_analysis_code_runs_in_a_job(ran):
    lab, base = ran
    [plot] = Experiment(lab, base=base).jobs().filter(name__contains="simple-plotter")
    out = Path(plot.get_output_path("plot.png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = plot.load_json("summary.json")
    # slope 2: 2 * (0 + 1 + 4 + 9 + 16)
    assert summary == {"total": 60.0, "jobs": 4, "slopes": [1, 2]}
    log = base / "outputs" / plot.id / "repx" / "stdout.log"
    assert log.read_text().strip() == "total 60.0"


def test_inter_run_inputs_on_a_host_without_nix(ran, tmp_path):
    """No /nix: the lab travels as an archive with its closure (its store/ entries link
    into /nix/store); bwrap binds the unpacked store/; the description names the host's
    store."""
    _require_unshare()
    lab, _ = ran
    archive = tmp_path / "lab.tar"
    exported = subprocess.run(
        repx_argv("export", "--lab", lab, "-o", archive),
        capture_output=True,
        text=True,
        check=False,
    )
    assert exported.returncode == 0, exported.stderr
    other = tmp_path / "nonix"
    done = _without_nix(
        repx_argv("run", "analysis", "simulation", "--lab", archive, "--base", other)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [plot] = Experiment(lab, base=other).jobs().filter(name__contains="simple-plotter")
    assert plot.load_json("summary.json") == {"total": 60.0, "jobs": 4, "slopes": [1, 2]}
    described = json.loads(
        (other / "outputs" / plot.id / "repx" / "run-metadata__simulation.json").read_text()
    )
    assert described["store_base"] == str(other)


def test_experiment_over_the_built_lab(ran):
    lab, base = ran
    exp = Experiment(lab, base=base)
    summers = exp.jobs().filter(name__contains="simple-summer")
    assert sorted(s.effective_params["slope"] for s in summers) == [1, 2]
    frame = summers.to_dataframe()
    assert list(frame.columns) == ["name", "slope"]
    totals = {
        s.effective_params["slope"]: float(s.get_output_path("result.sum").read_text())
        for s in summers
    }
    assert totals == {1: 30.0, 2: 60.0}
    producer = exp.jobs().filter(name="simple-producer-1.1", slope=1)[0]
    assert list(producer.load_csv("data.csv")["y"]) == [0, 1, 4, 9, 16]


def test_nixpkgs_shape_of_the_package_evaluates():
    """The arguments nixpkgs' buildPythonPackage gets (recorded by a stand-in builder)."""
    require_nix()
    package = Path(_repx_flake()) / "nix" / "repx-package.nix"
    expr = f"""
      let
        py = {{ buildPythonPackage = a: a; hatchling = "hatchling"; pandas = "pandas";
               typer = "typer"; pydantic = "pydantic"; networkx = "networkx";
               graphviz = "graphviz"; rich = "rich"; }};
        a = import {package} {{ lib = {{ }}; python3Packages = py; }};
      in {{ inherit (a) pname version pyproject build-system dependencies pythonImportsCheck;
            analysis = a.optional-dependencies.analysis;
            src = builtins.attrNames (builtins.readDir a.src); }}
    """
    done = subprocess.run(
        ["nix", "eval", "--json", "--impure", "--expr", expr],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got["pname"] == "repx-lab" and got["pyproject"] is True
    assert got["build-system"] == ["hatchling"]
    assert got["dependencies"] == ["typer", "pydantic", "networkx", "graphviz", "rich"]
    assert got["analysis"] == ["pandas"]
    assert got["pythonImportsCheck"] == ["repx", "repx_py"]
    # what hatchling needs: pyproject, readme, the packages and the force-included flake
    assert {"pyproject.toml", "README.md", "src", "flake.nix", "nix", "templates"} <= set(
        got["src"]
    )


def test_cli_builds_against_the_nixpkgs_standin(cli, tmp_path):
    """nixpkgs' shape (tests/assets/nixpkgs-standin): packages.default builds and runs."""
    toolchain = _nixpkgs() if _nixpkgs().startswith("path:") else "path:/var/lib/repx/toolchain"
    standin = tmp_path / "standin"
    shutil.copytree(STANDIN, standin)
    out = tmp_path / "result"
    built = subprocess.run(
        [
            "nix",
            "build",
            "-o",
            str(out),
            f"path:{_repx_flake()}",
            "--override-input",
            "nixpkgs",
            f"path:{standin}",
            "--override-input",
            "nixpkgs/toolchain",
            toolchain,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    done = subprocess.run(
        [out / "bin" / "repx", "--version"], capture_output=True, text=True, check=False
    )
    assert done.stdout.startswith("repx "), done.stderr
