"""Reporters: turn run events into a live display, plain lines, JSON lines, or a list.

Events are cheap to handle (counters and one write at most); the rich display redraws on
its own thread a few times a second, so a fast run does not pay for drawing per job.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Final, Protocol

from repx.run.events import (
    Event,
    JobBlocked,
    JobFinished,
    JobsSubmitted,
    JobStarted,
    JobWaiting,
    LabSynced,
    Notice,
    RunPlanned,
    RunSummary,
)
from repx.run.store_models import JobStatus

if TYPE_CHECKING:
    from pydantic import JsonValue
    from rich.console import Console, RenderableType
    from rich.live import Live


class Reporter(Protocol):
    """Receives every event of a run, in order."""

    def handle(self, event: Event) -> None:
        """Take one event."""

    def close(self) -> None:
        """The run is over (stop any display)."""


class NullReporter:
    """Ignores everything."""

    def handle(self, event: Event) -> None:
        """Ignore ``event``."""

    def close(self) -> None:
        """Nothing to close."""


class RecordingReporter:
    """Keeps every event (for tests)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False

    def handle(self, event: Event) -> None:
        """Record ``event``."""
        self.events.append(event)

    def close(self) -> None:
        """Note that the run is over."""
        self.closed = True

    def of_type(self, kind: type[Event]) -> list[Event]:
        """The recorded events of one type."""
        return [e for e in self.events if isinstance(e, kind)]


class JsonReporter:
    """One JSON object per event and line (``--json``)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout

    def handle(self, event: Event) -> None:
        """Write ``event`` as one line."""
        self.stream.write(event.model_dump_json() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Flush the stream."""
        self.stream.flush()


