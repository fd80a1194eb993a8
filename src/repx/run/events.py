"""Progress events of a run and its summary (also the ``--json`` stream, one per line)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, JsonValue, model_validator

from repx.run.store_models import JobStatus


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunPlanned(_Event):
    """The run is about to start: what was selected and what is left to do."""

    event: Literal["plan"] = "plan"
    lab: str
    lab_id: str
    base: str
    runtime: str
    concurrency: int
    selected: int
    cached: int
    to_run: int
    #: the SLURM target the jobs go to (None: they run here)
    slurm_target: str | None = None
    #: per stage, the parameters that tell its jobs apart (the events carry all of them;
    #: a job is named by these in progress lines and failure summaries)
    swept: dict[str, tuple[str, ...]] = {}
    #: ``artifact_store = "node-local"``: the copy of the lab jobs read (on each node)
    node_local: str | None = None
    #: the SSH target the jobs go to (docs/remote.md)
    ssh_target: str | None = None


class LabSynced(_Event):
    """What an SSH target lacked of the lab was copied there (rsync's figures)."""

    event: Literal["synced"] = "synced"
    target: str
    bytes_sent: int
    files: int
    seconds: float


class JobsSubmitted(_Event):
    """One sbatch call: jobs of one stage went to SLURM (an array, or a single job)."""

    event: Literal["submitted"] = "submitted"
    slurm_id: str
    stage: str
    jobs: int
    #: the ``--array`` indices (None: a single job)
    array: str | None = None
    dependency: str | None = None
    #: jobs each array task runs one after another
    bundle: int = 1


class JobStarted(_Event):
    """A job's process started."""

    event: Literal["started"] = "started"
    job: str
    stage: str
    params: dict[str, JsonValue] = {}


class JobWaiting(_Event):
    """A job is being run by another process; this run waits for its result."""

    event: Literal["waiting"] = "waiting"
    job: str
    stage: str
    holder: str


class JobFinished(_Event):
    """A job ended (``adopted``: the result came from another repx run)."""

    event: Literal["finished"] = "finished"
    job: str
    stage: str
    params: dict[str, JsonValue] = {}
    status: JobStatus
    exit_code: int | None
    reason: str | None
    seconds: float
    adopted: bool = False


class JobBlocked(_Event):
    """A job will not run because a job it needs did not succeed."""

    event: Literal["blocked"] = "blocked"
    job: str
    stage: str
    params: dict[str, JsonValue] = {}
    cause: str


class Notice(_Event):
    """A warning for the user (e.g. a job larger than the machine)."""

    event: Literal["warning"] = "warning"
    message: str


class FailedJob(BaseModel):
    """A job that did not succeed, for the summary."""

    model_config = ConfigDict(frozen=True)

    job: str
    stage: str
    params: dict[str, JsonValue] = {}
    status: JobStatus
    exit_code: int | None
    reason: str | None
    log: str | None
    stderr_tail: tuple[str, ...] = ()


class PlannedStage(BaseModel):
    """``repx run --dry-run``: the jobs of one stage of a run."""

    model_config = ConfigDict(frozen=True)

    run: str
    stage: str
    selected: int
    cached: int
    to_run: int


class PlannedJob(BaseModel):
    """``repx run --dry-run``: a job that would run, and why (the fields of ``repx list
    jobs --json`` for the job; ``cause`` is one of :class:`repx.inspect.status.RunCause`)."""

    model_config = ConfigDict(frozen=True)

    id: str
    short_id: str
    run: str
    stage: str
    params: dict[str, JsonValue] = {}
    effective_params: dict[str, JsonValue] = {}
    cause: str
    reason: str


class RunSummary(_Event):
    """The end of a run.

    ``failed`` lists the jobs that failed on their own (they ran and failed, or could not
    start); ``interrupted_jobs`` those that repx stopped (Ctrl-C, a signal, ``scancel``):
    a stopped job says nothing about the job itself. Unsuccessful jobs passed in
    ``failed`` are sorted into the two by their status.
    """

    event: Literal["summary"] = "summary"
    lab: str
    base: str
    outputs: str
    selected: int
    cached: int
    succeeded: int
    failed: tuple[FailedJob, ...] = ()
    interrupted_jobs: tuple[FailedJob, ...] = ()
    blocked: int = 0
    not_started: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    dry_run: bool = False
    would_run: tuple[str, ...] = ()
    #: dry run: per stage, how many jobs would run
    stages: tuple[PlannedStage, ...] = ()
    #: dry run: every job that would run, with its parameters and why
    plan: tuple[PlannedJob, ...] = ()
    #: SLURM ids of the sbatch calls of this run (jobs queued or running there)
    slurm_ids: tuple[str, ...] = ()
    #: the run returned after submitting to SLURM (without --wait): jobs are still queued
    submitted_only: bool = False
    #: an SSH target's run: the target and the id of the submission there (docs/remote.md)
    ssh_target: str | None = None
    submission: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _sort_unsuccessful(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("failed"):
            return data
        own: list[Any] = []
        stopped: list[Any] = list(data.get("interrupted_jobs", ()))
        for job in data["failed"]:
            status = job.status if isinstance(job, FailedJob) else job.get("status")
            (stopped if status == JobStatus.INTERRUPTED else own).append(job)
        return {**data, "failed": tuple(own), "interrupted_jobs": tuple(stopped)}

    @property
    def exit_code(self) -> int:
        """0: everything succeeded; 1: a job failed, was stopped or blocked; 130: interrupted."""
        if self.interrupted:
            return 130
        unsuccessful = self.failed or self.interrupted_jobs
        return 1 if unsuccessful or self.blocked or self.not_started else 0


Event = (
    RunPlanned
    | LabSynced
    | JobsSubmitted
    | JobStarted
    | JobWaiting
    | JobFinished
    | JobBlocked
    | Notice
    | RunSummary
)
