"""The ``--json`` forms of the inspection commands (documented in docs/inspecting.md).

Field names are stable: new fields may be added, existing ones keep their name and meaning.
Paths are absolute. ``status`` is one of the :class:`~repx.inspect.status.JobState` values
(the state owner's; ``repx status --json`` uses the same names: ``id``, ``status``, ``reason``).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, JsonValue

from repx.lab.models import RunDependencyKind
from repx.run.pieces import Progress


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# -- repx list runs ---------------------------------------------------------------------


class RunRow(_Out):
    """One run in ``repx list runs``."""

    name: str
    jobs: int
    stages: list[str]
    parameters: dict[str, list[JsonValue]]
    #: parameters with more than one value
    swept: list[str]
    depends_on: dict[str, RunDependencyKind]
    groups: list[str]
    #: jobs per state; null until a job of the lab has run in the output store
    status: dict[str, int] | None = None


class RunList(_Out):
    """``repx list runs --json``."""

    lab_id: str
    lab: str
    base: str | None
    runs: list[RunRow]


# -- repx list jobs ---------------------------------------------------------------------


class JobRow(_Out):
    """One job in ``repx list jobs``."""

    id: str
    short_id: str
    run: str
    runs: list[str]
    stage: str
    status: str
    #: why the job is in its state (as in ``repx status --json``), when there is more to say
    reason: str | None = None
    #: the SLURM task (``123_4``) when SLURM decided the state
    slurm_id: str | None = None
    #: the job's own parameters (its parameters.json)
    params: dict[str, JsonValue]
    #: own parameters plus the single-valued parameters of its upstream jobs
    effective_params: dict[str, JsonValue]
    #: declared output -> its path in the output store (only with --output-paths)
    output_paths: dict[str, str] | None = None


class JobList(_Out):
    """``repx list jobs --json``."""

    lab_id: str
    lab: str
    base: str | None
    #: the parameters asked for with -p (the table's extra columns)
    columns: list[str]
    jobs: list[JobRow]


# -- repx list deps / show job ----------------------------------------------------------


class Dependency(_Out):
    """One input edge: ``job``'s output ``output`` read as input ``input``."""

    input: str
    job: str
    short_id: str
    stage: str
    run: str
    output: str
    gather: bool
    #: where the output is in the output store (null without one)
    path: str | None = None


class JobDeps(_Out):
    """``repx list deps JOB --json``: the jobs a job reads from and the jobs reading it."""

    job: str
    short_id: str
    stage: str
    run: str
    upstream: list[Dependency]
    #: here ``job``/``stage``/``run`` are the consumer's; ``output`` is this job's output
    downstream: list[Dependency]


class GroupRow(_Out):
    """One group in ``repx list groups``."""

    name: str
    runs: list[str]
    jobs: int


class GroupList(_Out):
    """``repx list groups --json``."""

    lab_id: str
    groups: list[GroupRow]


class OutputInfo(_Out):
    """A declared output of a job."""

    name: str
    declared: str
    path: str | None
    exists: bool


class AttemptInfo(_Out):
    """The last recorded attempt to run a job."""

    status: str
    exit_code: int | None
    reason: str | None
    start: float | None
    end: float | None
    duration: float | None
    host: str | None
    runtime: str | None
    cpu_seconds: float | None = None
    max_rss_kib: int | None = None
    #: host paths the attempt saw (an impure run: NOT reproducible); empty when hermetic
    impure: list[str] = []


class JobDetails(_Out):
    """``repx show job JOB --json``."""

    id: str
    short_id: str
    stage: str
    stage_type: str
    run: str
    runs: list[str]
    params: dict[str, JsonValue]
    effective_params: dict[str, JsonValue]
    inputs: list[Dependency]
    downstream: list[Dependency]
    outputs: list[OutputInfo]
    #: store path of the stage script, and the stage file in the experiment
    script: str | None
    stage_file: str | None
    stage_version: str | None
    #: name -> absolute path in the lab
    executables: dict[str, str]
    parameters_file: str
    resources: dict[str, JsonValue]
    status: str
    #: why the job is in its state (as in ``repx status --json``)
    reason: str | None = None
    slurm_id: str | None = None
    attempt: AttemptInfo | None
    output_dir: str | None
    #: "stdout"/"stderr" -> log of the last attempt (when it exists)
    logs: dict[str, str]
    #: a scatter-gather job: branches complete out of its work items (once it scattered)
    branches: Progress | None = None


# -- repx show run ----------------------------------------------------------------------


class StageDetails(_Out):
    """One stage of a run in ``repx show run``."""

    name: str
    jobs: int
    version: str
    file: str
    script: str
    parameters: dict[str, JsonValue]
    outputs: dict[str, str]
    depends_on: list[str]
    resources: dict[str, JsonValue]
    status: dict[str, int] | None = None


class RunDetails(_Out):
    """``repx show run RUN --json``."""

    name: str
    hash: str
    manifest: str
    jobs: int
    stages: list[StageDetails]
    parameters: dict[str, list[JsonValue]]
    zip_groups: list[list[str]]
    depends_on: dict[str, RunDependencyKind]
    #: runs that depend on this one
    dependents: dict[str, RunDependencyKind]
    groups: list[str]
    status: dict[str, int] | None = None


# -- repx trace-params ------------------------------------------------------------------


class ParamSourceOut(_Out):
    """A job a parameter value comes from; ``depth`` 0 is the traced job itself."""

    job: str
    short_id: str
    stage: str
    run: str
    depth: int


class TracedParam(_Out):
    """One value of one parameter, and every job it comes from."""

    name: str
    value: JsonValue
    #: true when the traced job sees this value (its own, or the only one upstream)
    effective: bool
    sources: list[ParamSourceOut]


class ParamTrace(_Out):
    """``repx trace-params JOB --json``."""

    job: str
    short_id: str
    stage: str
    run: str
    effective_params: dict[str, JsonValue]
    #: parameters with several values upstream (gathered jobs) -> those values
    multi_valued: dict[str, list[JsonValue]]
    params: list[TracedParam]


class ParamTraceList(_Out):
    """``repx trace-params --json`` (no job): the trace of every job, in display order."""

    lab_id: str
    jobs: list[ParamTrace]


# -- repx show output -------------------------------------------------------------------


class OutputFile(_Out):
    """One file (or directory, ``path`` ending in ``/``) under a job's ``out/``."""

    #: relative to the listed directory
    path: str
    #: bytes (None for a directory)
    size: int | None


class OutputListing(_Out):
    """``repx show output JOB [DIR] --json``: the files a job's committed outputs hold."""

    id: str
    short_id: str
    status: str
    #: the directory listed (the job's ``out/``, or a directory under it)
    directory: str
    files: list[OutputFile]


# -- repx verify ------------------------------------------------------------------------


class VerifyReport(_Out):
    """``repx verify --json``."""

    lab: str
    lab_id: str | None
    ok: bool
    #: files in the lab's list, and regular files found on disk
    files_listed: int
    files_found: int
    size_bytes: int
    missing: list[str]
    extra: list[str]
    altered: list[str]
    #: why each altered or extra entry differs, by path
    reasons: dict[str, str] = {}
    #: other problems: unreadable metadata, broken references (repx build's checks), a lab
    #: id that does not match the content or --expect, a store path Nix recorded otherwise
    problems: list[str]
    #: the id given with --expect
    expected_lab_id: str | None = None
    #: whether the lab was compared with Nix's record of its store path
    nix_checked: bool = False
