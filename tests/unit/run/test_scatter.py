"""The scatter-gather orchestrator with real processes and /bin/sh pieces (no Nix needed).

The Nix-built path (bwrap, the CLI, SLURM) is tests/integration/test_scatter_gather.py;
these cover what a lab can hand the orchestrator that the test lab does not produce.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from repx.config import RuntimeKind
from repx.lab.models import Resources, ScatterGather
from repx.run import pieces, scatter
from repx.run.runtime import Runtime
from repx.run.scatter_slurm import step_options
from repx.run.spec import JobSpec, Pieces, PieceSlurm

LAYOUT = {
    "work_items": "items.json",
    "scatter": {"inputs": [], "outputs": {"work__items": "$out/items.json"}},
    "steps": {
        "one": {
            "inputs": {"worker__item": {"from": "item"}},
            "outputs": {"v": "$out/v"},
        }
    },
    "step_order": ["one"],
    "sink": "one",
    "gather": {"inputs": {"worker__outs": {"from": "branches"}}},
}


def _script(path: Path, body: str) -> str:
    path.write_text(f"#!/bin/sh\nset -eu\nout=$1 inputs=$2\n{body}\n")
    path.chmod(0o755)
    return os.fspath(path)


def _task(
    tmp_path: Path, items: str, step: str = 'cat "$(jq -r .worker__item "$inputs")" > "$out/v"'
) -> scatter.OrchestratorTask:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exes = {
        "scatter": _script(bin_dir / "scatter", f"printf '%s' '{items}' > \"$out/items.json\""),
        "step-one": _script(bin_dir / "one", step),
        "gather": _script(
            bin_dir / "gather",
            'jq -r ".[].v" "$(jq -r .worker__outs "$inputs")" | xargs cat > "$out/sum"',
        ),
    }
    params = tmp_path / "parameters.json"
    params.write_text("{}\n")
    work = tmp_path / "base" / ".work" / "j.1"
    (work / "out").mkdir(parents=True)
    (work / "repx").mkdir()
    (work / "repx" / "inputs.json").write_text("{}\n")
    (tmp_path / "base" / "outputs").mkdir()
    spec = JobSpec(
        job="j",
        stage="s",
        lab_root=os.fspath(tmp_path),
        lab_id="lab",
        executable=exes["scatter"],
        parameters_file=os.fspath(params),
        outputs=("sum",),
        pieces=Pieces(layout=ScatterGather.model_validate(LAYOUT), executables=exes),
    )
    path = os.environ["PATH"]
    runtime = Runtime(
        kind=RuntimeKind.NATIVE, path=path, outputs=os.fspath(tmp_path / "base" / "outputs")
    )
    return scatter.OrchestratorTask(spec=spec, runtime=runtime, work=os.fspath(work), lock_fd=-1)


def test_branches_gather_and_the_pieces_join_the_attempt(tmp_path: Path) -> None:
    task = _task(tmp_path, "[1, 2, 3]")
    assert scatter.Orchestrator(task).run() == 0
    work = Path(task.work)
    assert (work / "out" / "sum").read_text() == "1\n2\n3\n"
    assert sorted(p.name for p in work.glob("branch-*")) == ["branch-0", "branch-1", "branch-2"]
    assert not (tmp_path / "base" / "pieces" / "j").exists()


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ('{"a": 1}', "the scatter's work items ($out/items.json) must be a JSON list"),
        ("[1,", "the scatter's work items ($out/items.json) cannot be read"),
    ],
)
def test_unusable_work_items_fail_the_job_with_a_reason(
    tmp_path: Path, items: str, expected: str
) -> None:
    task = _task(tmp_path, items)
    assert scatter.Orchestrator(task).run() == 1
    assert scatter.failure_reason(task.work).startswith(expected)


def test_progress_counts_committed_sinks(tmp_path: Path) -> None:
    task = _task(
        tmp_path,
        "[1, 2, 3]",
        step='[ "$(cat "$(jq -r .worker__item "$inputs")")" != 2 ] && echo x > "$out/v"',
    )
    assert scatter.Orchestrator(task).run() == 1
    outputs = os.fspath(tmp_path / "base" / "outputs")
    layout = ScatterGather.model_validate(LAYOUT)
    assert pieces.progress(outputs, "j", layout) == pieces.Progress(done=1, total=3)
    assert str(pieces.progress(outputs, "j", layout)) == "1/3 branches"
    assert pieces.progress(outputs, "other", layout) is None
    assert "branch-1/step-one failed (exit status 1)" in (scatter.failure_reason(task.work) or "")


def test_step_options_take_the_steps_hints_and_the_jobs_partition() -> None:
    how = PieceSlurm(python="py", partition="main", options=("--qos=low",))
    hints = Resources(cpus=2, mem=64, time=5)
    assert step_options(how, hints) == [
        "--cpus-per-task=2",
        "--mem=64M",
        "--time=00:05:00",
        "--partition=main",
        "--qos=low",
    ]
    assert step_options(how, Resources(partition="gpu")) == ["--partition=gpu", "--qos=low"]


def test_pieces_run_in_parallel_up_to_the_jobs_cpus(tmp_path: Path) -> None:
    # Branch 0 reads a FIFO that branch 1 writes: both must run at once (no timing involved).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    step = (
        'i=$(cat "$(jq -r .worker__item "$inputs")")\n'
        f'if [ "$i" = 1 ]; then cat {fifo} > "$out/v"; else echo "$i" > {fifo}; echo "$i" > "$out/v"; fi'
    )
    task = _task(tmp_path, "[1, 2]", step=step)
    task = task.model_copy(update={"spec": task.spec.model_copy(update={"cpus": 2})})
    assert scatter.Orchestrator(task).run() == 0
    assert (Path(task.work) / "out" / "sum").read_text() == "2\n2\n"


def test_a_dependency_run_again_is_waited_for(tmp_path: Path) -> None:
    # Step "two" of branch 0 fails once; then step one's output is deleted: the resumed
    # attempt must run "one" again before "two" (its old SUCCESS marker does not count).
    layout = json.loads(json.dumps(LAYOUT))
    layout["steps"]["two"] = {
        "deps": ["one"],
        "inputs": {"v": {"from": "step", "step": "one", "output": "v"}},
        "outputs": {"w": "$out/w"},
    }
    layout["step_order"] = ["one", "two"]
    layout["sink"] = "two"
    flag = tmp_path / "fail"
    flag.touch()
    task = _task(tmp_path, "[1]")
    exes = dict(task.spec.pieces.executables)
    exes["step-two"] = _script(
        tmp_path / "bin" / "two", f'[ ! -e {flag} ]\ncat "$(jq -r .v "$inputs")" > "$out/w"'
    )
    exes["gather"] = _script(tmp_path / "bin" / "gather2", 'echo ok > "$out/sum"')
    pieces_spec = Pieces(layout=ScatterGather.model_validate(layout), executables=exes)
    # two CPUs: "two" could start beside "one" if its old marker counted
    spec = task.spec.model_copy(update={"pieces": pieces_spec, "cpus": 2})
    task = task.model_copy(update={"spec": spec})
    assert scatter.Orchestrator(task).run() == 1
    root = tmp_path / "base" / "pieces" / "j"
    (root / "branch-0" / "step-one" / "out" / "v").unlink()
    flag.unlink()
    assert scatter.Orchestrator(task).run() == 0
    assert (Path(task.work) / "branch-0" / "step-two" / "out" / "w").read_text() == "1\n"
