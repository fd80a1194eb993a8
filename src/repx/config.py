"""The user's configuration file: run targets (where and how labs run).

``config.toml`` lives in ``$REPX_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/repx/``
(default ``~/.config/repx/``)::

    default_target = "local"

    [targets.local]
    base = "~/experiments/runs"   # output store; relative paths are taken from the cwd
    runtime = "bwrap"             # or "podman", "docker" (the lab's image), "native"
    concurrency = 8               # default of -j
    scheduler = "local"           # or "slurm" (docs/slurm.md)
    # impure, NOT reproducible (docs/running.md): host paths visible read-only in jobs
    mount_host_paths = false      # true: the host's whole file system
    mount_paths = ["/data/x"]     # these host paths only

    [targets.cluster]
    scheduler = "slurm"
    base = "/shared/me/repx"
    [targets.cluster.slurm]
    partition = "short"
    sbatch_options = ["--qos=normal"]
    resources = "~/.config/repx/cluster-resources.toml"   # see docs/slurm.md
    python = "/shared/me/venv/bin/python"                  # repx on the nodes

A missing file is an empty configuration: everything then comes from the command line
and the built-in defaults (:data:`DEFAULT_BASE`).

RepX's ``config.toml`` is read too (:func:`_from_repx` names the keys and what they become):
``submission_target``, a top-level ``default_scheduler``, and per target ``base_path``,
``default_scheduler``, ``default_execution_type``, ``[targets.NAME.local|slurm]`` with
``execution_types`` and ``local_concurrency``, ``artifact_store`` and ``node_local_path``
(the same keys here), ``mount_host_paths``, ``mount_paths``, ``address`` (an SSH target,
docs/remote.md: its ``base_path`` is then a directory on that host); ``theme`` and
``[logging]`` (RepX's TUI and log files) are accepted and have no effect. RepX's execution
types are repx's runtimes by the same names (``native``, ``bwrap``, ``podman``, ``docker``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from repx.errors import UsageError

#: Environment variable naming the directory of ``config.toml`` (tests, several setups).
CONFIG_DIR_ENV: Final = "REPX_CONFIG_DIR"
CONFIG_FILE: Final = "config.toml"

#: The output store when neither ``--base`` nor a target gives one: ``./repx-runs``, next to
#: the experiment (the ``result`` link). Results are found where the experiment lives, a new
#: lab revision built in the same checkout reuses every unchanged job's outputs, and no
#: hidden per-user directory grows without bound. Share one base between checkouts (or
#: machines) by naming it in a target.
DEFAULT_BASE: Final = Path("repx-runs")
#: Why an empty base is refused (config.toml and --base).
EMPTY_BASE: Final = "is empty; give a directory, or leave it out to use the default (./repx-runs)"


class RuntimeKind(StrEnum):
    """How a job's process is started."""

    NATIVE = "native"
    BWRAP = "bwrap"
    PODMAN = "podman"
    DOCKER = "docker"


class SchedulerKind(StrEnum):
    """Which backend runs the jobs of a target."""

    LOCAL = "local"
    SLURM = "slurm"


class ArtifactStore(StrEnum):
    """Where jobs read the lab (docs/running.md, "Node-local artifacts")."""

    #: where it is (for SLURM: a file system the nodes share)
    SHARED = "shared"
    #: a copy unpacked once per node under ``node_local_path``
    NODE_LOCAL = "node-local"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


#: Why RepX's keys that repx cannot honour yet are refused, by key (none at present: the
#: mechanism stays for RepX keys to come).
_UNSUPPORTED_KEYS: Final[dict[str, str]] = {}


#: Keys of RepX's per-scheduler tables ``[targets.NAME.local]`` and ``.slurm``.
_SCHEDULER_TABLE_KEYS: Final = ("execution_types", "local_concurrency")


class SlurmOptions(_Model):
    """Options of a SLURM target (see docs/slurm.md)."""

    partition: str | None = Field(default=None, description="default partition")
    sbatch_options: tuple[str, ...] = Field(
        default=(), description="extra sbatch options, one per element"
    )
    resources: Path | None = Field(
        default=None, description="resources.toml of this target (default: next to config.toml)"
    )
    python: str | None = Field(
        default=None, description="Python with repx on the nodes (default: this interpreter)"
    )
    light_tasks: bool = Field(
        default=True,
        description="a task of one plain job runs without importing pydantic (docs/slurm.md)",
    )


