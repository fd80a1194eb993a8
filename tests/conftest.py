"""Shared fixtures.

Every test runs with ``$HOME``, the XDG directories and git's configuration pointed into
its own temporary directory (``isolated_home``, autouse). Labs for tests come from
``labfactory`` (hand-written, no Nix) or, for integration tests, from ``built_lab``,
which runs the real ``repx init`` + ``repx build`` once per template and session.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # make `import labfactory` work everywhere

import labfactory

REPO = Path(__file__).resolve().parent.parent
REPX_BIN = Path(sys.executable).parent / "repx"
#: Directories of the repx flake a lab build needs (copied for integration tests).
FLAKE_PARTS = ("flake.nix", "flake.lock", "nix", "templates")


def isolated_environ(base: Path) -> dict[str, str]:
    """Environment variables that confine HOME, XDG dirs and git config to ``base``."""
    home = base / "home"
    for sub in ("", ".cache", ".config", ".local/share", ".local/state"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = repx test\n\temail = test@repx.invalid\n"
        "[init]\n\tdefaultBranch = main\n[safe]\n\tdirectory = *\n"
    )
    return {
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_STATE_HOME": str(home / ".local/state"),
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
    }


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Give each test its own HOME, XDG directories and git identity."""
    env = isolated_environ(tmp_path_factory.mktemp("isolated"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "REPX_FLAKE_DIR", "REPX_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    from repx import resources  # noqa: PLC0415

    resources.flake_dir.cache_clear()
    return Path(env["HOME"])


# -- hand-written labs ----------------------------------------------------------------------


@pytest.fixture
def factory_lab(tmp_path: Path) -> labfactory.FactoryLab:
    """A valid 14-job lab (runs ``simulation`` and ``report``) in a fresh directory."""
    return labfactory.write_lab(tmp_path / "lab")


@pytest.fixture(scope="session")
def factory_lab_10k(tmp_path_factory: pytest.TempPathFactory) -> Iterator[labfactory.FactoryLab]:
    """A 10,000-job lab (one swept stage), written once per session. Do not modify it.

    Written to /dev/shm when possible: creating 30,000 directories takes ~9 s on the
    project's VM disks and ~1.5 s on tmpfs.
    """
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        base = Path(tempfile.mkdtemp(prefix="repx-lab10k-", dir=shm))
    else:
        base = tmp_path_factory.mktemp("lab10k")
    try:
        yield labfactory.write_lab(base / "lab", labfactory.sweep_runs(10_000))
    finally:
        if base.parent == shm:
            shutil.rmtree(base, ignore_errors=True)


# -- real labs built with nix (integration tests) ------------------------------------------


def nix_available() -> bool:
    """Tell whether a usable nix is installed."""
    return shutil.which("nix") is not None


@dataclass(frozen=True)
class BuiltLab:
    """An experiment created by ``repx init`` and built by ``repx build``."""

    template: str
    experiment: Path
    result: Path
    summary: dict[str, Any]
    env: dict[str, str]  # the isolated environment it was built in (HOME, XDG, git)


@pytest.fixture(scope="session")
def repx_flake_dir() -> Path:
    """The repx flake of this checkout (flake.nix, nix/, templates/)."""
    return REPO


@pytest.fixture(scope="session")
def repx_flake_copy(tmp_path_factory: pytest.TempPathFactory, repx_flake_dir: Path) -> Path:
    """A copy of the flake's parts outside git, referenced as ``path:`` by integration tests.

    A ``git+file:`` reference to the checkout would show nix only committed or staged
    files; the copy shows the working tree as it is.
    """
    copy = tmp_path_factory.mktemp("repx-flake")
    for part in FLAKE_PARTS:
        src = repx_flake_dir / part
        if src.is_dir():
            shutil.copytree(src, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.is_file():
            shutil.copy2(src, copy / part)
    return copy


class RepxCli:
    """Runs the installed ``repx`` in a session-wide isolated environment."""

    def __init__(self, env: dict[str, str], flake_copy: Path) -> None:
        self.env = env
        self.flake_copy = flake_copy

    @property
    def override_args(self) -> list[str]:
        """``--override-input`` options pointing the experiment at this checkout."""
        args = ["--override-input", f"repx=path:{self.flake_copy}"]
        if nixpkgs := os.environ.get("REPX_TEST_NIXPKGS"):
            args += ["--override-input", f"nixpkgs={nixpkgs}"]
        return args

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``repx ARGS`` and return the finished process (never raises on failure)."""
        return subprocess.run(
            [str(REPX_BIN), *args],
            cwd=cwd,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def ok(self, *args: str, cwd: Path | None = None) -> str:
        """Run ``repx ARGS``; fail the test with repx's stderr unless it succeeds."""
        proc = self.run(*args, cwd=cwd)
        if proc.returncode != 0:
            pytest.fail(f"repx {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc.stdout


@pytest.fixture(scope="session")
def repx_cli(tmp_path_factory: pytest.TempPathFactory, repx_flake_copy: Path) -> RepxCli:
    """The real ``repx`` CLI with an isolated HOME and ``$REPX_FLAKE_DIR`` = the flake copy.

    ``nixpkgs`` resolves through the flake registry (tools/setup.sh registers the offline
    toolchain) unless ``$REPX_TEST_NIXPKGS`` gives a flake reference for it.
    """
    if not nix_available():
        pytest.skip("nix is not installed")
    env = {**os.environ, **isolated_environ(tmp_path_factory.mktemp("repx-cli-env"))}
    env["REPX_FLAKE_DIR"] = str(repx_flake_copy)
    env["NO_COLOR"] = "1"
    return RepxCli(env, repx_flake_copy)


@pytest.fixture(scope="session")
def built_lab(
    tmp_path_factory: pytest.TempPathFactory, repx_cli: RepxCli
) -> Callable[[str], BuiltLab]:
    """Factory: ``built_lab("default")`` inits + builds that template once per session.

    Runs the real CLI: ``repx init`` then ``repx build --json --override-input
    repx=path:<copy>``. Fails with repx's stderr when init or build fails (an
    unknown template included). Treat the result as read-only (it is shared).
    """
    built: dict[str, BuiltLab] = {}

    def build(template: str = "default") -> BuiltLab:
        if template in built:
            return built[template]
        experiment = tmp_path_factory.mktemp(f"experiment-{template}") / "exp"
        repx_cli.ok("init", str(experiment), "--template", template)
        stdout = repx_cli.ok("build", "--json", *repx_cli.override_args, cwd=experiment)
        lab = BuiltLab(
            template, experiment, experiment / "result", json.loads(stdout), repx_cli.env
        )
        built[template] = lab
        return lab

    return build


#: Set by .ci/run: CI installs everything the suite needs, so a skipped test there means a
#: missing set-up step (a tool installed by hand on a developer's machine), not a choice.
NO_SKIPS = "REPX_TEST_NO_SKIPS"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.skipped and os.environ.get(NO_SKIPS) and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under {NO_SKIPS} (CI sets up everything): {reason}"
