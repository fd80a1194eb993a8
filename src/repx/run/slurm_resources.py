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

RepX's spelling is read too: ``job_id_glob`` (= ``job``), ``cpus-per-task`` (= ``cpus``),
``sbatch_opts`` (= ``sbatch_options``), ``target`` (the rule applies on that target only)
and ``worker_resources`` (a table of values for the pieces of a scatter-gather job, see
:meth:`ResourcePolicy.worker_resources`).

Precedence of each value: the last matching rule, else the job's own hints (the stage's
``resources`` in the lab), else ``[defaults]``, else the target (``partition``); sbatch
options accumulate in that order (target, defaults, lab, rules), so later ones win in
sbatch. Hints never change job ids. Values follow one grammar, :mod:`repx.lab.hints` (the
one the build checks a stage's hints with): the lab's are valid and normalised once read,
``resources.toml`` is checked when read (an error names the file and the field) and
``config.toml``'s target settings when the target is chosen.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from repx.config import read_toml_model
from repx.errors import UsageError
from repx.lab import hints
from repx.lab.models import Job, Resources

RESOURCES_FILE: Final = "resources.toml"
#: Options repx sets itself (a user's value would break submission or following).
RESERVED_OPTIONS: Final = hints.RESERVED_LONG + hints.RESERVED_SHORT
_T = TypeVar("_T")
_R = TypeVar("_R")
_M = TypeVar("_M", bound=BaseModel)


class ResourceValues(BaseModel):
    """Values that a ``[defaults]`` table or a rule may set (all optional, normalised)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpus: hints.Cpus = None
    mem: hints.MemMiB = Field(default=None, description="memory per job: 512, 512M, 4G, 2GiB")
    time: hints.TimeMinutes = Field(
        default=None, description="time limit: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]]"
    )
    partition: hints.Partition = None
    sbatch_options: hints.SbatchOptions = ()
    jobs_per_task: Annotated[int, Field(ge=1)] | Literal["auto"] | None = Field(
        default=None,
        description="jobs run one after another by one array task, or 'auto' (the default)",
    )
    #: RepX's: values for the pieces (scatter, steps, gather) of a scatter-gather job
    worker_resources: ResourceValues | None = None


class Rule(ResourceValues):
    """One ``[[rules]]`` entry: values for the jobs its globs match."""

    stage: str | None = None
    run: str | None = None
    job: str | None = None
    #: RepX's: the rule applies on this target (of config.toml) only
    target: str | None = None

    def matches(
        self, job_id: str, stage: str, runs: Sequence[str], target: str | None = None
    ) -> bool:
        """True when every glob the rule gives matches the job (and it is for ``target``)."""
        if self.target is not None and self.target != target:
            return False
        if self.stage is not None and not fnmatch.fnmatchcase(stage, self.stage):
            return False
        if self.job is not None and not fnmatch.fnmatchcase(job_id, self.job):
            return False
        return self.run is None or any(fnmatch.fnmatchcase(r, self.run) for r in runs)

    def describe(self, index: int) -> str:
        """``rules[2] (stage 'simulate')`` for error messages."""
        return _describe_rule(index, {"stage": self.stage, "run": self.run, "job": self.job})


def _describe_rule(index: int, rule: Mapping[str, object]) -> str:
    globs = [
        f"{key} '{rule[key]}'" for key in ("stage", "run", "job") if isinstance(rule.get(key), str)
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
    #: ``--mem`` text (``8G``, ``1536M``)
    mem: str | None = None
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
    #: the target's name (rules with RepX's ``target`` apply on that target only)
    target: str | None = None
    #: (the lab's resources of a job, the rules matching it) -> the merged resources: the
    #: jobs of a sweep share one value (a 100,000-job sweep merges once, not 100,000 times)
    _merged: dict[tuple[Resources, tuple[int, ...]], SlurmResources] = field(
        default_factory=dict, compare=False, repr=False
    )

    def resolve(self, job_id: str, job: Job, runs: Sequence[str]) -> SlurmResources:
        """The resources of one job (every value was checked when its file was read)."""
        rules = self._rules(job_id, job, runs)
        key = (job.resources, tuple(id(rule) for rule in rules))
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merge([self.file.defaults, job.resources, *rules])
            self._merged[key] = merged
        return merged

    def worker_resources(self, job_id: str, job: Job, runs: Sequence[str]) -> SlurmResources:
        """RepX's ``worker_resources`` of the job's matching rules (``[defaults]`` first): what
        the pieces of a scatter-gather job ask for on top of their own hints."""
        layers: list[ResourceValues | Resources] = [
            rule.worker_resources
            for rule in (self.file.defaults, *self._rules(job_id, job, runs))
            if rule.worker_resources is not None
        ]
        return self._merge(layers, target=False)

    def _rules(self, job_id: str, job: Job, runs: Sequence[str]) -> list[Rule]:
        return [r for r in self.file.rules if r.matches(job_id, job.stage, runs, self.target)]

    def _merge(
        self, layers: Sequence[ResourceValues | Resources], *, target: bool = True
    ) -> SlurmResources:
        cpus: int | None = None
        mem: int | None = None
        minutes: int | None = None
        partition = self.target_partition if target else None
        per_task: int | None = None
        options = list(self.target_options) if target else []
        for values in layers:
            cpus = values.cpus if values.cpus is not None else cpus
            mem = values.mem if values.mem is not None else mem
            minutes = values.time if values.time is not None else minutes
            partition = values.partition if values.partition is not None else partition
            if isinstance(values, Resources):
                options += values.sbatch_opts or ()
            else:
                options += values.sbatch_options or ()
                if values.jobs_per_task is not None:
                    per_task = None if values.jobs_per_task == "auto" else values.jobs_per_task
        return SlurmResources(
            cpus,
            None if mem is None else hints.mem_text(mem),
            None if minutes is None else minutes * 60,
            partition,
            tuple(options),
            per_task,
        )


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


class _FileTables(BaseModel):
    """``resources.toml`` read table by table, so that an error can name its rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: dict[str, object] = {}
    rules: tuple[dict[str, object], ...] = ()


#: RepX's names of rule keys -> ours.
_REPX_KEYS: Final = {
    "job_id_glob": "job",
    "cpus-per-task": "cpus",
    "sbatch_opts": "sbatch_options",
}


def _from_repx(origin: str, table: Mapping[str, object]) -> dict[str, object]:
    """A rule (or ``[defaults]``) in RepX's spelling -> ours (ours pass unchanged)."""
    data = dict(table)
    for repx_key, key in _REPX_KEYS.items():
        if repx_key in data:
            if key in data and data[key] != data[repx_key]:
                raise UsageError(f"{origin}: {repx_key}: and {key} differ (the same; keep one)")
            data[key] = data.pop(repx_key)
    worker = data.get("worker_resources")
    if isinstance(worker, Mapping):
        nested = _from_repx(f"{origin}: worker_resources", worker)
        for key in ("stage", "run", "job", "target", "worker_resources"):
            if key in nested:
                raise UsageError(
                    f"{origin}: worker_resources.{key}: a worker table holds values only"
                )
        data["worker_resources"] = nested
    return data


def load_resources(path: Path, *, required: bool) -> ResourcesFile:
    """Read and check a ``resources.toml`` (a missing optional file is empty); a bad value
    is an error naming the file, the table and the field (``rules[1] (stage 'sim*'): mem:
    invalid value "lots": …``)."""
    tables = read_toml_model(path, _FileTables, required=required, kind="resources file")
    origin = f"{path}: [defaults]"
    defaults = _table(origin, ResourceValues, _from_repx(origin, tables.defaults))
    rules = []
    for i, rule in enumerate(tables.rules):
        origin = f"{path}: {_describe_rule(i, _from_repx(f'{path}: rules[{i}]', rule))}"
        rules.append(_table(origin, Rule, _from_repx(origin, rule)))
    return ResourcesFile(defaults=defaults, rules=tuple(rules))


def _table(origin: str, model: type[_M], data: Mapping[str, object]) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{origin}: {where}: {first['msg']}") from None


def check_target(name: str, partition: str | None, options: Sequence[str]) -> None:
    """Check a target's ``slurm.partition`` and ``slurm.sbatch_options``."""
    origin = f"target '{name}' (config.toml)"
    if partition is not None:
        _checked(origin, "slurm.partition", partition, hints.partition)
    for index, option in enumerate(options):
        if (problem := hints.option_problem(option)) is not None:
            raise UsageError(f"{origin}: slurm.sbatch_options[{index}]: {problem}")


def parse_time(text: str) -> int:
    """Seconds of a SLURM time string (as ``sinfo`` prints a partition's MaxTime), in the
    hints' grammar: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``; ValueError else."""
    return hints.time_minutes(text) * 60


def format_time(seconds: int) -> str:
    """``D-HH:MM:SS`` (or ``HH:MM:SS`` under a day) for ``--time``."""
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    clock = f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return f"{days}-{clock}" if days else clock


def _checked(origin: str, key: str, value: _T, check: Callable[[_T], _R]) -> _R:
    try:
        return check(value)
    except ValueError as exc:
        raise UsageError(f"{origin}: {key}: {exc}") from None