class Target(_Model):
    """One ``[targets.<name>]`` table."""

    base: Path | None = Field(default=None, description="the output store directory")
    runtime: RuntimeKind | None = None
    concurrency: Annotated[int, Field(ge=1)] | None = None
    scheduler: SchedulerKind = SchedulerKind.LOCAL
    slurm: SlurmOptions = SlurmOptions()
    mount_host_paths: bool = Field(
        default=False,
        description="impure: jobs see the host's file system read-only (NOT reproducible)",
    )
    mount_paths: tuple[str, ...] = Field(
        default=(),
        description="impure: host paths jobs see read-only, e.g. ['/data/x'] (NOT reproducible)",
    )
    artifact_store: ArtifactStore = Field(
        default=ArtifactStore.SHARED, description="where jobs read the lab: shared or node-local"
    )
    node_local_path: Path | None = Field(
        default=None, description="node-local: the directory on each node's local disk"
    )
    # -- SSH targets (docs/remote.md): base is then a directory on that host
    address: str | None = Field(
        default=None, description="SSH target: user@host or a ~/.ssh/config host alias"
    )
    ssh_options: tuple[str, ...] = Field(
        default=(), description="SSH target: extra ssh options, e.g. ['-F', 'ssh_config']"
    )

    @field_validator("node_local_path", mode="before")
    @classmethod
    def _node_local_absolute(cls, value: object) -> object:
        if isinstance(value, str):
            path = Path(value).expanduser()  # "~" as RepX expands it
            if not path.is_absolute():
                raise ValueError(f"'{value}' is not an absolute path (nor starts with ~)")
            return path
        return value

    @model_validator(mode="after")
    def _node_local_needs_path(self) -> Target:
        if self.artifact_store is ArtifactStore.NODE_LOCAL and self.node_local_path is None:
            raise ValueError(
                "artifact_store = 'node-local' needs node_local_path (a directory on each"
                " node's local disk)"
            )
        return self

    @field_validator("base", mode="before")
    @classmethod
    def _base_not_empty(cls, value: object) -> object:
        # Path("") is ".": an empty base would silently mean "wherever repx is started".
        if isinstance(value, str) and not value.strip():
            raise ValueError(EMPTY_BASE)
        return value


class Config(_Model):
    """The whole ``config.toml``."""

    default_target: str | None = None
    targets: dict[str, Target] = {}


def config_dir() -> Path:
    """Directory of ``config.toml`` (not created)."""
    override = os.environ.get(CONFIG_DIR_ENV)
    if override:
        return Path(override)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "repx"


_M = TypeVar("_M", bound=BaseModel)


