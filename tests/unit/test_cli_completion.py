"""``repx completions``: the script, run by a real bash, completes runs, groups, stages, ids."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repx.cli import app

REPX_BIN = Path(sys.executable).parent / "repx"
runner = CliRunner()

pytestmark = pytest.mark.skipif(not REPX_BIN.exists(), reason="repx is not installed here")


def bash_complete(words: list[str], cwd: Path) -> list[str]:
    """What bash offers after ``words`` (the last one being completed), through the script."""
    script = (
        'eval "$(repx completions --shell bash)"\n'
        f"COMP_WORDS=({' '.join(_quote(w) for w in words)})\n"
        f"COMP_CWORD={len(words) - 1}\n"
        "_repx_completion repx\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    env = {**os.environ, "PATH": f"{REPX_BIN.parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        ["bash", "--norc", "-c", script],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=True,
    )
    assert proc.stderr == ""
    return [line for line in proc.stdout.splitlines() if line]


def _quote(word: str) -> str:
    return "''" if not word else "'" + word.replace("'", "'\\''") + "'"


def test_scripts_for_each_shell():
    for shell in ("bash", "zsh", "fish"):
        result = runner.invoke(app, ["completions", "--shell", shell])
        assert result.exit_code == 0 and "_REPX_COMPLETE" in result.stdout, shell
    result = runner.invoke(app, ["completions", "--shell", "tcsh"])
    assert result.exit_code == 2


def test_bash_completes_from_the_lab(factory_lab, tmp_path):
    (tmp_path / "result").symlink_to(factory_lab.root)
    assert bash_complete(["repx", "list", "jobs", "--stage", "s"], tmp_path) == [
        "simulate",
        "stats",
    ]
    assert bash_complete(["repx", "show", "run", ""], tmp_path) == ["simulation", "report"]
    assert bash_complete(["repx", "run", "@"], tmp_path) == ["@all"]
    assert bash_complete(["repx", "list", "jobs", "--status", "f"], tmp_path) == ["failed"]
    job = sorted(factory_lab.job_ids)[0]
    offered = bash_complete(["repx", "show", "job", job[:3]], tmp_path)
    assert job[:8] in offered and all(o.startswith(job[:3]) for o in offered)
    assert bash_complete(["repx", "log", job[:9]], tmp_path) == [job]  # full ids once longer


def test_the_lab_named_on_the_command_line_is_read(factory_lab, tmp_path):
    lab = str(factory_lab.root)
    assert bash_complete(["repx", "-l", lab, "status", "r"], tmp_path) == ["report"]
    assert bash_complete(["repx", "trace-params", "--lab", lab, "zz"], tmp_path) == []
    # no lab here: nothing offered, nothing printed on stderr
    assert bash_complete(["repx", "show", "job", ""], tmp_path) == []