class _Counts:
    """Progress counters shared by the human reporters."""

    def __init__(self) -> None:
        self.to_run = 0
        self.succeeded = 0
        self.failed = 0
        #: stopped by repx (Ctrl-C, a signal, scancel): not a failure of the job
        self.interrupted = 0
        self.blocked = 0
        self.started_at = time.monotonic()
        self.running: dict[str, tuple[str, float]] = {}  # job -> (stage, start)
        self.waiting: set[str] = set()
        #: stage -> the parameters that tell its jobs apart (RunPlanned.swept)
        self.swept: Mapping[str, tuple[str, ...]] = {}

    def update(self, event: Event) -> None:
        if isinstance(event, RunPlanned):
            self.to_run = event.to_run
            self.started_at = time.monotonic()
            self.swept = event.swept
        elif isinstance(event, JobStarted):
            self.waiting.discard(event.job)
            shown = _shown(self.swept, event.stage, event.params)
            self.running[event.job] = (_named(event.stage, shown), time.monotonic())
        elif isinstance(event, JobWaiting):
            self.waiting.add(event.job)
        elif isinstance(event, JobFinished):
            self.running.pop(event.job, None)
            self.waiting.discard(event.job)
            if event.status is JobStatus.SUCCEEDED:
                self.succeeded += 1
            elif event.status is JobStatus.INTERRUPTED:
                self.interrupted += 1
            else:
                self.failed += 1
        elif isinstance(event, JobBlocked):
            self.blocked += 1

    @property
    def finished(self) -> int:
        return self.succeeded + self.failed + self.interrupted + self.blocked

    @property
    def pending(self) -> int:
        return max(0, self.to_run - self.finished - len(self.running) - len(self.waiting))

    def eta(self) -> float | None:
        done = self.succeeded + self.failed + self.interrupted
        if done == 0:
            return None
        elapsed = time.monotonic() - self.started_at
        left = self.to_run - self.finished
        return elapsed / done * left


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class PlainReporter:
    """One line per finished or blocked job, on stderr (for logs and non-terminals)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self.counts = _Counts()

    def handle(self, event: Event) -> None:
        """Print what matters about ``event``."""
        self.counts.update(event)
        write = self.stream.write
        if isinstance(event, RunPlanned):
            write(_plan_line(event) + "\n")
        elif isinstance(event, JobFinished):
            c = self.counts
            word = "done" if event.status is JobStatus.SUCCEEDED else event.status.value.upper()
            extra = f" ({event.reason})" if event.reason else ""
            other = " [by another run]" if event.adopted else ""
            job = _named(event.job, _shown(c.swept, event.stage, event.params))
            write(f"[{c.finished}/{c.to_run}] {word} {job} {event.seconds:.1f}s{extra}{other}\n")
        elif isinstance(event, JobBlocked):
            c = self.counts
            job = _named(event.job, _shown(c.swept, event.stage, event.params))
            write(f"[{c.finished}/{c.to_run}] blocked {job} ({event.cause})\n")
        elif isinstance(event, JobWaiting):
            write(f"waiting for {event.job}: held by another repx run ({event.holder})\n")
        elif isinstance(event, JobsSubmitted):
            write(submitted_line(event) + "\n")
        elif isinstance(event, LabSynced):
            write(synced_line(event) + "\n")
        elif isinstance(event, Notice):
            write(f"warning: {event.message}\n")
        elif isinstance(event, RunSummary):
            write(format_summary(event, self.counts.swept))
        self.stream.flush()

    def close(self) -> None:
        """Flush the stream."""
        self.stream.flush()


class RichReporter:
    """A live display on a terminal: counts, elapsed time, ETA and the running jobs."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.counts = _Counts()
        self._live: Live | None = None

    def handle(self, event: Event) -> None:
        """Update counters; print plans, failures, warnings and the summary."""
        self.counts.update(event)
        if isinstance(event, RunPlanned):
            self.console.print(_plan_line(event), markup=False, highlight=False)
            if event.to_run:
                self._start_live()
        elif isinstance(event, JobFinished) and event.status is not JobStatus.SUCCEEDED:
            reason = f": {event.reason}" if event.reason else ""
            color = "yellow" if event.status is JobStatus.INTERRUPTED else "red"
            from rich.markup import escape  # noqa: PLC0415 (only on terminals)

            job = escape(_named(event.job, _shown(self.counts.swept, event.stage, event.params)))
            self.console.print(
                f"[{color}]{event.status.value}[/{color}] {job}{escape(reason)}", highlight=False
            )
        elif isinstance(event, LabSynced):
            self.console.print(synced_line(event), markup=False, highlight=False)
        elif isinstance(event, Notice):
            self.console.print(f"[yellow]warning:[/yellow] {event.message}", highlight=False)
        elif isinstance(event, JobsSubmitted):
            self.console.print(submitted_line(event), markup=False, highlight=False)
        elif isinstance(event, JobWaiting):
            self.console.print(
                f"waiting for {event.job}: held by another repx run ({event.holder})",
                markup=False,
                highlight=False,
            )
        elif isinstance(event, RunSummary):
            self.close()
            self.console.print(
                format_summary(event, self.counts.swept),
                markup=False,
                highlight=False,
                end="",
                soft_wrap=True,
            )

    def close(self) -> None:
        """Stop the live display."""
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _start_live(self) -> None:
        from rich.live import Live  # noqa: PLC0415 (only on terminals)

        self._live = Live(
            _Display(self.counts, self._render),
            console=self.console,
            refresh_per_second=4,
            transient=True,
        )
        self._live.start()

    def _render(self) -> RenderableType:
        from rich.text import Text  # noqa: PLC0415

        c = self.counts
        now = time.monotonic()
        eta = c.eta()
        text = Text()
        text.append(f"{c.finished}/{c.to_run} ", style="bold")
        text.append(f"done {c.succeeded}", style="green")
        text.append(f" · running {len(c.running)}", style="cyan")
        text.append(f" · failed {c.failed}", style="red" if c.failed else "")
        if c.interrupted:
            text.append(f" · interrupted {c.interrupted}", style="yellow")
        text.append(f" · blocked {c.blocked}", style="yellow" if c.blocked else "")
        text.append(f" · pending {c.pending}")
        if c.waiting:
            text.append(f" · waiting on another run {len(c.waiting)}")
        text.append(f" · {_clock(now - c.started_at)}")
        if eta is not None:
            text.append(f" · ETA {_clock(eta)}")
        for job, (stage, start) in list(c.running.items())[:8]:
            text.append(f"\n  {job[:12]}…-{stage} {now - start:.0f}s", style="dim")
        return text


