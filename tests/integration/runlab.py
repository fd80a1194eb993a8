"""Helpers of the ``repx run`` integration tests: real labs built once per session, and runs.

Labs are the experiment flakes of ``tests/assets/labs/`` (and the ``default`` template),
built by real ``nix build``. The flake inputs resolve like a user's: ``nixpkgs`` and
``repx`` through the flake registry. ``repx`` is always overridden with a copy of this
checkout's flake (``flake.nix``, ``nix/``, ``templates/``, ``src/``: a ``path:`` on the repository
root would copy the virtualenv into the store); ``$REPX_TEST_NIXPKGS`` (a flake reference)
overrides ``nixpkgs`` when the registry has no usable one.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "tests" / "assets" / "labs"
NIXPKGS_ENV = "REPX_TEST_NIXPKGS"

_session_dir: Path | None = None
_built: dict[str, Path] = {}


def session_dir() -> Path:
    """A directory for the whole test session (removed at exit)."""
    global _session_dir  # noqa: PLW0603 (one per process, shared by all test modules)
    if _session_dir is None:
        _session_dir = Path(tempfile.mkdtemp(prefix="repx-run-tests-"))
        atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)
    return _session_dir


def require_nix() -> None:
    """Skip the test when nix is not installed."""
    if shutil.which("nix") is None:
        pytest.skip("nix is not installed")


def _repx_flake() -> Path:
    copy = session_dir() / "repx-flake"
    if not copy.exists():
        copy.mkdir()
        for name in ("flake.nix", "pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, copy / name)
        # src/: the flake's packages.default and overlay (pkgs.repx) are built from it
        junk = shutil.ignore_patterns("__pycache__", "*.egg-info")
        for sub in ("nix", "templates", "src"):
            shutil.copytree(REPO / sub, copy / sub, symlinks=True, ignore=junk)
    return copy


def build_lab(name: str, *, edit: Callable[[Path], None] | None = None, variant: str = "") -> Path:
    """Build ``tests/assets/labs/<name>`` (or ``template``: templates/default) once per session.

    ``edit`` changes the copied flake before the build (give each edit its own ``variant``).
    Returns the lab (the ``result`` link's target).
    """
    require_nix()
    key = f"{name}-{variant}" if variant else name
    if key in _built:
        return _built[key]
    source = REPO / "templates" / "default" if name == "template" else ASSETS / name
    flake = session_dir() / "flakes" / key
    shutil.copytree(source, flake)
    if edit is not None:
        edit(flake)
    argv = [
        "nix",
        "build",
        "-o",
        str(flake / "result"),
        "--override-input",
        "repx",
        f"path:{_repx_flake()}",
    ]
    nixpkgs = os.environ.get(NIXPKGS_ENV)
    if nixpkgs:
        argv += ["--override-input", "nixpkgs", nixpkgs]
    result = subprocess.run(argv, cwd=flake, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"nix build of lab '{key}' failed:\n{result.stderr[-3000:]}")
    lab = (flake / "result").resolve()
    _built[key] = lab
    return lab


# -- running ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CliResult:
    """A finished ``repx`` command."""

    returncode: int
    stdout: str
    stderr: str

    def events(self) -> list[dict]:
        """The ``--json`` events printed on stdout."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def repx_argv(*args: str | Path) -> list[str]:
    """argv that runs this checkout's repx with the test interpreter."""
    return [sys.executable, "-m", "repx", *map(str, args)]


def repx(*args: str | Path, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """Run ``repx ARGS`` in a subprocess (a real CLI run, as a user would)."""
    result = subprocess.run(
        repx_argv(*args),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
    return CliResult(result.returncode, result.stdout, result.stderr)


# -- reading the output store ------------------------------------------------------------


class GitExperiment:
    """A copy of an asset experiment in a git repository (as ``repx init`` leaves one),
    built and inspected through the real CLI with its own ``XDG_STATE_HOME`` (build
    history)."""

    def __init__(self, tmp_path: Path, asset: str = "sweep") -> None:
        require_nix()
        self.root = tmp_path / "exp"
        shutil.copytree(ASSETS / asset, self.root)
        subprocess.run(["git", "init", "-q"], cwd=self.root, check=True)
        subprocess.run(["git", "add", "-A"], cwd=self.root, check=True)
        self.env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}

    def repx(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``repx ARGS`` in the experiment (not checked)."""
        return subprocess.run(
            repx_argv(*args),
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )

    def build(self) -> None:
        """``repx build`` against this checkout's library; fails the test with its stderr."""
        done = self.repx("build", "--override-input", f"repx=path:{_repx_flake()}")
        assert done.returncode == 0, done.stderr


def lab_jobs(lab: Path) -> dict[str, dict]:
    """Every job of a lab (id -> manifest entry)."""
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    jobs: dict[str, dict] = {}
    for entry in meta["runs"].values():
        jobs.update(json.loads((lab / entry["manifest"]).read_text())["jobs"])
    return jobs


def run_jobs(lab: Path, run: str) -> set[str]:
    """The jobs of one run of a lab."""
    meta = json.loads((lab / "revision" / "metadata.json").read_text())
    return set(json.loads((lab / meta["runs"][run]["manifest"]).read_text())["jobs"])


def tree_digest(directory: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``directory`` (byte-for-byte comparison)."""
    digests = {}
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            digests[path.relative_to(directory).as_posix()] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return digests


def outputs_digest(base: Path, jobs: Sequence[str] | None = None) -> dict[str, dict[str, str]]:
    """job -> :func:`tree_digest` of its committed ``out/``."""
    outputs = base / "outputs"
    names = sorted(jobs) if jobs is not None else sorted(os.listdir(outputs))
    return {job: tree_digest(outputs / job / "out") for job in names}


def completions(base: Path) -> list[dict]:
    """Every readable record of ``completions.jsonl``."""
    records = []
    path = base / "completions.jsonl"
    if not path.exists():
        return records
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def success_counts(base: Path) -> dict[str, int]:
    """How many successful attempts each job has recorded."""
    counts: dict[str, int] = {}
    for record in completions(base):
        if record["status"] == "succeeded":
            counts[record["job"]] = counts.get(record["job"], 0) + 1
    return counts


def assert_store_consistent(base: Path, lab: Path) -> None:
    """No partial output is visible: every committed job is complete and marked."""
    jobs = lab_jobs(lab)
    outputs = base / "outputs"
    if not outputs.exists():
        return
    for job in os.listdir(outputs):
        committed = outputs / job
        markers = {m for m in ("SUCCESS", "FAIL") if (committed / "repx" / m).exists()}
        assert len(markers) == 1, f"{job}: markers {markers}"
        result = json.loads((committed / "repx" / "result.json").read_text())
        if (committed / "out").exists():
            assert markers == {"SUCCESS"}, job
            assert result["status"] == "succeeded", job
            for template in jobs[job]["outputs"].values():
                rel = template.removeprefix("$out/")
                assert (committed / "out" / rel).is_file(), f"{job}: {rel} missing"
        else:
            assert markers == {"FAIL"}, job
            assert result["status"] != "succeeded", job


def copy_with_closure(lab: Path, dest: Path) -> Path:
    """Copy ``lab`` as ``repx export`` lays it out: the lab's links to store paths
    (``store/<name>``, ``host-tools/<hash>``) become copies of those paths (their inner
    links kept), everything else as it is; writable, so a test can tamper with it.

    Never edit a lab copied with its links: writing through ``store/<name>`` would change
    the real Nix store.
    """
    subprocess.run(["cp", "-a", f"{lab}/.", str(dest)], check=True)
    for sub in ("store", "host-tools"):
        for entry in sorted((dest / sub).iterdir()) if (dest / sub).is_dir() else []:
            target = os.readlink(entry) if entry.is_symlink() else ""
            if target.startswith("/nix/store/"):
                entry.unlink()
                subprocess.run(["cp", "-a", target, str(entry)], check=True)
    subprocess.run(["chmod", "-R", "u+w", str(dest)], check=True)
    return dest
