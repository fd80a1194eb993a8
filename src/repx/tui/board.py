"""What ``repx tui`` shows and does, without textual: the board's model.

The lab is opened once (:class:`repx.services.status.StatusSource`); each :meth:`Board.refresh`
takes one snapshot from the state owner (:func:`repx.inspect.status.read_status`) and says
which jobs changed state, so that the app redraws only those. Logs are followed by offset
(:class:`LogTail`). Cancel and rerun call the services ``repx cancel`` and ``repx run
--force`` use (:mod:`repx.services.cancel`, :func:`repx.services.run.run_lab`).
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Final

from repx.config import RuntimeKind
from repx.inspect.status import FINISHED, JobState, StatusView
from repx.inspect.view import LabView
from repx.run.events import RunSummary
from repx.run.reporter import NullReporter
from repx.run.scheduler import Interrupts
from repx.run.spec import effective_params
from repx.run.store import Store
from repx.services import cancel
from repx.services.location import Location
from repx.services.run import RunOptions, current_log, run_lab
from repx.services.status import StatusSource

if TYPE_CHECKING:
    from pathlib import Path

    from pydantic import JsonValue

#: Bytes of a log shown when a job is selected (then it is followed from there).
TAIL_BYTES: Final = 64 * 1024
#: States a rerun may start from (nothing of the job is running or queued).
RERUNNABLE: Final = FINISHED


@dataclass(frozen=True)
class StageRow:
    """A stage of a run on the board, with its jobs in pipeline order."""

    run: str
    stage: str
    jobs: tuple[str, ...]
    #: parameters whose value differs between the stage's jobs (shown beside each job)
    swept: tuple[str, ...]


@dataclass(frozen=True)
class RunRow:
    """A run on the board, with its stages in pipeline order."""

    run: str
    stages: tuple[StageRow, ...]

    @property
    def jobs(self) -> tuple[str, ...]:
        """Every job of the run."""
        return tuple(job for stage in self.stages for job in stage.jobs)


class Board:
    """The runs, stages and jobs of a lab with their live state."""

    def __init__(
        self, where: Location, run: str | None = None, runtime: RuntimeKind | None = None
    ) -> None:
        self.where = where
        self.runtime = runtime
        self.source = StatusSource(where, run)
        self.lab = self.source.lab
        self.labview = LabView(self.lab)
        self.base: Path = self.source.base
        self.store = Store.existing(self.base)
        self.runs = self._layout()
        self.view: StatusView = self.source.view()
        self.reruns: dict[str, Rerun] = {}

    # -- layout -------------------------------------------------------------------------

    def _layout(self) -> tuple[RunRow, ...]:
        jobs_of: dict[str, dict[str, list[str]]] = {}
        for run, job in self.source.rows:
            jobs_of.setdefault(run, {}).setdefault(self.lab.facts[job].stage, []).append(job)
        rows = []
        for run in self.source.runs:
            stages = jobs_of.get(run, {})
            ordered = [s for s in self.labview.stages(run) if s in stages]
            ordered += [s for s in stages if s not in ordered]
            rows.append(
                RunRow(
                    run,
                    tuple(
                        StageRow(run, s, tuple(stages[s]), self._swept(stages[s])) for s in ordered
                    ),
                )
            )
        return tuple(rows)

    def _swept(self, jobs: list[str]) -> tuple[str, ...]:
        seen: dict[str, set[str]] = {}
        for job in jobs:
            for name, value in self.params(job).items():
                seen.setdefault(name, set()).add(repr(value))
        return tuple(name for name, values in seen.items() if len(values) > 1)

    # -- state --------------------------------------------------------------------------

    def refresh(self) -> set[str]:
        """Take a new snapshot; the jobs whose state or reason changed."""
        old, new = self.view, self.source.view()
        self.view = new
        return {
            job
            for _, job in self.source.rows
            if old.state(job) is not new.state(job) or old.reason(job) != new.reason(job)
        }

    def state(self, job: str) -> JobState:
        """The job's state in the last snapshot."""
        return self.view.state(job)

    def counts(self, jobs: tuple[str, ...]) -> dict[JobState, int]:
        """How many of ``jobs`` are in each state."""
        return self.view.counts(jobs)

    @property
    def finished(self) -> bool:
        """True when no job shown can change without a new run."""
        return all(self.view.state(job) in FINISHED for _, job in self.source.rows)

    def params(self, job: str) -> dict[str, JsonValue]:
        """The job's effective parameters (its own and inherited)."""
        return effective_params(self.lab, job)

    def short(self, job: str) -> str:
        """The job's short id (a unique prefix)."""
        return self.labview.short_id(job)

    def run_of(self, job: str) -> str:
        """The run the job is shown under (its first)."""
        return self._run_of[job]

    @functools.cached_property
    def _run_of(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for run, job in self.source.rows:
            found.setdefault(job, run)
        return found

    def run_row(self, run: str) -> RunRow:
        """The board's row of ``run``."""
        return next(r for r in self.runs if r.run == run)

    def stage_row(self, run: str, stage: str) -> StageRow:
        """The board's row of a stage of ``run``."""
        return next(s for s in self.run_row(run).stages if s.stage == stage)

    # -- actions ------------------------------------------------------------------------

    def cancel_job(self, job: str) -> cancel.Stopped:
        """Stop the job (SIGTERM to its processes, or scancel)."""
        return cancel.cancel_job(self.base, job)

    def cancel_run(self, run: str) -> cancel.Stopped:
        """Stop what runs the jobs of ``run`` (as Ctrl-C of its ``repx run``), the reruns
        of its jobs started here included."""
        jobs = self.run_row(run).jobs
        stopped = cancel.cancel_run(self.base, jobs)
        mine = tuple(j for j in jobs if (r := self.reruns.get(j)) is not None and r.running)
        for job in mine:
            self.reruns[job].stop()
        return stopped if not mine else replace(stopped, reruns=mine)

    def rerun(self, job: str, done: Callable[[Rerun], None] | None = None) -> Rerun:
        """Run ``job`` again (``repx run --force JOB``: with what it needs that is not
        done) in a thread; ``done`` is called from that thread when it ends."""
        rerun = Rerun(self, job, done)
        self.reruns[job] = rerun
        rerun.start()
        return rerun

    def stop_reruns(self) -> None:
        """Stop the reruns in progress (their jobs are recorded interrupted) and wait."""
        for rerun in self.reruns.values():
            rerun.stop()
        for rerun in self.reruns.values():
            rerun.join()

    def log(self, job: str, *, stderr: bool) -> LogTail:
        """A follower of the job's stdout (or stderr) log."""
        return LogTail(self.store, job, stderr=stderr)


@dataclass
class Rerun:
    """``repx run --force JOB`` in a thread of this process."""

    board: Board
    job: str
    done: Callable[[Rerun], None] | None = None
    summary: RunSummary | None = None
    error: str | None = None
    _interrupts: Interrupts = field(default_factory=Interrupts)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the run."""
        self._thread = threading.Thread(target=self._run, name=f"rerun-{self.job}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """True until the run has ended."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """Stop it as Ctrl-C stops ``repx run``."""
        self._interrupts.request()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the run to end."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        from repx.errors import RepxError  # noqa: PLC0415

        options = RunOptions(
            where=self.board.where, selectors=(self.job,), force=True, runtime=self.board.runtime
        )
        try:
            with self._interrupts.opened() as stops:
                self.summary = run_lab(options, NullReporter(), interrupts=stops)
        except RepxError as exc:
            self.error = exc.message
        except Exception as exc:  # a thread must report, not die silently
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if self.done is not None:
                self.done(self)

    def describe(self) -> str:
        """One line: how it ended."""
        if self.error is not None:
            return f"rerun failed: {self.error}"
        summary = self.summary
        if summary is None:
            return "rerun did not run"
        if summary.failed:
            first = summary.failed[0]
            return f"rerun: {first.job} failed again ({first.reason or first.status})"
        if summary.interrupted:
            return "rerun stopped"
        return f"rerun: {summary.succeeded} job(s) succeeded"


class LogTail:
    """Follows a job's log: the tail at first, then what is appended.

    The file followed is the running attempt's, else the committed one's
    (:func:`repx.services.run.current_log`); when it changes (the attempt committed, a
    new attempt started) the tail is read again from the new file.
    """

    def __init__(self, store: Store, job: str, *, stderr: bool) -> None:
        self.store = store
        self.job = job
        self.stderr = stderr
        self.path: Path | None = None
        self.running = False
        self._offset = 0
        self._partial = b""

    def read(self) -> tuple[bool, list[str]]:
        """(True when the lines shown must be cleared first, the new complete lines)."""
        found = current_log(self.store, self.job, stderr=self.stderr)
        path = found.path if found is not None else None
        self.running = found.running if found is not None else False
        reset = path != self.path
        if reset:
            self.path, self._offset, self._partial = path, 0, b""
        if path is None:
            return reset, []
        try:
            with path.open("rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self._offset:  # truncated: start again
                    reset, self._offset, self._partial = True, 0, b""
                mid_line = reset and size > TAIL_BYTES
                if mid_line:
                    self._offset = size - TAIL_BYTES
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return reset, []
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if mid_line and lines:
            lines = lines[1:]  # the tail starts within a line
        if not self.running and self._partial:
            lines.append(self._partial)  # a finished log's last line has no newline
            self._partial = b""
        return reset, [line.decode("utf-8", "replace") for line in lines]


def format_params(params: Mapping[str, JsonValue], names: tuple[str, ...] | None = None) -> str:
    """``seed=3 noise=0.1`` (only ``names`` when given)."""
    keys = names if names is not None else tuple(params)
    return " ".join(f"{k}={_value(params[k])}" for k in keys if k in params)


def _value(value: JsonValue) -> str:
    if isinstance(value, str):
        return value
    import json  # noqa: PLC0415

    return json.dumps(value)
