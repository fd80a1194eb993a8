"""The nixpkgs-shaped package set (issue 11): Python + numpy/pandas/matplotlib, gnuplot, GNU
tools, gcc/cmake with stdenv.mkDerivation, the trivial builders — real offline `nix build`
of tests/assets/pkgset-lab against the toolchain and against the nixpkgs stand-in."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from runlab import NIXPKGS_ENV, build_lab, lab_jobs, repx

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("nix") is None, reason="needs nix"),
]

REPO = Path(__file__).resolve().parents[2]
ASSEMBLE = REPO / "nix" / "toolchain" / "assemble.sh"
TABLE = REPO / "nix" / "toolchain" / "package-table.py"
LAB = REPO / "tests" / "assets" / "pkgset-lab"
STANDIN = REPO / "tests" / "assets" / "nixpkgs-standin"
CACHE_DIR = os.environ.get("REPX_CACHE_DIR") or str(Path.home() / ".cache" / "repx")
NIX_OPTS = ["--option", "sandbox", "true", "--option", "sandbox-fallback", "false"]
PNG = b"\x89PNG\r\n\x1a\n"
OUTPUTS = ["python-plot", "gnuplot-png", "gawk-math", "programs", "builders", "python", "sim"]


def run(*argv: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], check=True, text=True, capture_output=True, env=env
    )


@pytest.fixture(scope="module")
def toolchain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Assembled into a fresh directory; the Debian trees come from the cache (built once)."""
    dest = tmp_path_factory.mktemp("pkgset") / "tc"
    run("bash", ASSEMBLE, dest, env={**os.environ, "REPX_CACHE_DIR": CACHE_DIR})
    return dest


def build(lab: Path, names: list[str], over: list[str]) -> dict[str, Path]:
    """Build `packages.x86_64-linux.<name>` of the lab flake; `{name: out path}`."""
    drvs = json.loads(
        run(
            "nix",
            "eval",
            "--json",
            *over,
            f"path:{lab}#packages.x86_64-linux",
            "--apply",
            "ps: builtins.mapAttrs (n: p: p.drvPath) ps",
        ).stdout
    )
    proc = run(
        "nix", "build", "--no-link", "--json", *NIX_OPTS, *over, *(f"path:{lab}#{n}" for n in names)
    )
    by_drv = {e["drvPath"]: Path(e["outputs"]["out"]) for e in json.loads(proc.stdout)}
    return {n: by_drv[drvs[n]] for n in names}


