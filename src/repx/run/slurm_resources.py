"""SLURM resources of each job: the lab's hints plus a ``resources.toml`` of overrides.

``resources.toml`` (next to ``config.toml``, or the target's ``slurm.resources``, or
``--resources FILE``)::

    [defaults]                 # used where neither the lab nor a rule says otherwise
    partition = "short"
    time = "01:00:00"
    mem = "1G"

    [[rules]]                  # every matching rule applies; later rules win
    stage = "simulate"         # glob on the stage name   (all three are optional;
    run = "simulation"         # glob on a run of the job  a rule without any of them
    job = "0a1b*"              # glob on the job id        matches every job)
    cpus = 4
    mem = "8G"
    time = "2-00:00:00"
    sbatch_options = ["--qos=long"]
    jobs_per_task = 10

Precedence of each value: the last matching rule, else the job's own hints (the stage's
``resources`` in the lab), else ``[defaults]``, else the target (``partition``); sbatch
options accumulate in that order (target, defaults, lab, rules), so later ones win in
sbatch. Hints never change job ids. Every value is checked before anything is submitted;
an invalid one is an error naming the rule, the defaults or the stage it comes from.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from repx.config import read_toml_model
from repx.errors import UsageError
from repx.lab.models import Job, Resources

RESOURCES_FILE: Final = "resources.toml"
_T = TypeVar("_T")
_R = TypeVar("_R")

_MEM: Final = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_MEM_FACTOR: Final = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}  # in KiB
_DAYS: Final = re.compile(r"^(\d+)-(\d+)(?::(\d+)(?::(\d+))?)?$")
_CLOCK: Final = re.compile(r"^(\d+)(?::(\d+)(?::(\d+))?)?$")
_PARTITION: Final = re.compile(r"^[A-Za-z0-9_.,:+-]+$")
#: Options repx sets itself (a user's value would break submission or following).
RESERVED_OPTIONS: Final = (
    "-a",
    "--array",
    "-d",
    "--dependency",
    "-o",
    "--output",
    "-e",
    "--error",
    "--parsable",
    "--wrap",
    "-W",
    "--wait",
    "--kill-on-invalid-dep",
    "--test-only",
)


class ResourceValues(BaseModel):
    """Values that a ``[defaults]`` table or a rule may set (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: Annotated[int, Field(ge=1)] | None = None
    mem: str | None = Field(default=None, description="memory per job: 512M, 4G, 2GiB")
    time: str | None = Field(default=None, description="time limit: MM, HH:MM:SS, D-HH:MM:SS")
    partition: str | None = None
    sbatch_options: tuple[str, ...] = ()
    jobs_per_task: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        default=None,
        description="jobs run one after another by one array task, or 'auto' (the default)",
    )


class Rule(ResourceValues):
    """One ``[[rules]]`` entry: values for the jobs its globs match."""

    stage: str | None = None
    run: str | None = None
    job: str | None = None

    def matches(self, job_id: str, stage: str, runs: Sequence[str]) -> bool:
        """True when every glob the rule gives matches the job."""
        if self.stage is not None and not fnmatch.fnmatchcase(stage, self.stage):
            return False
        if self.job is not None and not fnmatch.fnmatchcase(job_id, self.job):
            return False
        return self.run is None or any(fnmatch.fnmatchcase(r, self.run) for r in runs)

    def describe(self, index: int) -> str:
        """``rules[2] (stage 'simulate')`` for error messages."""
        globs = [
            f"{key} '{value}'"
            for key, value in (("stage", self.stage), ("run", self.run), ("job", self.job))
            if value is not None
        ]
        return f"rules[{index}]" + (f" ({', '.join(globs)})" if globs else "")


