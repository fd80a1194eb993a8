"""What ``--help`` shows beyond typer's defaults: examples, and metavars in words.

Typer (≥ 0.2x) prints every option's Python type (``<bool>``, ``<list[str]>``, ``<Path>``);
:func:`use_plain_metavars` replaces them once, for every command: flags show nothing,
values a word (``TEXT``, ``PATH``, ``N``), choices their values (``local|slurm``).
Each command's examples are its ``epilog`` (:func:`examples`); the texts live here so
that they read as one set.
"""

from __future__ import annotations

import re
from typing import Any, Final

#: command path (as typed after ``repx``) -> example command lines with a comment each
EXAMPLES: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "": (
        ("repx init my-exp && cd my-exp", "a new experiment"),
        ("repx build && repx run", "build the lab, run it"),
        ("repx report -o report.html", "one page with states, timings, results"),
    ),
    "init": (
        ("repx init my-exp", "the default template in ./my-exp"),
        ("repx init . --name ising", "here, naming the experiment"),
    ),
    "build": (
        ("repx build", "the flake in . -> ./result"),
        ("repx build --override-input repx=path:../repx", "with a local repx"),
    ),
    "schema": (("repx schema > lab.schema.json", "the JSON Schema of the lab's files"),),
    "run": (
        ("repx run", "every run, skipping what is done"),
        ("repx run simulation -j 4", "one run (and what it needs), 4 jobs at once"),
        ("repx run --dry-run", "what would run, and why"),
        ("repx run 0a1b2c3d --force", "rerun one job"),
    ),
    "pull": (
        ("repx pull --target server", "fetch every output of the lab from an SSH target"),
        ("repx pull simulation --target server", "one run's outputs"),
    ),
    "tui": (
        ("repx tui", "the live board: runs, stages, jobs, logs"),
        ("repx tui --screenshot board.svg", "one frame, headless"),
    ),
    "status": (
        ("repx status", "jobs per state, per stage"),
        ("repx status --watch", "live, until every job has finished"),
        ("repx status simulation --json", "one run, as JSON"),
    ),
    "log": (
        ("repx log 0a1b2c3d", "the job's stdout"),
        ("repx log 0a1b2c3d --stderr -f", "follow its stderr"),
    ),
    "cancel": (("repx cancel simulation", "stop a run: its SLURM jobs, its local repx run"),),
    "trace-params": (
        ("repx trace-params 0a1b2c3d", "where a job's parameters come from"),
        ("repx trace-params --json", "every job"),
    ),
    "viz": (
        ("repx viz -o topology.svg", "the stages, coloured by state"),
        ("repx viz --level jobs -f dot", "every job, as graphviz text"),
    ),
    "verify": (("repx verify --lab copy --expect LAB_ID", "check a copied lab"),),
    "export": (("repx export -o lab.tar", "the lab for a host without Nix"),),
    "diff": (
        ("repx diff", "the previous build against ./result"),
        ("repx diff old-lab result --json", "two labs, as JSON"),
    ),
    "report": (("repx report -o report.html", "the HTML report of ./result"),),
    "debug-run": (
        ("repx debug-run 0a1b2c3d", "a shell where the job would run"),
        ("repx debug-run 0a1b2c3d -c 'ls $inputs'", "one command there"),
    ),
    "completions": (('eval "$(repx completions --shell bash)"', "in ~/.bashrc"),),
    "list": (
        ("repx list", "the runs"),
        ("repx list jobs simulation", "a run's jobs and their swept parameters"),
    ),
    "list runs": (("repx list runs --json", "the runs as JSON"),),
    "list jobs": (
        ("repx list jobs", "every job, with the parameters that vary"),
        ("repx list jobs -p seed=2 -p noise", "jobs with seed 2, a noise column"),
        ("repx list jobs --status failed -g", "failed jobs, one table per stage"),
    ),
    "list deps": (("repx list deps 0a1b2c3d", "what a job reads and who reads it"),),
    "list groups": (("repx list groups", "the groups of runs"),),
    "show": (
        ("repx show job 0a1b2c3d", "one job in detail"),
        ("repx show output 0a1b2c3d result.csv", "one of its output files"),
    ),
    "show job": (("repx show job 0a1b2c3d --json", "one job as JSON"),),
    "show run": (("repx show run simulation", "a run's stages and parameters"),),
    "show output": (
        ("repx show output 0a1b2c3d", "the files a job wrote"),
        ("repx show output 0a1b2c3d plots/a.png > a.png", "one of them"),
    ),
    "gc": (
        ("repx gc --dry-run", "what would be removed"),
        ("repx gc -y", "remove it"),
    ),
    "gc pin": (("repx gc pin result --name paper", "keep this lab's outputs"),),
    "gc unpin": (("repx gc unpin paper", "stop keeping them"),),
    "gc list": (("repx gc list --sizes", "recorded and pinned labs"),),
}


def examples(command: str) -> str:
    """The epilog of ``repx COMMAND --help``: its examples, one a line."""
    rows = EXAMPLES[command]
    width = max(len(line) for line, _ in rows)
    body = "\n".join(f"  {line.ljust(width)}  # {why}" for line, why in rows)
    return "Examples:\n" + _escape(body)


def _escape(text: str) -> str:
    # the epilog is rich markup: a '[' would start a tag
    return text.replace("[", r"\[")


_WORDS: Final = {
    "str": "TEXT",
    "path": "PATH",
    "Path": "PATH",
    "int": "N",
    "int range": "N",
    "float": "NUMBER",
    "float range": "NUMBER",
}
_TYPE: Final = re.compile(r"^<(?:list\[)?(?P<name>[^\]>]*)\]?>(?P<more>\.\.\.)?$")


def plain_metavar(shown: str | None, *, flag: bool) -> str | None:
    """typer's ``<type>`` display -> a word (None for a flag or nothing shown)."""
    if flag or not shown:
        return None
    match = _TYPE.match(shown)
    if match is None:
        return shown  # a metavar given by the command
    name = match.group("name")
    if name in ("bool", "bool|"):
        return None
    return _WORDS.get(name, name)


def use_plain_metavars() -> None:
    """Make typer show :func:`plain_metavar` for every option and argument (idempotent)."""
    from typer.core import TyperArgument, TyperOption  # noqa: PLC0415

    if getattr(TyperOption, "_repx_plain", False):
        return
    option_display = TyperOption.display_type_rich
    argument_display = TyperArgument.display_type_rich

    def option_type(self: Any, ctx: Any) -> str | None:
        flag = bool(getattr(self, "is_flag", False) or getattr(self, "count", False))
        return plain_metavar(option_display(self, ctx), flag=flag)

    def argument_type(self: Any, ctx: Any) -> str | None:
        if self.metavar is not None:
            return None  # the name column shows the metavar already
        return plain_metavar(argument_display(self, ctx), flag=False)

    TyperOption.display_type_rich = option_type  # type: ignore[method-assign]
    TyperArgument.display_type_rich = argument_type  # type: ignore[method-assign]
    TyperOption._repx_plain = True  # type: ignore[attr-defined]