class _Display:
    """A renderable that asks for fresh content at every refresh."""

    def __init__(self, counts: _Counts, render: Callable[[], RenderableType]) -> None:
        self.counts = counts
        self.render = render

    def __rich__(self) -> RenderableType:
        return self.render()


def _format_dry_run(summary: RunSummary) -> str:
    """Counts per stage, then each job that would run: its parameters and why."""
    lines = [
        f"dry run: {len(summary.would_run)} of {summary.selected} selected job(s) would run,"
        f" {summary.cached} already done"
    ]
    for stage in summary.stages:
        lines.append(f"  {stage.run}/{stage.stage}: {stage.to_run} to run, {stage.cached} done")
    if summary.plan:
        lines.append("")
    for job in summary.plan:
        # a gather job holds every value of a sweep: the first ones are enough here
        words = [job.stage]
        for name, value in job.effective_params.items():
            if isinstance(value, list) and len(value) > 3:
                words.append(f"{name}={{{','.join(_value(v) for v in value[:3])},…}}")
            else:
                words.append(f"{name}={_value(value)}")
        lines.append(f"{' '.join(words)}  [{job.cause}] {job.reason}")
        lines.append(f"  job: {job.short_id}  run: {job.run}")
    if not summary.plan:  # a summary made without the plan (older callers)
        lines += [f"  {job}" for job in summary.would_run]
    return "\n".join(lines) + "\n"


def _shown(
    swept: Mapping[str, tuple[str, ...]], stage: str, params: Mapping[str, JsonValue]
) -> Mapping[str, JsonValue]:
    """The parameters a job of ``stage`` is named by: those that tell the stage's jobs apart
    (a constant such as a store path would only make the line long); all when unknown."""
    names = swept.get(stage)
    if names is None:
        return params
    return {name: params[name] for name in names if name in params}


def _named(name: str, params: Mapping[str, JsonValue]) -> str:
    """``name seed=2 n=500``: a job (or stage) with its effective parameters."""
    if not params:
        return name
    return name + " " + " ".join(f"{k}={_value(v)}" for k, v in params.items())


def _value(value: JsonValue) -> str:
    """A value as one unambiguous word: plain strings bare, others (spaces…) as JSON."""
    if isinstance(value, str) and _BARE.fullmatch(value):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_BARE: Final = re.compile(r"[\w.+/:@%-]+")


def synced_line(event: LabSynced) -> str:
    """``synced lab to target 'x': 12 file(s), 3.4 KiB sent (0.5 s)``."""
    return (
        f"synced lab to target '{event.target}': {event.files} file(s),"
        f" {event.bytes_sent} bytes sent ({event.seconds:.1f} s)"
    )


def _plan_line(event: RunPlanned) -> str:
    line = _plan_text(event)
    if event.node_local is not None:
        where = "each node's copy" if event.slurm_target is not None else "its node-local copy"
        line += f"; jobs read the lab from {where}, {event.node_local}"
    return line


def _plan_text(event: RunPlanned) -> str:
    if event.ssh_target is not None:
        return (
            f"{event.selected} job(s) selected: {event.cached} already done,"
            f" {event.to_run} to run (SSH target {event.ssh_target}, runtime {event.runtime},"
            f" -j {event.concurrency}, base {event.base})"
        )
    if event.slurm_target is not None:
        return (
            f"{event.selected} job(s) selected: {event.cached} already done,"
            f" {event.to_run} to run (SLURM target {event.slurm_target}, runtime"
            f" {event.runtime}, base {event.base})"
        )
    return (
        f"{event.selected} job(s) selected: {event.cached} already done, {event.to_run} to run"
        f" (runtime {event.runtime}, -j {event.concurrency}, base {event.base})"
    )