class ResourcesFile(BaseModel):
    """The whole ``resources.toml``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: ResourceValues = ResourceValues()
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class SlurmResources:
    """What one job asks SLURM for (checked and normalised)."""

    cpus: int | None = None
    mem: str | None = None
    #: seconds, and the value as the user wrote it
    time_seconds: int | None = None
    partition: str | None = None
    options: tuple[str, ...] = ()
    #: None: "auto" (see :func:`auto_bundle`)
    jobs_per_task: int | None = None

    def sbatch_args(self, bundle: int = 1) -> list[str]:
        """``--cpus-per-task``, ``--mem``, ``--time`` (times ``bundle``), ``--partition``, raw."""
        args: list[str] = []
        if self.cpus is not None:
            args.append(f"--cpus-per-task={self.cpus}")
        if self.mem is not None:
            args.append(f"--mem={self.mem}")
        if self.time_seconds is not None:
            args.append(f"--time={format_time(self.time_seconds * bundle)}")
        if self.partition is not None:
            args.append(f"--partition={self.partition}")
        args += self.options
        return args


@dataclass(frozen=True)
class ResourcePolicy:
    """Target settings and a resources file, ready to resolve jobs."""

    file: ResourcesFile = field(default_factory=ResourcesFile)
    source: str = RESOURCES_FILE
    target_partition: str | None = None
    target_options: tuple[str, ...] = ()

    def resolve(self, job_id: str, job: Job, runs: Sequence[str]) -> SlurmResources:
        """The resources of one job; raises :class:`UsageError` naming a bad value's origin."""
        layers: list[tuple[str, ResourceValues | Resources]] = [
            (f"{self.source}: [defaults]", self.file.defaults),
            (f"stage '{job.stage}' (resources in the lab)", job.resources),
        ]
        for index, rule in enumerate(self.file.rules):
            if rule.matches(job_id, job.stage, runs):
                layers.append((f"{self.source}: {rule.describe(index)}", rule))
        cpus: int | None = None
        mem: str | None = None
        time: int | None = None
        partition = self.target_partition
        per_task: int | None = None
        options = list(self.target_options)
        for origin, values in layers:
            if values.cpus is not None:
                cpus = values.cpus
            if values.mem is not None:
                mem = _checked(origin, "mem", values.mem, slurm_mem)
            if values.time is not None:
                time = _checked(origin, "time", values.time, parse_time)
            if values.partition is not None:
                partition = _checked(origin, "partition", values.partition, _partition)
            if isinstance(values, Resources):
                extra: Sequence[str] = values.sbatch_opts or ()
            else:
                extra = values.sbatch_options
            options += _checked(origin, "sbatch options", extra, _options)
            if isinstance(values, ResourceValues) and values.jobs_per_task is not None:
                per_task = None if values.jobs_per_task == "auto" else values.jobs_per_task
        return SlurmResources(cpus, mem, time, partition, tuple(options), per_task)


#: "auto" bundles only when a group has more than this many jobs per CPU of its partition.
AUTO_OVERSUBSCRIPTION: Final = 4
#: ... and never more than this many jobs per task.
AUTO_MAX_BUNDLE: Final = 64


