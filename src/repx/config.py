"""The user's configuration file: run targets (where and how labs run).

``config.toml`` lives in ``$REPX_CONFIG_DIR`` or ``$XDG_CONFIG_HOME/repx/``
(default ``~/.config/repx/``)::

    default_target = "local"

    [targets.local]
    base = "~/experiments/runs"   # output store; relative paths are taken from the cwd
    runtime = "bwrap"             # or "native"
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
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


def read_toml_model(file: Path, model: type[_M], *, required: bool, kind: str) -> _M:
    """Read a TOML file into ``model``; a missing file gives the model's defaults unless
    ``required``. Every problem is a one-line :class:`UsageError` naming the file and key."""
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
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError(f"{file}: {where}: {first['msg']}") from None


def load_config(path: Path | None = None) -> Config:
    """Read the configuration file (default: :func:`config_dir`/config.toml)."""
    file = path if path is not None else config_dir() / CONFIG_FILE
    config = read_toml_model(file, Config, required=path is not None, kind="configuration file")
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
    """The output store: ``--base``, else the target's ``base``, else :data:`DEFAULT_BASE`."""
    base = cli_base or target.base or DEFAULT_BASE
    # abspath, not resolve(): keep the user's symlinks in the paths we print and record
    return Path(os.path.abspath(base.expanduser()))  # noqa: PTH100
