"""Shell completion: ``repx completions --shell SHELL`` and the dynamic completers.

The script is typer's (click's completion protocol: the shell runs ``repx`` again with
``_REPX_COMPLETE`` set, and the command line so far). The completers below read the lab the
command line names (``-l/--lab`` of the command or before it, else ``./result``) and offer
its runs, groups, stages and job ids; a lab that cannot be read offers nothing (completion
must never print an error into the user's shell).
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

if TYPE_CHECKING:
    from repx.inspect.view import LabView

#: The environment variable that asks ``repx`` for completions (click's protocol).
COMPLETE_VAR: Final = "_REPX_COMPLETE"
#: Most job ids offered at once (a shell lists them all; 10,000 would drown the prompt).
MAX_JOB_IDS: Final = 200


class Shell(StrEnum):
    """The shells ``repx completions`` writes a script for."""

    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def completions(
    shell: Annotated[Shell, typer.Option("--shell", help="The shell to write the script for.")],
) -> None:
    """Print the shell completion script (runs, groups, stages and job ids complete).

    bash: ``eval "$(repx completions --shell bash)"`` in ~/.bashrc; zsh: the same in
    ~/.zshrc; fish: ``repx completions --shell fish | source`` in config.fish.
    """
    # typer.completion re-exports these without __all__ (its public completion module)
    from typer.completion import (  # type: ignore[attr-defined]  # noqa: PLC0415
        get_completion_script,
    )

    typer.echo(get_completion_script(prog_name="repx", complete_var=COMPLETE_VAR, shell=shell))


def enable_if_asked() -> None:
    """Register typer's completion classes when the shell asks for completions."""
    if os.environ.get(COMPLETE_VAR):
        from typer.completion import (  # type: ignore[attr-defined]  # noqa: PLC0415
            completion_init,
        )

        completion_init()


# -- completers (typer ``autocompletion=`` callbacks) -----------------------------------


def _view(ctx: typer.Context) -> LabView | None:
    """The lab the command line names, or None when it cannot be read."""
    from repx.errors import RepxError  # noqa: PLC0415
    from repx.inspect.view import LabView  # noqa: PLC0415
    from repx.lab.loader import open_lab  # noqa: PLC0415

    # the command's own --lab when typed, else the global one before the command
    lab: object = None
    current: typer.Context | None = ctx
    while current is not None and lab is None:
        source = current.get_parameter_source("lab")
        if source is not None and source.name != "DEFAULT":
            lab = current.params.get("lab")
        current = current.parent  # type: ignore[assignment]
    try:
        return LabView(open_lab(Path(str(lab)) if lab else Path("result"), lazy=True))
    except (RepxError, OSError):
        return None


def _starting(names: list[str], incomplete: str) -> list[str]:
    return [n for n in names if n.startswith(incomplete)]


def complete_runs(ctx: typer.Context, incomplete: str) -> list[str]:
    """Run names."""
    view = _view(ctx)
    return _starting(view.run_names, incomplete) if view is not None else []


def complete_stages(ctx: typer.Context, incomplete: str) -> list[str]:
    """Stage names (the shell keeps those starting with what is typed)."""
    view = _view(ctx)
    return _starting(view.all_stages(), incomplete) if view is not None else []


def complete_groups(ctx: typer.Context, incomplete: str) -> list[str]:
    """Group names."""
    view = _view(ctx)
    groups = list(view.lab.revision.groups) if view is not None else []
    return _starting(groups, incomplete.removeprefix("@"))


def complete_jobs(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Job ids starting with what is typed: short ids (full ids once longer), with run/stage."""
    view = _view(ctx)
    if view is None:
        return []
    return _job_items(view, incomplete)


def _job_items(view: LabView, incomplete: str) -> list[tuple[str, str]]:
    matches = view.with_prefix(incomplete, limit=MAX_JOB_IDS)
    full = len(incomplete) >= view.short_length
    return [
        (job if full else view.short_id(job), f"{view.run_of(job)}/{view.stage_of(job)}")
        for job in matches
    ]


def complete_selectors(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """``repx run`` selectors: runs, @groups, then job ids."""
    view = _view(ctx)
    if view is None:
        return []
    if incomplete.startswith("@"):
        groups = _starting(list(view.lab.revision.groups), incomplete[1:])
        return [(f"@{g}", "group") for g in groups]
    items = [(r, "run") for r in _starting(view.run_names, incomplete)]
    items += [(f"@{g}", "group") for g in view.lab.revision.groups if not incomplete]
    return items + _job_items(view, incomplete)


def complete_run_or_job(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """``list jobs RUN|JOB``: runs, then job ids."""
    view = _view(ctx)
    if view is None:
        return []
    items = [(r, "run") for r in _starting(view.run_names, incomplete)]
    return items + _job_items(view, incomplete)


def complete_states(incomplete: str) -> list[str]:
    """Job states."""
    from repx.inspect.status import JobState  # noqa: PLC0415

    return _starting([s.value for s in JobState], incomplete)


def complete_targets(incomplete: str) -> list[str]:
    """Targets of config.toml."""
    from repx.config import load_config  # noqa: PLC0415
    from repx.errors import RepxError  # noqa: PLC0415

    try:
        return _starting(sorted(load_config().targets), incomplete)
    except RepxError:
        return []
