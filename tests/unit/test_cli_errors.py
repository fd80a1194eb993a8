"""Errors become one-line messages and exit codes, never tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repx import __version__
from repx.cli import app
from repx.errors import LabError, NixError
from repx.services import build as build_service

REPX_BIN = Path(sys.executable).parent / "repx"
runner = CliRunner()


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.output
    return result


def raising(exc: BaseException):
    def fail(*_args: object, **_kwargs: object) -> None:
        raise exc

    return fail


def test_version():
    result = invoke("--version")
    assert (result.exit_code, result.stdout) == (0, f"repx {__version__}\n")


def test_unknown_command_is_a_usage_error():
    result = invoke("frobnicate")
    assert result.exit_code == 2
    assert result.stderr == "error: No such command 'frobnicate'. (see 'repx --help')\n"


def test_unknown_option_names_the_subcommand_help():
    result = invoke("build", "--frob")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such option: --frob")
    assert result.stderr.endswith("(see 'repx build --help')\n")
    assert len(result.stderr.splitlines()) == 1


def test_bad_override_input():
    result = invoke("build", "--override-input", "nonsense")
    assert result.exit_code == 2
    assert result.stderr == "error: --override-input expects NAME=REF, got 'nonsense'\n"


def test_lab_error_exit_code_2(monkeypatch):
    monkeypatch.setattr(
        build_service,
        "build_lab",
        raising(LabError("revision/x.json: jobs.a.stage: field required")),
    )
    result = invoke("build")
    assert result.exit_code == 2
    assert result.stderr == "error: revision/x.json: jobs.a.stage: field required\n"
    assert result.stdout == ""


def test_nix_error_exit_code_1_with_indented_details(monkeypatch):
    error = NixError(
        "nix build of '.' failed", "repx: stage 'a' (stages/a.nix:1:2): bad\nerror: builder failed"
    )
    monkeypatch.setattr(build_service, "build_lab", raising(error))
    result = invoke("build")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: nix build of '.' failed\n"
        "  repx: stage 'a' (stages/a.nix:1:2): bad\n"
        "  error: builder failed\n"
    )


def test_interrupt_exit_code_130(monkeypatch):
    monkeypatch.setattr(build_service, "build_lab", raising(KeyboardInterrupt()))
    result = invoke("build")
    assert result.exit_code == 130


def test_unexpected_exception_is_one_line(monkeypatch):
    monkeypatch.setattr(build_service, "build_lab", raising(ZeroDivisionError("oops")))
    result = invoke("build")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: internal error: ZeroDivisionError: oops (set REPX_DEBUG=1 for a traceback)\n"
    )


def test_debug_lets_unexpected_exceptions_through(monkeypatch):
    monkeypatch.setenv("REPX_DEBUG", "1")
    monkeypatch.setattr(build_service, "build_lab", raising(ZeroDivisionError("oops")))
    result = runner.invoke(app, ["build"])
    assert isinstance(result.exception, ZeroDivisionError)


def test_no_arguments_shows_help():
    result = invoke()
    assert result.exit_code == 2
    assert "Usage" in result.output


def test_the_cli_uses_only_public_typer_api():
    """pyproject admits typer by its public API: private modules move between releases
    (typer._click did not exist before 0.26 and its contents moved in 0.27)."""
    cli = Path(__file__).resolve().parents[2] / "src" / "repx" / "cli"
    private = [
        f"{path.name}:{n}"
        for path in sorted(cli.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "typer._" in line or "import click" in line or "from click" in line
    ]
    assert private == []


# -- the installed entry point, in a real process --------------------------------------------


def run_repx(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run(
        [str(REPX_BIN), *args], capture_output=True, text=True, cwd=cwd, env=env, check=False
    )


def test_entry_point_usage_error():
    proc = run_repx("build", "--override-input", "x")
    assert proc.returncode == 2
    assert proc.stderr == "error: --override-input expects NAME=REF, got 'x'\n"
    assert proc.stdout == ""


@pytest.mark.skipif(not REPX_BIN.exists(), reason="repx is not installed in this environment")
def test_entry_point_nix_failure_has_no_traceback(tmp_path):
    proc = run_repx("build", str(tmp_path / "missing"), cwd=tmp_path)
    assert proc.returncode in (1, 2)  # 2 when nix itself is not installed
    assert proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr


def test_entry_point_plain_help_without_arguments():
    """Without rich, typer's no-arguments help is text: shown as is, not as an error line."""
    env = {**os.environ, "NO_COLOR": "1", "TYPER_USE_RICH": "0"}
    proc = subprocess.run(
        [str(REPX_BIN), "show"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("Usage: repx show")
    assert "error:" not in proc.stderr


def test_entry_point_version_and_module():
    assert run_repx("--version").stdout == f"repx {__version__}\n"
    proc = subprocess.run(
        [sys.executable, "-m", "repx", "--version"], capture_output=True, text=True, check=False
    )
    assert proc.stdout == f"repx {__version__}\n"
