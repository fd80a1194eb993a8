"""Reporters: plain lines, JSON lines, the summary text, the rich display."""

from __future__ import annotations

import io
import json

from rich.console import Console

from repx.inspect.params import swept_by_stage
from repx.lab.loader import open_lab
from repx.run.events import FailedJob, JobBlocked, JobFinished, JobStarted, RunPlanned, RunSummary
from repx.run.reporter import (
    JsonReporter,
    PlainReporter,
    RecordingReporter,
    RichReporter,
    format_summary,
)
from repx.run.store_models import JobStatus

PLAN = RunPlanned(
    lab="/lab",
    lab_id="l",
    base="/b",
    runtime="bwrap",
    concurrency=2,
    selected=3,
    cached=1,
    to_run=2,
)
EVENTS = [
    PLAN,
    JobStarted(job="j1", stage="s", params={"seed": 2, "n": 500}),
    JobFinished(
        job="j1",
        stage="s",
        params={"seed": 2, "n": 500},
        status=JobStatus.FAILED,
        exit_code=3,
        reason="exit status 3",
        seconds=0.5,
    ),
    JobBlocked(job="j2", stage="s", params={"label": "a b"}, cause="j1 did not succeed"),
]
SUMMARY = RunSummary(
    lab="/lab",
    base="/b",
    outputs="/b/outputs",
    selected=3,
    cached=1,
    succeeded=0,
    failed=(
        FailedJob(
            job="j1",
            stage="s",
            params={"n": 500, "noise": 2, "seed": 2},
            status=JobStatus.FAILED,
            exit_code=3,
            reason="exit status 3",
            log="/b/outputs/j1/repx/stderr.log",
            stderr_tail=("oops",),
        ),
    ),
    blocked=1,
    seconds=1.25,
)


def test_plain_reporter():
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    for event in [*EVENTS, SUMMARY]:
        reporter.handle(event)
    text = stream.getvalue()
    assert "3 job(s) selected: 1 already done, 2 to run (runtime bwrap, -j 2" in text
    # parameters wherever a job is named
    assert "[1/2] FAILED j1 seed=2 n=500 0.5s (exit status 3)" in text
    assert '[2/2] blocked j2 label="a b" (j1 did not succeed)' in text
    assert "failed: s n=500 noise=2 seed=2: exit 3 — oops\n  job: j1\n" in text
    assert "  | oops" in text and "results: /b/outputs" in text


def test_json_reporter_one_event_per_line():
    stream = io.StringIO()
    reporter = JsonReporter(stream)
    for event in [*EVENTS, SUMMARY]:
        reporter.handle(event)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [e["event"] for e in lines] == ["plan", "started", "finished", "blocked", "summary"]
    assert lines[2]["status"] == "failed" and lines[2]["exit_code"] == 3


def test_summary_exit_codes():
    assert SUMMARY.exit_code == 1
    ok = SUMMARY.model_copy(update={"failed": (), "blocked": 0})
    assert ok.exit_code == 0
    assert SUMMARY.model_copy(update={"interrupted": True}).exit_code == 130
    text = format_summary(SUMMARY)
    assert text.startswith("0 succeeded, 1 failed, 1 blocked, 1 already done in 1.2 s")
    assert "failed: s n=500 noise=2 seed=2: exit 3 — oops" in text
    assert "log: /b/outputs/j1/repx/stderr.log" in text


def test_recording_reporter():
    reporter = RecordingReporter()
    for event in EVENTS:
        reporter.handle(event)
    reporter.close()
    assert reporter.closed
    assert reporter.of_type(JobBlocked) == [EVENTS[3]]


def test_rich_reporter_draws_and_summarises():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    reporter = RichReporter(console)
    for event in EVENTS:
        reporter.handle(event)
    rendered = reporter._render()
    assert "2/2" in rendered.plain and "failed 1" in rendered.plain
    reporter.handle(SUMMARY)
    assert "results: /b/outputs" in buffer.getvalue()
    assert reporter._live is None


