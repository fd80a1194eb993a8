"""Every command's --help: an example section, and no Python-type metavars."""

from __future__ import annotations

import re
import shlex

import pytest
import typer
from typer.testing import CliRunner

from repx.cli import app
from repx.cli.help import EXAMPLES, plain_metavar

runner = CliRunner()


def command_paths() -> list[str]:
    root = typer.main.get_command(app)
    paths = [""]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append(name)
        paths += [f"{name} {sub}" for sub in getattr(command, "commands", {})]
    return paths


def help_of(path: str) -> str:
    result = runner.invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_every_command_has_examples():
    assert sorted(command_paths()) == sorted(EXAMPLES)


@pytest.mark.parametrize("path", command_paths())
def test_help_shows_examples_and_plain_metavars(path):
    text = help_of(path)
    assert "Examples:" in text
    for line, _why in EXAMPLES[path]:
        assert line in text.replace("\\[", "[")
    for bad in ("<bool>", "<str>", "<list[", "<path>", "<Path>", "<int", "<float", "]...]..."):
        assert bad not in text, (path, bad)
    assert not re.search(r"\[\[[A-Z]", text), text  # no doubled brackets in the usage line


@pytest.mark.parametrize("path", [p for p in command_paths() if p])
def test_example_options_exist(path):
    """The options an example uses are options of its command (it would run)."""
    text = help_of(path)
    for line, _why in EXAMPLES[path]:
        words = shlex.split(line.split("&&")[0].split(">")[0].split("|")[0])
        for word in words:
            if word.startswith("-"):
                assert re.search(rf"(^|[\s,│]){re.escape(word)}([\s,]|$)", text, re.M), (
                    path,
                    word,
                )


def test_plain_metavar():
    assert plain_metavar("<bool>", flag=False) is None
    assert plain_metavar("<int>", flag=True) is None
    assert plain_metavar("<list[str]>", flag=False) == "TEXT"
    assert plain_metavar("<Path>", flag=False) == "PATH"
    assert plain_metavar("<local|slurm>", flag=False) == "local|slurm"
    assert plain_metavar("NAME=REF", flag=False) == "NAME=REF"