@pytest.fixture(scope="module", params=["toolchain", "standin"])
def built(
    request: pytest.FixtureRequest, toolchain: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    lab = tmp_path_factory.mktemp("lab") / "lab"
    shutil.copytree(LAB, lab)
    if request.param == "toolchain":
        over = ["--override-input", "nixpkgs", f"path:{toolchain}"]
    else:
        standin = tmp_path_factory.mktemp("standin") / "nixpkgs"
        shutil.copytree(STANDIN, standin)
        over = [
            "--override-input",
            "nixpkgs",
            f"path:{standin}",
            "--override-input",
            "nixpkgs/toolchain",
            f"path:{toolchain}",
        ]
    return build(lab, OUTPUTS, over)


def test_python_numpy_pandas_matplotlib_png(built: dict[str, Path]) -> None:
    out = built["python-plot"]
    log = (out / "log").read_text().split("\n")
    assert log[:4] == ["backend agg", "mean 28.5 norm 0.5", "tz 10", "no-bin"]
    assert (out / "plot.png").read_bytes()[:8] == PNG


def test_gnuplot_png_and_gawk_math(built: dict[str, Path]) -> None:
    gp = built["gnuplot-png"]
    assert (gp / "plot.png").read_bytes()[:8] == PNG
    assert (gp / "cairo.png").read_bytes()[:8] == PNG  # fonts through fontconfig
    assert (gp / "plot.ps").read_text().startswith("%!PS-Adobe")
    assert (gp / "log").read_text() == ""  # no missing font, prologue or cache warnings
    assert built["gawk-math"].read_text().split() == [
        "1.414214",
        "1.414214",
        "2.3026",
        "0.8415",
        "1.4142",
    ]


def test_stdenv_programs_and_builders(built: dict[str, Path]) -> None:
    assert built["programs"].read_text().split("\n")[:6] == [
        "mean 0.511 sqrt2 1.41421",
        "sum 5050",
        "mean 0.560 sqrt2 1.41421",
        "from jq",
        "sq 144",  # a library found through buildInputs
        "mean 0.560 sqrt2 1.41421",  # src as a .tar.gz
    ]
    assert built["builders"].read_text().split("\n")[:7] == [
        "Hello, world!",
        "mean 0.560 sqrt2 1.41421",
        "shell-script",
        "script-bin",
        "raw-script",
        "in a dir",
        "script-bin",
    ]


def test_programs_run_with_only_the_store_visible(built: dict[str, Path], toolchain: Path) -> None:
    """bwrap shows /nix/store and nothing else (no /proc either): launchers and the glibc
    tree's loader must be enough; only the chosen Python packages import."""
    env = built["python"]
    bwrap = [
        "bwrap",
        "--ro-bind",
        "/nix/store",
        "/nix/store",
        "--dev",
        "/dev",
        "--unshare-all",
        "--clearenv",
        "--setenv",
        "HOME",
        "/nonexistent",
    ]
    code = "import numpy, pandas, matplotlib, sys; print(sys.prefix == sys.base_prefix, numpy.__version__)"
    assert run(*bwrap, env / "bin" / "python3", "-c", code).stdout.split()[0] == "False"
    bare = json.loads(
        run("nix", "build", "--no-link", "--json", f"path:{toolchain}#python3").stdout
    )
    proc = subprocess.run(
        [*bwrap, bare[0]["outputs"]["out"] + "/bin/python3", "-c", "import numpy"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "No module named 'numpy'" in proc.stderr
    assert (
        run(*bwrap, built["sim"] / "bin" / "sim", "10", "1").stdout == "mean 0.560 sqrt2 1.41421\n"
    )


def test_gnu_cat_head_pipefail_never_141(toolchain: Path, tmp_path: Path) -> None:
    """busybox cat in `cat f | head -1` under pipefail died of SIGPIPE in ~2 % of runs."""
    lab = tmp_path / "lab"
    shutil.copytree(LAB, lab)
    out = build(lab, ["pipefail"], ["--override-input", "nixpkgs", f"path:{toolchain}"])["pipefail"]
    assert out.read_text() == "10000\n"


def test_docs_table_matches_the_package_set(toolchain: Path) -> None:
    proc = subprocess.run(
        ["python3", TABLE, toolchain, REPO / "docs" / "offline.md", "--check"],
        check=False,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def test_lab_stages_use_python_gnuplot_and_a_compiled_simulator(
    toolchain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repx lab (tests/assets/labs/realsw) whose stages run a C simulator built with
    stdenv.mkDerivation, Python with pandas + matplotlib, and gnuplot, natively and in bwrap."""
    monkeypatch.setenv(NIXPKGS_ENV, f"path:{toolchain}")
    lab = build_lab("realsw", variant="pkgset")
    jobs = lab_jobs(lab)
    for runtime in ("native", "bwrap"):
        base = tmp_path / runtime
        result = repx("run", "--lab", lab, "--base", base, "--runtime", runtime)
        assert result.returncode == 0, result.stderr
        by_stage = {spec["stage"]: job for job, spec in jobs.items()}
        out = base / "outputs"
        assert (out / by_stage["analyse"] / "out" / "plot.png").read_bytes()[:8] == PNG
        assert (out / by_stage["gplot"] / "out" / "means.png").read_bytes()[:8] == PNG
        summary = (out / by_stage["analyse"] / "out" / "summary.csv").read_text().split("\n")
        assert summary[0] == "run,mean" and len([s for s in summary if s]) == 4


def test_python_tree_is_deterministic(toolchain: Path, tmp_path: Path) -> None:
    """Relocating the same .deb files elsewhere gives the same store path (a tree built in
    another cache directory once differed: .pyc files of compileall's own imports, set order)."""
    manifest = json.loads((toolchain / "manifest.json").read_text())
    spec = json.loads((REPO / "nix" / "toolchain" / "trees.json").read_text())["python3"]
    (tmp_path / "trees.json").write_text(json.dumps({"python3": spec}))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "debs").symlink_to(Path(CACHE_DIR) / "debs")
    # the launcher assemble.sh compiled from this launcher.c (named by its sha256)
    digest = hashlib.sha256((REPO / "nix" / "toolchain" / "launcher.c").read_bytes()).hexdigest()
    launcher = Path(CACHE_DIR) / f"launcher-{digest[:16]}"
    assert launcher.is_file(), launcher
    run(
        "python3",
        REPO / "nix" / "toolchain" / "debtree.py",
        tmp_path / "trees.json",
        cache,
        launcher,
        tmp_path / "gcroots",
        tmp_path / "out.json",
    )
    built = json.loads((tmp_path / "out.json").read_text())["python3"]
    assert built["path"] == manifest["trees"]["python3"]["path"]
