"""Where a command finds the lab, the output store and the target (shared by every service)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from repx.config import SchedulerKind, Target, load_config, select_target


@dataclass(frozen=True)
class Location:
    """Where a command finds the lab and the output store."""

    lab: Path = Path("result")
    base: Path | None = None
    target: str | None = None
    config_file: Path | None = None
    #: ``--scheduler``: overrides the target's scheduler
    scheduler: SchedulerKind | None = None


def named_target(where: Location) -> tuple[str | None, Target]:
    """The target ``where`` asks for (its name, None for the default) from config.toml."""
    name, target = select_target(load_config(where.config_file), where.target)
    if where.scheduler is not None:
        target = target.model_copy(update={"scheduler": where.scheduler})
    return name, target


def target_of(where: Location) -> Target:
    """The target ``where`` asks for."""
    return named_target(where)[1]


def is_remote(where: Location) -> bool:
    """True when ``where`` asks for an SSH target (commands then import the SSH layer)."""
    return target_of(where).address is not None
