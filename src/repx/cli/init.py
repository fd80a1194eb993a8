"""``repx init``: create an experiment from a template."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output


def init(
    directory: Annotated[
        Path, typer.Argument(help="Where to create the experiment (created if missing).")
    ] = Path(),
    template: Annotated[
        str, typer.Option("--template", "-t", help="Template to copy (see --list).")
    ] = "default",
    name: Annotated[
        str | None,
        typer.Option("--name", "-n", help="Experiment name (replaces 'my-experiment')."),
    ] = None,
    list_only: Annotated[
        bool, typer.Option("--list", help="List the available templates and exit.")
    ] = False,
) -> None:
    """Create an experiment flake from a template and stage it in git."""
    from repx.services.init import init_experiment, list_templates  # noqa: PLC0415

    if list_only:
        for info in list_templates():
            typer.echo(f"{info.name}\t{info.description}")
        return
    result = init_experiment(directory, template, name)
    for file in result.files:
        output.message(f"wrote: {file}")
    if result.git_initialized:
        output.message(f"initialised a git repository in {result.dest}")
    if result.git_staged:
        output.message("staged the new files in git (nix sees only tracked or staged files)")
    where = "" if directory == Path() else f"cd {directory} && "
    output.message(f"created experiment from template '{result.template}'; next: {where}repx build")
