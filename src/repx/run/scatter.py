"""Scatter-gather jobs: the scatter, one branch of steps per work item, then the gather.

A scatter-gather job is one job of the lab: one lock, one attempt, one commit, as any
job (:mod:`repx.run.job`). Its process is not a stage script but this module's
orchestrator (``python -m repx.run.scatter TASK.json``), which runs the pieces -- each a
stage script called as ``<out> <inputs.json> <parameters.json>`` in the job's runtime --
and commits each piece atomically where the next attempt finds it::

    <base>/pieces/<job>/scatter/{out,repx}           the scatter (out/ holds work_items.json)
    <base>/pieces/<job>/branch-N/work_item.json      branch N's work item
    <base>/pieces/<job>/branch-N/step-S/{out,repx}   step S of branch N
    <base>/pieces/<job>/gather/repx                  the last gather attempt's logs
    <base>/pieces/<job>/.work/<piece>.<nonce>/       a piece in progress

A piece is done when its ``repx/SUCCESS`` marker and its declared outputs exist; an
attempt (a resumed run) runs only the pieces that are not. When the gather succeeds its
``out/`` becomes the attempt's ``out/`` and the pieces move into the attempt, so the
committed job is ``outputs/<job>/{out,repx,scatter,branch-N,gather}`` (RepX's layout).

Up to the job's ``cpus`` hint worth of pieces run at once (a piece takes its own ``cpus``,
at most the job's): the scheduler reserved that many for the job. A SIGTERM (repx
stopping the job) stops every running piece; the pieces committed so far stay.
"""

# str paths throughout, as the job lifecycle (the pieces are its per-job hot path)
# ruff: noqa: PTH103, PTH104, PTH105, PTH110, PTH118, PTH120, PTH123, PTH208

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Final

from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from repx import process, slurm
from repx.config import RuntimeKind
from repx.lab.models import PieceInput
from repx.run import scatter_slurm
from repx.run.pieces import WORK_ITEM, pieces_dir
from repx.run.runtime import Runtime
from repx.run.slurm_models import SLURM_DIR
from repx.run.spec import JobSpec, output_path
from repx.run.store import FAIL_MARKER, FAILED_OUT, OUT, REPX, RESULT, SUCCESS_MARKER
from repx.run.store_models import JobResult, JobStatus

TASK_FILE: Final = "scatter-task.json"
#: In the attempt's repx/: the gather's ``worker__outs`` list, and why the job failed.
WORKER_OUTS: Final = "worker_outs.json"
REASON_FILE: Final = "pieces-reason.txt"
#: Lines of a failed piece's stderr repeated on the job's stderr.
_TAIL: Final = 5
_BRANCH: Final = re.compile(r"^branch-(\d+)$")
#: Test hooks: ``branch-done:K`` -- after the K-th branch completes, stop the run that
#: started this job (SIGTERM to the parent), then wait for the stop to arrive here;
#: ``slurm-held`` -- submit the step arrays held (they wait until cancelled).
_SIGNAL_AT: Final = os.environ.get("REPX_TEST_SIGNAL_AT", "")