def submitted_line(event: JobsSubmitted) -> str:
    """``submitted SLURM job 123: stage simulate, array 0-5 (6 jobs), after afterok:122``."""
    shape = f"array {event.array} ({event.jobs} jobs" if event.array else f"{event.jobs} job"
    if event.array and event.bundle > 1:
        shape += f", up to {event.bundle} per task"
    shape += ")" if event.array else ""
    after = f", {event.dependency}" if event.dependency else ""
    return f"submitted SLURM job {event.slurm_id}: stage {event.stage}, {shape}{after}"


def format_summary(summary: RunSummary, swept: Mapping[str, tuple[str, ...]] | None = None) -> str:
    """The human summary of a run: counts, each failed job with its log, where results are.

    ``swept``: per stage, the parameters a failed job is named by (default: all of its own)."""
    lines: list[str] = []
    if summary.submitted_only and summary.ssh_target is not None:
        t = summary.ssh_target
        lines.append(
            f"{summary.selected - summary.cached} job(s) started on SSH target {t}"
            f" (submission {summary.submission}), {summary.cached} already done"
            f" in {summary.seconds:.1f} s"
        )
        lines.append(
            f"follow with `repx status --target {t}` (or `repx log --target {t} -f JOB`),"
            f" cancel with `repx cancel --target {t}`, fetch results with"
            f" `repx pull --target {t}`"
        )
        lines.append(f"results (on {t}): {summary.outputs}")
        return "\n".join(lines) + "\n"
    if summary.submitted_only:
        ids = " ".join(summary.slurm_ids) or "none"
        lines.append(
            f"{summary.selected - summary.cached} job(s) queued in SLURM"
            f" ({len(summary.slurm_ids)} sbatch call(s): {ids}), {summary.cached} already done"
            f" in {summary.seconds:.1f} s"
        )
        lines.append("follow with `repx status`, cancel with `repx cancel`")
        lines.append(f"results: {summary.outputs}")
        return "\n".join(lines) + "\n"
    if summary.dry_run:
        return _format_dry_run(summary)
    parts = [f"{summary.succeeded} succeeded"]
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    if summary.interrupted_jobs:
        parts.append(f"{len(summary.interrupted_jobs)} interrupted")
    if summary.blocked:
        parts.append(f"{summary.blocked} blocked")
    if summary.not_started:
        parts.append(f"{summary.not_started} not started")
    parts.append(f"{summary.cached} already done")
    head = ", ".join(parts) + f" in {summary.seconds:.1f} s"
    if summary.interrupted:
        head = "interrupted: " + head
    lines.append(head)
    for failed in summary.failed:
        # "fit n=500 seed=2: exit 3 — the last stderr line": what failed, in the user's terms
        what = _named(failed.stage, _shown(swept or {}, failed.stage, failed.params))
        code = f": exit {failed.exit_code}" if failed.exit_code is not None else ""
        last = f" — {failed.stderr_tail[-1]}" if failed.stderr_tail else ""
        lines.append(f"{failed.status.value}: {what}{code}{last}")
        lines.append(f"  job: {failed.job}")
        if failed.reason:
            lines.append(f"  reason: {failed.reason}")
        if failed.log:
            lines.append(f"  log: {failed.log}")
        lines += [f"  | {line}" for line in failed.stderr_tail]
    for stopped in summary.interrupted_jobs:
        # stopped by repx: the job's own log says nothing about why, so none is shown
        lines.append(f"interrupted: {stopped.job} (stage {stopped.stage})")
    if summary.interrupted_jobs:
        lines.append("  (stopped, not failed: running again finishes them)")
    lines.append(f"results: {summary.outputs}")
    return "\n".join(lines) + "\n"