def read_toml_model(
    file: Path,
    model: type[_M],
    *,
    required: bool,
    kind: str,
    prepare: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> _M:
    """Read a TOML file into ``model``; a missing file gives the model's defaults unless
    ``required``. ``prepare`` may rewrite the data first (raising :class:`UsageError`).
    Every problem is a one-line :class:`UsageError` naming the file and key."""
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if required:
            raise UsageError(f"{file}: no such {kind}") from None
        return model()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{file}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{file}: invalid TOML: {exc}") from None
    if prepare is not None:
        data = prepare(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{file}: {where}: {first['msg']}") from None


def _from_repx(file: Path, data: dict[str, Any]) -> dict[str, Any]:
    """RepX's ``config.toml`` keys -> ours (a file in our own form passes unchanged)."""
    data = dict(data)
    data.pop("theme", None)  # RepX's TUI colours
    data.pop("logging", None)  # RepX's log-file rotation: repx writes no session logs
    _rename(file, data, "submission_target", "default_target", "")
    scheduler = data.pop("default_scheduler", None)
    targets = data.get("targets")
    if isinstance(targets, Mapping):
        data["targets"] = {
            name: _target_from_repx(file, f"targets.{name}.", dict(t), scheduler)
            if isinstance(t, Mapping)
            else t
            for name, t in targets.items()
        }
    return data


def _target_from_repx(
    file: Path, where: str, target: dict[str, Any], scheduler: object
) -> dict[str, Any]:
    for key, why in _UNSUPPORTED_KEYS.items():
        if key in target:
            raise UsageError(f"{file}: {where}{key}: {why}")
    _rename(file, target, "base_path", "base", where)
    _rename(file, target, "default_scheduler", "scheduler", where)
    _rename(file, target, "default_execution_type", "runtime", where)
    if "scheduler" not in target and scheduler is not None:
        target["scheduler"] = scheduler  # RepX's top-level default_scheduler
    local = target.pop("local", None)
    slurm = target.get("slurm")
    for table, name in ((local, "local"), (slurm, "slurm")):
        if table is not None and not isinstance(table, Mapping):
            raise UsageError(f"{file}: {where}{name}: expected a table")
    # RepX's [targets.NAME.slurm] holds execution_types and local_concurrency; ours holds
    # the SLURM options (partition, ...): both may be there
    repx_slurm: dict[str, Any] = {}
    if slurm is not None:
        slurm = dict(slurm)
        repx_slurm = {k: slurm.pop(k) for k in _SCHEDULER_TABLE_KEYS if k in slurm}
        target["slurm"] = slurm
    # the table of the target's scheduler applies (RepX: the local one for local runs)
    if target.get("scheduler") == SchedulerKind.SLURM:
        _apply_scheduler_table(file, f"{where}slurm.", target, repx_slurm)
    else:
        _apply_scheduler_table(file, f"{where}local.", target, dict(local or {}))
    return target


def _apply_scheduler_table(
    file: Path, where: str, target: dict[str, Any], table: Mapping[str, Any]
) -> None:
    """``execution_types`` and ``local_concurrency`` of the target's scheduler table."""
    unknown = sorted(set(table) - set(_SCHEDULER_TABLE_KEYS))
    if unknown:
        raise UsageError(f"{file}: {where}{unknown[0]}: not a key of this table")
    concurrency = table.get("local_concurrency")
    if concurrency is not None and "concurrency" not in target:
        target["concurrency"] = concurrency
    types_ = table.get("execution_types")
    if types_ is None:
        return
    if not isinstance(types_, list) or not all(isinstance(t, str) for t in types_):
        raise UsageError(f"{file}: {where}execution_types: expected a list of names")
    unknown = [t for t in types_ if t not in tuple(RuntimeKind)]
    if unknown:
        raise UsageError(
            f"{file}: {where}execution_types: unknown execution type '{unknown[0]}'"
            f" ({', '.join(RuntimeKind)})"
        )
    chosen = target.get("runtime")
    if chosen is not None and chosen not in types_:
        raise UsageError(
            f"{file}: {where}execution_types: does not list the target's"
            f" default_execution_type '{chosen}'"
        )
    if chosen is None:
        if not types_:
            raise UsageError(f"{file}: {where}execution_types: an empty list")
        target["runtime"] = types_[0]  # RepX takes the first type listed


def _rename(file: Path, table: dict[str, Any], repx_key: str, key: str, where: str) -> None:
    if repx_key not in table:
        return
    if key in table and table[key] != table[repx_key]:
        raise UsageError(
            f"{file}: {where}{repx_key}: and {key} differ (the same setting; keep one)"
        )
    table[key] = table.pop(repx_key)


def load_config(path: Path | None = None) -> Config:
    """Read the configuration file (default: :func:`config_dir`/config.toml)."""
    file = path if path is not None else config_dir() / CONFIG_FILE
    config = read_toml_model(
        file,
        Config,
        required=path is not None,
        kind="configuration file",
        prepare=lambda data: _from_repx(file, data),
    )
    if config.default_target is not None and config.default_target not in config.targets:
        raise UsageError(
            f"{file}: default_target: no target '{config.default_target}'"
            f" (targets: {', '.join(sorted(config.targets)) or 'none'})"
        )
    return config


def select_target(config: Config, name: str | None) -> tuple[str | None, Target]:
    """Return the target called ``name``, else the default target, else built-in defaults."""
    if name is not None:
        try:
            return name, config.targets[name]
        except KeyError:
            known = ", ".join(sorted(config.targets)) or "none configured"
            raise UsageError(f"unknown target '{name}' (targets: {known})") from None
    if config.default_target is not None:
        return config.default_target, config.targets[config.default_target]
    return None, Target()


def resolve_base(cli_base: Path | None, target: Target) -> Path:
    """The output store: ``--base``, else the target's ``base``, else :data:`DEFAULT_BASE`.

    An SSH target's ``base`` is a directory on that host: here, its outputs are those
    ``repx pull`` fetched, in ``--base`` or :data:`DEFAULT_BASE` (docs/remote.md).
    """
    own = target.base if target.address is None else None
    base = cli_base or own or DEFAULT_BASE
    # abspath, not resolve(): keep the user's symlinks in the paths we print and record
    return Path(os.path.abspath(base.expanduser()))  # noqa: PTH100
