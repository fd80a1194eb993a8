"""Pydantic models of every JSON file in a lab (see docs/lab-format.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from repx.lab import hints

LAB_FORMAT: Final = "repx-lab/1"
REVISION_FORMAT: Final = "repx-revision/1"
RUN_FORMAT: Final = "repx-run/1"

#: ``hard``: the dependent run needs the other run's jobs to succeed; ``soft``: ordering only.
RunDependencyKind = Literal["hard", "soft"]

#: Characters of Nix's base-32 alphabet (no e, o, t, u).
NIX_BASE32: Final = "0123456789abcdfghijklmnpqrsvwxyz"
#: A job id: 32 nix-base32 characters, a dash, the stage name.
JOB_ID_PATTERN: Final = rf"^[{NIX_BASE32}]{{32}}-(?P<stage>.+)$"


def _format_checker(supported: str) -> AfterValidator:
    def check(value: str) -> str:
        if value != supported:
            raise ValueError(f"unsupported format '{value}' (this repx reads '{supported}')")
        return value

    return AfterValidator(check)


LabFormat = Annotated[
    str, _format_checker(LAB_FORMAT), Field(json_schema_extra={"const": LAB_FORMAT})
]
RevisionFormat = Annotated[
    str, _format_checker(REVISION_FORMAT), Field(json_schema_extra={"const": REVISION_FORMAT})
]
RunFormat = Annotated[
    str, _format_checker(RUN_FORMAT), Field(json_schema_extra={"const": RUN_FORMAT})
]
#: Marks a lab whose integrity list covers every entry (files, symlinks, empty directories).
INTEGRITY_FORMAT: Final = "repx-integrity/1"


def _inside_lab(value: str) -> str:
    # Confinement: every path a lab names stays inside the lab (no /abs, no ../, no NUL).
    if value.startswith("/"):
        raise ValueError(f"'{value}' is an absolute path (lab paths are relative to the lab)")
    if "\0" in value or ".." in value.split("/"):
        raise ValueError(f"'{value}' leaves the lab ('..' component)")
    return value


#: A path relative to the lab root, always with forward slashes, never leaving the lab.
LabPath = Annotated[str, Field(min_length=1), AfterValidator(_inside_lab)]
#: A path of the integrity list: as LabPath, but its confinement is checked by the loader
#: in one pass (a validator per entry doubles the load time of a 10,000-job lab).
ListedPath = Annotated[str, Field(min_length=1)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class FileEntry(_Model):
    """One regular file of the lab: its content hash and executable bit."""

    path: ListedPath
    sha256: Sha256Hex
    executable: bool = False


class SymlinkEntry(_Model):
    """One symbolic link of the lab and its target, exactly as ``readlink`` gives it."""

    path: ListedPath
    target: str = Field(min_length=1)


class LabHeader(_Model):
    """``lab/lab-metadata.json`` without its integrity list (``files``, ``symlinks``,
    ``empty_dirs``): what inspecting and running a lab read of it."""

    format: LabFormat
    lab_id: str
    lab_version: str
    repx_version: str
    git_hash: str = Field(description="40 hex digits, 'dirty' or 'unknown'")
    metadata: LabPath = Field(description="path of revision/metadata.json")
    host_tools: LabPath = Field(description="directory with bin/ of static host tools")
    store: LabPath = "store"
    store_paths: tuple[str, ...] = ()
    closure: LabPath | None = Field(
        default=None,
        description="lab/closure.json: the store paths store/ and host_tools link to, with "
        "their NAR hashes (absent: store/ holds copies listed in files)",
    )
    readme: LabPath = "readme/README.md"
    container_mode: Literal["none", "unified", "per-run"] = "none"
    images: dict[str, LabPath] = Field(
        default_factory=dict,
        description='image directories: {"unified": …}, or by run name ("per-run")',
    )
    job_count: int = Field(ge=0)
    files_bytes: int | None = Field(
        default=None,
        ge=0,
        description="total size of the files listed in files (absent: measured when needed)",
    )


class LabMetadata(LabHeader):
    """``lab/lab-metadata.json``: the entry point of a lab."""

    files: tuple[FileEntry, ...] = Field(
        description="every regular file except lab/lab-metadata.json, sorted by path"
    )
    integrity: str | None = Field(
        default=None,
        description=f"'{INTEGRITY_FORMAT}': symlinks and empty_dirs complete the list",
    )
    symlinks: tuple[SymlinkEntry, ...] = Field(
        default=(), description="every symbolic link, sorted by path"
    )
    empty_dirs: tuple[ListedPath, ...] = Field(
        default=(), description="every directory without entries, sorted"
    )


class RunEntry(_Model):
    """One run as listed in ``revision/metadata.json``."""

    manifest: LabPath
    hash: str
    depends_on: dict[str, RunDependencyKind] = {}
    job_count: int = Field(ge=0)
    stages: tuple[str, ...]


class RevisionMetadata(_Model):
    """``revision/metadata.json``: the runs, their dependencies and groups."""

    format: RevisionFormat
    runs: dict[str, RunEntry]
    run_order: tuple[str, ...]
    groups: dict[str, tuple[str, ...]] = {}


class Resources(_Model):
    """Scheduler hints of a stage or job (not part of the job hash).

    The grammar is :mod:`repx.lab.hints` (the build checks the same one and writes the
    normalised values: ``mem`` in MiB, ``time`` in minutes); anything the build refuses,
    an unknown key included, is refused here too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: hints.Cpus = Field(default=None, description="CPUs per job")
    mem: hints.MemMiB = Field(default=None, description="memory per job, in MiB")
    time: hints.TimeMinutes = Field(default=None, description="time limit, in minutes")
    partition: hints.Partition = Field(default=None, description="SLURM partition(s)")
    sbatch_opts: hints.SbatchOptions = Field(
        default=None, description="extra sbatch options, one option per element"
    )