class OrchestratorTask(BaseModel):
    """What the orchestrator of one attempt needs (written into the attempt's repx/)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    spec: JobSpec
    runtime: Runtime
    #: the attempt directory (``.work/<job>.<nonce>``)
    work: str
    #: the job's lock, inherited: passed on to every piece (see :mod:`repx.run.orphans`)
    lock_fd: int


def command(
    spec: JobSpec, runtime: Runtime, work: Path, lock_fd: int
) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and working directory of a scatter-gather attempt's orchestrator."""
    w = os.fspath(work)
    task = OrchestratorTask(spec=spec, runtime=runtime, work=w, lock_fd=lock_fd)
    path = os.path.join(w, REPX, TASK_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(task.model_dump_json(indent=1) + "\n")
    # The orchestrator is repx itself, not a job: it keeps repx's environment (how its
    # Python finds repx, SLURM's commands); every piece gets the runtime's clean one.
    env = {**os.environ, "REPX_JOB_ID": spec.job}
    return [sys.executable, "-m", "repx.run.scatter", path], env, w


def failure_reason(work: str) -> str | None:
    """Why the orchestrator of the attempt in ``work`` failed (None: it did not say)."""
    try:
        with open(os.path.join(work, REPX, REASON_FILE), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


# -- the orchestrator -----------------------------------------------------------------


@dataclass
class _Piece:
    key: str  # "scatter", "branch-N/step-S", "gather"
    executable: str
    inputs: dict[str, str]
    outputs: tuple[str, ...]
    cpus: int
    deps: tuple[str, ...] = ()
    branch: int | None = None
    step: str | None = None


@dataclass
class _Running:
    piece: _Piece
    child: process.Child
    work: str
    nonce: str
    start: float


class _Failed(Exception):
    """A piece failed or the work items are unusable: the job fails with this reason."""


class _Stopped(Exception):
    """repx stopped the job."""


@dataclass
class _Stop:
    """A stop request (SIGTERM/SIGINT), and a pipe that wakes the waiting loop."""

    requested: int = 0
    wake_r: int = -1
    wake_w: int = -1

    def __post_init__(self) -> None:
        if self.wake_r < 0:
            self.wake_r, self.wake_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested += 1
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"x")


@dataclass
class Orchestrator:
    """Runs the pieces of one attempt of a scatter-gather job."""

    task: OrchestratorTask
    stop: _Stop = field(default_factory=_Stop)
    #: the file ``task`` was read from (SLURM array tasks read it too)
    task_file: str = ""
    _branches_done: int = 0

    def __post_init__(self) -> None:
        spec = self.task.spec
        assert spec.pieces is not None
        self.pieces = spec.pieces
        self.layout = spec.pieces.layout
        self.work = self.task.work
        self.root = pieces_dir(self.task.runtime.outputs, spec.job)
        self.base = os.path.dirname(self.task.runtime.outputs)
        self.budget = max(1, spec.cpus)
        self.host = os.uname().nodename
        runtime = self.task.runtime
        if runtime.kind is not RuntimeKind.NATIVE:
            # Pieces read each other's outputs and the job's gather lists: visible read-only.
            extra = (self.root, os.path.join(self.work, REPX))
            runtime = runtime.model_copy(update={"mount_paths": runtime.mount_paths + extra})
        self.runtime = runtime
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    # -- top level --

    def run(self) -> int:
        """Scatter, branches, gather; 0 when the job's out/ is complete."""
        try:
            self._run()
        except _Failed as exc:
            self._say_failed(str(exc))
            return 1
        except _Stopped:
            self._say_failed("interrupted")
            return 128 + signal.SIGTERM
        return 0

    def _run(self) -> None:
        os.makedirs(os.path.join(self.root, ".work"), exist_ok=True)
        # We hold the job's lock: whatever is in progress there is a dead attempt's.
        for name in os.listdir(os.path.join(self.root, ".work")):
            shutil.rmtree(os.path.join(self.root, ".work", name), ignore_errors=True)
        with open(os.path.join(self.work, REPX, "inputs.json"), encoding="utf-8") as f:
            self.stage_inputs: dict[str, str] = json.load(f)
        scatter = self._scatter_piece()
        if self._done(scatter):
            print("scatter: done (kept from an earlier attempt)")
        else:
            # New work items: branches of other items must not be reused.
            for name in os.listdir(self.root):
                if _BRANCH.match(name):
                    shutil.rmtree(os.path.join(self.root, name))
            self._run_all([scatter])
        items = self._items()
        print(f"scatter: {len(items)} work item(s)")
        steps = [p for n, item in enumerate(items) for p in self._branch_pieces(n, item)]
        todo = [p for p in steps if not self._done(p)]
        kept = len(steps) - len(todo)
        print(f"branches: {len(items)}, {kept} step(s) kept from earlier attempts")
        sink = f"step-{self.layout.sink}"
        pending = {p.key for p in todo}
        self._branches_done = sum(
            1 for p in steps if p.key.endswith(f"/{sink}") and p.key not in pending
        )
        if self.pieces.slurm is not None:
            self._run_on_slurm(todo)
        else:
            self._run_all(todo)
        self._gather(len(items))

    # -- pieces --

    def _scatter_piece(self) -> _Piece:
        sc = self.layout.scatter
        inputs = {name: self._stage_input(name) for name in sc.inputs}
        return _Piece(
            "scatter",
            self.pieces.executables["scatter"],
            inputs,
            tuple(output_path(v) for v in sc.outputs.values()),
            self._cpus(sc.resources.cpus),
        )

    def _branch_pieces(self, n: int, item: JsonValue, *, prepare: bool = True) -> list[_Piece]:
        branch = os.path.join(self.root, f"branch-{n}")
        item_path = os.path.join(branch, WORK_ITEM)
        text = json.dumps(item, sort_keys=True) + "\n"
        if prepare and _read(item_path) != text:
            os.makedirs(branch, exist_ok=True)
            # A branch is its work item's: another item invalidates its steps.
            for name in os.listdir(branch):
                if name.startswith("step-"):
                    shutil.rmtree(os.path.join(branch, name))
            _write_atomic(item_path, text)
        found: list[_Piece] = []
        for step in self.layout.step_order:
            info = self.layout.steps[step]
            inputs = {
                name: self._step_input(n, item_path, name, source)
                for name, source in info.inputs.items()
            }
            found.append(
                _Piece(
                    f"branch-{n}/step-{step}",
                    self.pieces.executables[f"step-{step}"],
                    inputs,
                    tuple(output_path(v) for v in info.outputs.values()),
                    self._cpus(info.resources.cpus),
                    deps=tuple(f"branch-{n}/step-{d}" for d in info.deps),
                    branch=n,
                    step=step,
                )
            )
        return found

    def _step_input(self, n: int, item_path: str, name: str, source: PieceInput) -> str:
        if source.source == "item":
            return item_path
        if source.source == "step":
            assert source.step is not None and source.output is not None
            rel = output_path(self.layout.steps[source.step].outputs[source.output])
            return os.path.join(self.root, f"branch-{n}", f"step-{source.step}", OUT, rel)
        return self._stage_input(source.input or name)

    def _stage_input(self, name: str) -> str:
        try:
            return self.stage_inputs[name]
        except KeyError:
            raise _Failed(f"input '{name}' is not among the job's inputs") from None

    def _cpus(self, cpus: int | None) -> int:
        return min(self.budget, cpus or 1)

    def _items(self) -> list[JsonValue]:
        rel = self.layout.work_items
        path = os.path.join(self.root, "scatter", OUT, rel)
        try:
            with open(path, encoding="utf-8") as f:
                items = json.load(f)
        except (OSError, ValueError) as exc:
            raise _Failed(f"the scatter's work items ($out/{rel}) cannot be read: {exc}") from None
        if not isinstance(items, list):
            raise _Failed(f"the scatter's work items ($out/{rel}) must be a JSON list")
        return items

    def _gather(self, count: int) -> None:
        layout = self.layout
        sink = layout.steps[layout.sink]
        outs_path = os.path.join(self.work, REPX, WORKER_OUTS)

        def branch_outs(root: str) -> list[dict[str, str]]:
            return [
                {
                    name: os.path.join(
                        root, f"branch-{n}", f"step-{layout.sink}", OUT, output_path(t)
                    )
                    for name, t in sink.outputs.items()
                }
                for n in range(count)
            ]

        _write_atomic(outs_path, json.dumps(branch_outs(self.root), indent=1) + "\n")
        inputs: dict[str, str] = {}
        for name, source in layout.gather.inputs.items():
            if source.source == "branches":
                inputs[name] = outs_path
            elif source.source == "scatter":
                assert source.output is not None
                rel = output_path(layout.scatter.outputs[source.output])
                inputs[name] = os.path.join(self.root, "scatter", OUT, rel)
            else:
                inputs[name] = self._stage_input(source.input or name)
        gather = _Piece(
            "gather",
            self.pieces.executables["gather"],
            inputs,
            self.task.spec.outputs,
            self._cpus(layout.gather.resources.cpus),
        )
        self._run_all([gather])
        # The job's outputs are the gather's; the pieces join the attempt (then its commit).
        out = os.path.join(self.work, OUT)
        shutil.rmtree(out)
        os.rename(os.path.join(self.root, "gather", OUT), out)
        for name in sorted(os.listdir(self.root)):
            if name != ".work":
                os.rename(os.path.join(self.root, name), os.path.join(self.work, name))
        final = os.path.join(self.task.runtime.outputs, self.task.spec.job)
        _write_atomic(outs_path, json.dumps(branch_outs(final), indent=1) + "\n")
        shutil.rmtree(self.root, ignore_errors=True)
        print(f"gather: done ({count} branch(es))")

    # -- SLURM: one array per step --

    def _run_on_slurm(self, todo: Sequence[_Piece]) -> None:
        how = self.pieces.slurm
        assert how is not None
        by_step: dict[str, list[int]] = {}
        for piece in todo:
            assert piece.step is not None and piece.branch is not None
            by_step.setdefault(piece.step, []).append(piece.branch)
        layout = self.layout
        try:
            ids = scatter_slurm.submit_steps(
                how,
                self.task_file,
                base=self.base,
                job=self.task.spec.job,
                todo=by_step,
                order=layout.step_order,
                deps={s: layout.steps[s].deps for s in layout.steps},
                hints={s: layout.steps[s].resources for s in layout.steps},
                hold=_SIGNAL_AT == "slurm-held",
            )
        except slurm.SlurmError as exc:
            raise _Failed(f"SLURM refused the step arrays: {exc.message}") from None
        for step, slurm_id in ids.items():
            print(f"step {step}: SLURM array {slurm_id} ({len(by_step[step])} branch(es))")
        sys.stdout.flush()
        try:
            while scatter_slurm.active(list(ids.values())):
                if self.stop.requested:
                    break
                select.select([self.stop.wake_r], [], [], scatter_slurm.POLL)
        finally:
            # Whatever ends the wait (a stop, an error): no task of ours outlives it, so a
            # later attempt never runs beside them.
            scatter_slurm.cancel(ids.values())
        if self.stop.requested:
            raise _Stopped
        for piece in todo:
            if self._done(piece):
                continue
            final = os.path.join(self.root, piece.key, REPX)
            if os.path.exists(os.path.join(final, FAIL_MARKER)):
                log = os.path.join(final, "stderr.log")
                raise _Failed(f"{piece.key} failed; its log: {log}")
            raise _Failed(
                f"{piece.key} did not run (SLURM ended its task without a result; see"
                f" {os.path.join(self.base, SLURM_DIR, f'pieces-{self.task.spec.job}')})"
            )

    def run_piece(self, step: str, branch: int) -> int:
        """One piece in a SLURM array task: step ``step`` of branch ``branch``."""
        with open(os.path.join(self.work, REPX, "inputs.json"), encoding="utf-8") as f:
            self.stage_inputs = json.load(f)
        try:
            items = self._items()
            self.budget = max(1, self.layout.steps[step].resources.cpus or 1)
            pieces = self._branch_pieces(branch, items[branch], prepare=False)
            [piece] = [p for p in pieces if p.step == step]
            if self._done(piece):
                return 0
            self._run_all([piece])
        except _Failed as exc:
            print(f"repx: {exc}", file=sys.stderr, flush=True)
            return 1
        except _Stopped:
            return 128 + signal.SIGTERM
        return 0

    # -- running pieces --

    def _done(self, piece: _Piece) -> bool:
        final = os.path.join(self.root, piece.key)
        if not os.path.exists(os.path.join(final, REPX, SUCCESS_MARKER)):
            return False
        out = os.path.join(final, OUT)
        return all(os.path.exists(os.path.join(out, rel)) for rel in piece.outputs)

    def _run_all(self, pieces: Sequence[_Piece]) -> None:
        """Run ``pieces`` (dependencies first, in list order, within the budget)."""
        remaining = list(pieces)
        running: dict[int, _Running] = {}
        failure: str | None = None
        while remaining or running:
            if self.stop.requested:
                self._stop_all(running)
                raise _Stopped
            if failure is None:
                used = sum(r.piece.cpus for r in running.values())
                # a dependency still to run (again) is not done, whatever its old marker says
                unfinished = {p.key for p in remaining} | {r.piece.key for r in running.values()}
                for piece in list(remaining):
                    if used + piece.cpus > self.budget:
                        break
                    if all(d not in unfinished and self._done_key(d) for d in piece.deps):
                        remaining.remove(piece)
                        started = self._start(piece)
                        running[started.child.pid] = started
                        used += piece.cpus
            if not running:
                break
            exited = process.wait_any([r.child for r in running.values()], None, self.stop.wake_r)
            for child in exited:
                ended = running.pop(child.pid)
                why = self._finish(ended, process.reap(child))
                if why is not None and failure is None:
                    failure = why  # running pieces finish; nothing new starts
        if self.stop.requested:
            raise _Stopped
        if failure is not None:
            raise _Failed(failure)

    def _done_key(self, key: str) -> bool:
        return os.path.exists(os.path.join(self.root, key, REPX, SUCCESS_MARKER))

    def _start(self, piece: _Piece) -> _Running:
        nonce = os.urandom(6).hex()
        work = os.path.join(self.root, ".work", f"{piece.key.replace('/', '.')}.{nonce}")
        out, repx = os.path.join(work, OUT), os.path.join(work, REPX)
        os.makedirs(repx)
        for rel in piece.outputs:
            os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
        spec = self.task.spec
        shutil.copyfile(spec.parameters_file, os.path.join(repx, "parameters.json"))
        with open(os.path.join(repx, "inputs.json"), "w", encoding="utf-8") as f:
            f.write(json.dumps(piece.inputs, indent=1, sort_keys=True) + "\n")
        piece_spec = spec.model_copy(
            update={
                "executable": piece.executable,
                "inputs": piece.inputs,
                "outputs": piece.outputs,
                "pieces": None,
            }
        )
        argv, env, cwd = self.runtime.command(piece_spec, Path(work))
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        out_fd = os.open(os.path.join(repx, "stdout.log"), flags, 0o644)
        err_fd = os.open(os.path.join(repx, "stderr.log"), flags, 0o644)
        try:
            child = process.spawn(
                argv,
                env=env,
                cwd=cwd,
                stdin=self.devnull,
                stdout=out_fd,
                stderr=err_fd,
                pass_fds=(self.task.lock_fd,) if self.task.lock_fd >= 0 else (),
            )
        except OSError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise _Failed(f"{piece.key}: cannot start {piece.executable}: {exc}") from None
        finally:
            os.close(out_fd)
            os.close(err_fd)
        return _Running(piece, child, work, nonce, time.time())

    def _finish(self, ended: _Running, exit: process.Exit) -> str | None:
        """Commit an ended piece; return why it failed (None: it succeeded)."""
        piece = ended.piece
        if self.stop.requested and exit.returncode != 0:
            shutil.rmtree(ended.work, ignore_errors=True)  # stopped: not an outcome
            return "interrupted"
        code = exit.returncode
        out = os.path.join(ended.work, OUT)
        missing = [rel for rel in piece.outputs if not os.path.exists(os.path.join(out, rel))]
        if code < 0:
            why: str | None = f"killed by signal {-code}"
        elif code != 0:
            why = f"exit status {code}"
        elif missing:
            why = f"declared output(s) missing: {', '.join(missing)}"
        else:
            why = None
        result = JobResult(
            job=f"{self.task.spec.job}/{piece.key}",
            status=JobStatus.SUCCEEDED if why is None else JobStatus.FAILED,
            exit_code=code,
            reason=why,
            start=ended.start,
            end=time.time(),
            host=self.host,
            runtime=self.task.runtime.kind.value,
            lab_id=self.task.spec.lab_id,
            attempt=ended.nonce,
            cpu_seconds=round(exit.cpu_seconds, 6),
            max_rss_kib=exit.max_rss_kib,
            impure=self.task.runtime.impure,
        )
        repx = os.path.join(ended.work, REPX)
        with open(os.path.join(repx, RESULT), "w", encoding="utf-8") as f:
            f.write(result.model_dump_json(indent=1) + "\n")
        marker = SUCCESS_MARKER if why is None else FAIL_MARKER
        os.close(os.open(os.path.join(repx, marker), os.O_WRONLY | os.O_CREAT, 0o644))
        if why is not None:
            os.rename(out, os.path.join(ended.work, FAILED_OUT))
        final = os.path.join(self.root, piece.key)
        os.makedirs(os.path.dirname(final), exist_ok=True)
        if os.path.exists(final):
            trash = f"{ended.work}.old"
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
        os.rename(ended.work, final)
        print(f"{piece.key}: {'succeeded' if why is None else why}", flush=True)
        if why is not None:
            log = os.path.join(final, REPX, "stderr.log")
            # The job's own stderr shows the piece's last words (repx run prints its tail).
            tail = (_read(log) or "").splitlines()[-_TAIL:]
            sys.stderr.write("".join(f"{piece.key}: {line}\n" for line in tail))
            return f"{piece.key} failed ({why}); its log: {log}"
        if piece.key.endswith(f"/step-{self.layout.sink}"):
            self._branches_done += 1
            self._checkpoint()
        return None

    def _stop_all(self, running: Mapping[int, _Running]) -> None:
        for r in running.values():
            if not process.has_exited(r.child):
                sig = signal.SIGKILL if self.stop.requested > 1 else signal.SIGTERM
                process.signal_group(r.child, sig)
        for r in running.values():
            process.reap(r.child)
            shutil.rmtree(r.work, ignore_errors=True)

    def _checkpoint(self) -> None:
        if f"branch-done:{self._branches_done}" == _SIGNAL_AT:
            os.kill(os.getppid(), signal.SIGTERM)
            while not self.stop.requested:
                process.wait_any([], None, self.stop.wake_r)

    def _say_failed(self, why: str) -> None:
        print(f"repx: {why}", file=sys.stderr, flush=True)
        with contextlib.suppress(OSError):
            _write_atomic(os.path.join(self.work, REPX, REASON_FILE), why + "\n")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def _node_copy(spec: JobSpec) -> str | None:
    """A step task on another node: make sure it has the node-local copy of the lab the
    job runs from (None: done, or not asked for; else why not)."""
    how = spec.pieces.slurm if spec.pieces is not None else None
    if how is None or how.node_local is None:
        return None
    # imported only here: tarfile and the archive code are not needed by other pieces
    from repx.errors import RepxError  # noqa: PLC0415
    from repx.run.node_local import ensure_copy, lab_paths  # noqa: PLC0415

    where = how.node_local
    try:
        # the spec is the relocated one (the orchestrator's): its paths are in the copy
        expect = lab_paths([spec], where.path)
        ensure_copy(Path(where.archive), Path(where.root), where.lab_id, expect)
    except RepxError as exc:
        return f"node-local copy of lab {where.lab_id}: {exc.message}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m repx.run.scatter TASK.json``: run one attempt's pieces."""
    args = list(sys.argv[1:] if argv is None else argv)
    piece: tuple[str, int] | None = None
    if len(args) == 4 and args[0] == "--piece" and args[3].isdigit():
        piece = (args[2], int(args[3]))
        args = args[1:2]
    if len(args) != 1:
        sys.stderr.write(
            "usage: python -m repx.run.scatter TASK.json\n"
            "       python -m repx.run.scatter --piece TASK.json STEP BRANCH\n"
        )
        return 2
    stop = _Stop()
    previous = {s: signal.signal(s, stop.handle) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            task = OrchestratorTask.model_validate_json(Path(args[0]).read_bytes())
        except (OSError, ValidationError) as exc:
            sys.stderr.write(f"repx scatter: cannot read {args[0]}: {exc}\n")
            return 2
        if piece is None:
            return Orchestrator(task, stop, args[0]).run()
        # an array task: the job's lock is the orchestrator's (it waits for us)
        task = task.model_copy(update={"lock_fd": -1})
        if (problem := _node_copy(task.spec)) is not None:
            sys.stderr.write(f"repx scatter: {problem}\n")
            return 2
        return Orchestrator(task, stop, args[0]).run_piece(*piece)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
