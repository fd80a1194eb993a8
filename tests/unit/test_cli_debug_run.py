"""``repx debug-run``: a shell in the job's exact environment, and nothing committed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from labfactory import RunSpec, StageSpec, write_lab
from repx.cli import app

runner = CliRunner()
REPX_BIN = Path(sys.executable).parent / "repx"

needs_sandbox = pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("busybox") is None,
    reason="bwrap and a static busybox are needed for the hermetic sandbox",
)


@pytest.fixture
def ran(tmp_path):
    """A two-stage lab whose first job has run (native: the committed result to protect)."""
    runs = (
        RunSpec(
            "r",
            parameters={"seed": [7]},
            stages=(StageSpec("first", params=("seed",)), StageSpec("second", after=("first",))),
        ),
    )
    factory = write_lab(tmp_path / "lab", runs, static_tools=True)
    base = tmp_path / "runs"
    first = factory.stage_jobs[("r", "first")][0]
    second = factory.stage_jobs[("r", "second")][0]
    args = ["--lab", str(factory.root), "--base", str(base)]
    result = runner.invoke(app, ["run", first, "--runtime", "native", *args])
    assert result.exit_code == 0, result.stderr
    return factory, base, first, second, args


def debug(args, *rest, stdin=None):
    return subprocess.run(
        [str(REPX_BIN), "debug-run", *args, *rest],
        capture_output=True,
        text=True,
        input=stdin,
        check=False,
    )


@needs_sandbox
def test_command_runs_in_the_jobs_sandbox_with_its_inputs(ran):
    factory, base, first, second, args = ran
    committed = base / "outputs" / first / "out/result.json"
    before = committed.read_bytes()
    upstream = base / "outputs" / first / "out"
    script = (
        'cat "$params"; echo @; cat "$inputs"; echo @; echo "$1|$out"; touch "$out/new";'
        f" ! touch {upstream}/x 2>/dev/null && echo upstream-read-only;"
        " echo PATH=$PATH; exit 5"
    )
    proc = debug(args, second[:8], "-c", script)
    assert proc.returncode == 5, proc.stderr  # the command's own exit status
    params, inputs, rest = proc.stdout.split("@\n")
    assert isinstance(json.loads(params), dict)  # the job's parameters.json
    assert list(json.loads(inputs).values()) == [str(upstream / "result.json")]
    lines = rest.splitlines()
    one, out = lines[0].split("|")
    assert one == out and out.endswith("/out") and not out.startswith(str(base))
    assert "upstream-read-only" in lines
    [path] = [line for line in lines if line.startswith("PATH=")]
    assert path.startswith(f"PATH={factory.root.resolve()}/host-tools/") and path.endswith("/bin")
    assert committed.read_bytes() == before
    assert not Path(out).exists()  # the scratch attempt is gone
    assert not (base / "outputs" / second).exists()  # nothing committed for the job
    # the job itself, run by hand in the session
    proc = debug(args, first, "-c", '"$REPX_JOB_EXECUTABLE" "$@" && cat "$out/result.json"')
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(before)
    assert committed.read_bytes() == before


@needs_sandbox
def test_interactive_shell_reads_commands(ran):
    _, _, first, _, args = ran
    proc = debug(args, first, stdin='echo "in the shell: $(cat "$3")"\nexit 3\n')
    assert proc.returncode == 3, proc.stderr
    assert "in the shell: " in proc.stdout and '"seed":7' in proc.stdout.replace(" ", "")
    assert "repx debug-run: " in proc.stderr


def test_a_job_whose_inputs_have_not_run_is_refused(tmp_path):
    runs = (RunSpec("r", stages=(StageSpec("a"), StageSpec("b", after=("a",)))),)
    factory = write_lab(tmp_path / "lab", runs)
    b = factory.stage_jobs[("r", "b")][0]
    a = factory.stage_jobs[("r", "a")][0]
    args = ["--lab", str(factory.root), "--base", str(tmp_path / "runs"), "--runtime", "native"]
    result = runner.invoke(app, ["debug-run", b[:8], "-c", "true", *args])
    assert result.exit_code == 2
    assert result.stderr == (
        f"error: job {b} reads input 'a_result_json' from {a}, which has no outputs yet:"
        f" run it first (repx run {a})\n"
    )