class StageInfo(_Model):
    """One stage of a run: its script and declared interface."""

    pname: str
    version: str
    file: str = Field(description="the stage file, relative to the experiment flake")
    script: str = Field(description="store path of the stage script")
    parameters: dict[str, JsonValue] = {}
    inputs: tuple[JsonValue, ...] = ()
    outputs: dict[str, str] = {}
    depends_on: tuple[str, ...] = ()
    resources: Resources = Resources()


class JobInput(_Model):
    """One upstream output a job consumes (several entries share a name when gathered)."""

    name: str
    job: str
    output: str
    run: str
    gather: bool = False


class RunInput(_Model):
    """An inter-run input of a job (RepX's ``store__base`` / ``metadata__<run>``).

    ``store_base``: the output store's base directory (as RepX passes it); ``run_metadata``:
    a JSON file describing every job of ``run`` (which the job's run depends on). The runner
    resolves both when the job starts.
    """

    name: str
    kind: Literal["store_base", "run_metadata"]
    run: str | None = None


class Executable(_Model):
    """A program of a job, relative to the lab root."""

    path: LabPath


class PieceInput(_Model):
    """Where an input of a scatter-gather piece comes from.

    ``item``: the branch's work item (a JSON file); ``step``: ``output`` of ``step`` in the
    same branch; ``stage``: the job's input ``input``; ``scatter``: the scatter's
    ``output``; ``branches``: the JSON list of every branch's sink-step outputs (gather).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    source: Literal["item", "step", "stage", "scatter", "branches"] = Field(alias="from")
    step: str | None = None
    output: str | None = None
    input: str | None = None


class ScatterPiece(_Model):
    """The scatter of a scatter-gather job: it writes the work items."""

    inputs: tuple[str, ...] = ()
    outputs: dict[str, str] = {}
    resources: Resources = Resources()


class StepPiece(_Model):
    """One step of a scatter-gather job, run once per branch."""

    deps: tuple[str, ...] = ()
    inputs: dict[str, PieceInput] = {}
    outputs: dict[str, str] = {}
    resources: Resources = Resources()


class GatherPiece(_Model):
    """The gather of a scatter-gather job: its outputs are the job's."""

    inputs: dict[str, PieceInput] = {}
    resources: Resources = Resources()


class ScatterGather(_Model):
    """How the pieces of a scatter-gather job fit together (``scatter_gather``)."""

    work_items: str = Field(description="the work item list, relative to the scatter's $out")
    scatter: ScatterPiece
    steps: dict[str, StepPiece] = Field(min_length=1)
    step_order: tuple[str, ...] = Field(description="the steps in dependency order")
    sink: str = Field(description="the step whose outputs the gather receives")
    gather: GatherPiece


class Job(_Model):
    """One job: a stage applied to one combination of parameters and inputs."""

    stage: str
    stage_type: str = "simple"
    params: dict[str, JsonValue] = {}
    inputs: tuple[JobInput, ...] = ()
    run_inputs: tuple[RunInput, ...] = ()
    outputs: dict[str, str] = {}
    executables: dict[str, Executable]
    parameters_file: LabPath
    resources: Resources = Resources()
    #: only for stage_type "scatter-gather" (executables scatter, step-<name>…, gather)
    scatter_gather: ScatterGather | None = None


#: ``Job.stage_type`` of a scatter-gather job (its layout in ``Job.scatter_gather``).
SCATTER_GATHER: Final = "scatter-gather"


class JobOutline(Protocol):
    """What reading a job's state needs of its record: a whole :class:`Job` or, in a lab
    opened lazily, the :class:`JobFacts` read from it."""

    @property
    def stage(self) -> str: ...
    @property
    def stage_type(self) -> str: ...
    @property
    def outputs(self) -> dict[str, str]: ...


class JobFacts(_Model):
    """A job record's stage and declared outputs, validated without the rest of it
    (``repx status`` on 10^5 jobs: a fifth of the cost of whole records)."""

    stage: str
    stage_type: str = "simple"
    outputs: dict[str, str] = {}


class RunManifestTop(_Model):
    """A run manifest without its jobs (what an indexed lab validates up front)."""

    format: RunFormat
    name: str
    hash: str
    parameters: dict[str, tuple[JsonValue, ...]] = {}
    #: where each parameter is written in the run file (``nix/run.nix:7``), when known
    parameter_positions: dict[str, str] = {}
    zip_groups: tuple[tuple[str, ...], ...] = ()
    stages: dict[str, StageInfo]


class RunManifest(RunManifestTop):
    """``revision/<run-hash>.json``: the stages and every job of one run.

    Read from an indexed lab (:mod:`repx.lab.job_index`), ``jobs`` is a mapping whose
    records are validated when first looked up.
    """

    jobs: Mapping[str, Job]