def _unsuccessful(job, status, reason):
    return FailedJob(job=job, stage="s", status=status, exit_code=None, reason=reason, log=None)


def test_interrupted_jobs_are_not_counted_as_failures():
    """A job repx stopped is listed and counted apart from a job that failed on its own,
    in the summary line, the model (--json) and the progress counters."""
    summary = RunSummary(
        lab="/lab",
        base="/b",
        outputs="/b/outputs",
        selected=3,
        cached=0,
        succeeded=1,
        failed=(
            _unsuccessful("j1", JobStatus.FAILED, "exit status 3"),
            _unsuccessful("j2", JobStatus.INTERRUPTED, "interrupted"),
        ),
        interrupted=True,
    )
    assert [f.job for f in summary.failed] == ["j1"]
    assert [f.job for f in summary.interrupted_jobs] == ["j2"]
    dumped = json.loads(summary.model_dump_json())
    assert [f["job"] for f in dumped["failed"]] == ["j1"]
    assert [f["job"] for f in dumped["interrupted_jobs"]] == ["j2"]
    assert RunSummary.model_validate(dumped) == summary  # read back unchanged
    text = format_summary(summary)
    assert text.startswith("interrupted: 1 succeeded, 1 failed, 1 interrupted, 0 already done")
    assert "failed: s\n  job: j1" in text and "interrupted: j2 (stage s)" in text
    only_stopped = RunSummary(
        lab="/lab",
        base="/b",
        outputs="/o",
        selected=1,
        cached=0,
        succeeded=0,
        failed=(_unsuccessful("j2", JobStatus.INTERRUPTED, "interrupted"),),
    )
    assert only_stopped.exit_code == 1 and not only_stopped.failed

    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.handle(PLAN)
    reporter.handle(
        JobFinished(
            job="j2",
            stage="s",
            status=JobStatus.INTERRUPTED,
            exit_code=-15,
            reason="interrupted",
            seconds=0.1,
        )
    )
    assert (reporter.counts.failed, reporter.counts.interrupted) == (0, 1)
    assert "[1/2] INTERRUPTED j2" in stream.getvalue()
    rich = RichReporter(Console(file=io.StringIO(), force_terminal=True, width=100))
    rich.handle(PLAN)
    rich.handle(
        JobFinished(
            job="j2",
            stage="s",
            status=JobStatus.INTERRUPTED,
            exit_code=-15,
            reason="interrupted",
            seconds=0.1,
        )
    )
    rendered = rich._render().plain
    rich.close()
    assert "failed 0" in rendered and "interrupted 1" in rendered


def test_jobs_are_named_by_the_parameters_that_tell_them_apart():
    """With the plan's ``swept`` names, a constant parameter (a store path, a fixed size)
    is left out of progress lines and failure summaries; the events keep all of them."""
    plan = EVENTS[0].model_copy(update={"swept": {"s": ("seed",)}})
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    for event in [plan, *EVENTS[1:], SUMMARY]:
        reporter.handle(event)
    text = stream.getvalue()
    assert "[1/2] FAILED j1 seed=2 0.5s (exit status 3)" in text
    assert "failed: s seed=2: exit 3 — oops" in text
    assert "[2/2] blocked j2 (j1 did not succeed)" in text  # its label is the same for all
    # a stage the plan does not name: all of a job's parameters (as without swept)
    other = format_summary(SUMMARY, {"t": ("seed",)})
    assert "failed: s n=500 noise=2 seed=2: exit 3" in other


def test_swept_by_stage_names_what_varies_within_each_stage(factory_lab):
    lab = open_lab(factory_lab.root)
    simulate = factory_lab.stage_jobs[("simulation", "simulate")]
    swept = swept_by_stage(lab, simulate[:1])
    stage = lab.jobs[simulate[0]].stage
    assert set(swept) == {stage}
    assert set(swept[stage]) == {"seed", "noise"}