def auto_bundle(
    resources: SlurmResources, jobs: int, partition_cpus: int, max_time_seconds: int | None
) -> int:
    """Jobs per array task under ``jobs_per_task = "auto"``.

    Several jobs share a task (one wrapper start, one scheduling decision) only when the
    group is much larger than what its partition can run at once (more than
    :data:`AUTO_OVERSUBSCRIPTION` jobs per CPU slot, so no parallelism is lost) and the jobs
    have a time limit (the task's limit is the sum, capped by the partition's MaxTime).
    Without a time limit every job gets its own task.
    """
    if resources.time_seconds is None or partition_cpus <= 0:
        return 1
    slots = max(1, partition_cpus // (resources.cpus or 1))
    bundle = -(-jobs // (AUTO_OVERSUBSCRIPTION * slots))  # ceil
    if max_time_seconds is not None:
        bundle = min(bundle, max(1, max_time_seconds // resources.time_seconds))
    return max(1, min(bundle, AUTO_MAX_BUNDLE))


def load_resources(path: Path, *, required: bool) -> ResourcesFile:
    """Read and check a ``resources.toml`` (a missing optional file is empty)."""
    resources = read_toml_model(path, ResourcesFile, required=required, kind="resources file")
    # Check every value now, whether or not a job matches it.
    for origin, values in [
        (f"{path}: [defaults]", resources.defaults),
        *((f"{path}: {r.describe(i)}", r) for i, r in enumerate(resources.rules)),
    ]:
        _check_values(origin, values)
    return resources


def check_target(name: str, partition: str | None, options: Sequence[str]) -> None:
    """Check a target's ``slurm.partition`` and ``slurm.sbatch_options``."""
    origin = f"target '{name}' (config.toml)"
    if partition is not None:
        _checked(origin, "slurm.partition", partition, _partition)
    _checked(origin, "slurm.sbatch_options", options, _options)


def slurm_mem(text: str) -> str:
    """``4G`` -> ``4G``, ``1.5G`` -> ``1536M``, ``2GiB`` -> ``2G``, ``512`` -> ``512M``."""
    match = _MEM.match(text)
    if match is None:
        raise ValueError(f"invalid memory '{text}' (use e.g. 512M, 4G)")
    value, unit = match.group(1), (match.group(2) or "M").upper()
    if "." not in value:
        if int(value) == 0:
            raise ValueError(f"invalid memory '{text}' (must be more than 0)")
        return f"{int(value)}{unit}"
    kib = float(value) * _MEM_FACTOR[unit]
    for suffix in ("T", "G", "M", "K"):
        if kib >= _MEM_FACTOR[suffix] and kib % _MEM_FACTOR[suffix] == 0:
            return f"{int(kib // _MEM_FACTOR[suffix])}{suffix}"
    if kib < 1:
        raise ValueError(f"invalid memory '{text}' (less than 1K)")
    return f"{round(kib)}K"


def parse_time(text: str) -> int:
    """Seconds of a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``."""
    value = text.strip()
    seconds: int | None = None
    if match := _DAYS.match(value):
        days, hours, minutes, secs = (int(g) if g else 0 for g in match.groups())
        if minutes < 60 and secs < 60:
            seconds = ((days * 24 + hours) * 60 + minutes) * 60 + secs
    elif match := _CLOCK.match(value):
        parts = [int(g) for g in match.groups() if g is not None]
        if len(parts) == 1:
            seconds = parts[0] * 60
        elif len(parts) == 2 and parts[1] < 60:
            seconds = parts[0] * 60 + parts[1]
        elif len(parts) == 3 and parts[1] < 60 and parts[2] < 60:
            seconds = (parts[0] * 60 + parts[1]) * 60 + parts[2]
    if seconds is None or seconds <= 0:
        raise ValueError(
            f"invalid time limit '{text}' (use MM, MM:SS, HH:MM:SS or D-HH:MM:SS, more than 0)"
        )
    return seconds


def format_time(seconds: int) -> str:
    """``D-HH:MM:SS`` (or ``HH:MM:SS`` under a day) for ``--time``."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def _partition(text: str) -> str:
    if not _PARTITION.match(text):
        raise ValueError(f"invalid partition name '{text}'")
    return text


def _options(options: Sequence[str]) -> list[str]:
    for option in options:
        name = option.split("=", 1)[0]
        reserved = name in RESERVED_OPTIONS or any(
            len(r) == 2 and option.startswith(r) and len(option) > 2 for r in RESERVED_OPTIONS
        )
        if reserved:
            raise ValueError(f"'{option}' is set by repx itself and cannot be given")
    if options and not options[0].startswith("-"):
        raise ValueError(f"'{options[0]}' is not an option (options start with '-')")
    return list(options)


def _check_values(origin: str, values: ResourceValues) -> None:
    if values.mem is not None:
        _checked(origin, "mem", values.mem, slurm_mem)
    if values.time is not None:
        _checked(origin, "time", values.time, parse_time)
    if values.partition is not None:
        _checked(origin, "partition", values.partition, _partition)
    _checked(origin, "sbatch options", values.sbatch_options, _options)


def _checked(origin: str, key: str, value: _T, check: Callable[[_T], _R]) -> _R:
    try:
        return check(value)
    except ValueError as exc:
        raise UsageError(f"{origin}: {key}: {exc}") from None
