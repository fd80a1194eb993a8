"""``repx schema``: print the JSON Schema of the lab format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from repx.cli import output


def schema(
    output_file: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the schema to this file instead."),
    ] = None,
) -> None:
    """Print the JSON Schema of the lab's JSON files (generated from the models)."""
    from repx.lab.schema import render_schema  # noqa: PLC0415

    text = render_schema()
    if output_file is None:
        typer.echo(text, nl=False)
        return
    output_file.parent.mkdir(parents=True, exist_ok=True)
    output_file.write_text(text, encoding="utf-8")
    output.message(f"wrote {output_file}")
