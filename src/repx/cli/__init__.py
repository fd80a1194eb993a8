"""The ``repx`` command line: the typer app, its commands, and ``main``.

Each command lives in its own ``cli/<name>.py`` module holding a plain function, and is
registered below. Command modules import only typer and the standard library at the
top (``repx --help`` must start fast); services, models and rich are imported inside
the command functions. Commands raise :class:`~repx.errors.RepxError`; only
:class:`_RepxGroup` (used by ``main`` and by test runners alike) turns errors into
``error: …`` on stderr and an exit code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from repx import __version__
from repx.cli import build as build_cmd
from repx.cli import cancel as cancel_cmd
from repx.cli import complete, list_cmd, show, trace, verify, viz
from repx.cli import debug_run as debug_cmd
from repx.cli import diff as diff_cmd
from repx.cli import export as export_cmd
from repx.cli import gc as gc_cmd
from repx.cli import init as init_cmd
from repx.cli import log as log_cmd
from repx.cli import pull as pull_cmd
from repx.cli import report as report_cmd
from repx.cli import run as run_cmd
from repx.cli import schema as schema_cmd
from repx.cli import status as status_cmd
from repx.cli import tui as tui_cmd
from repx.cli.help import examples, use_plain_metavars
from repx.cli.options import option_defaults
from repx.errors import RepxError

#: Set to 1 to let unexpected exceptions show their traceback.
DEBUG_ENV = "REPX_DEBUG"
EXIT_INTERRUPTED = 130
EXIT_USAGE = 2


class _RepxGroup(TyperGroup):
    """The root command group: maps errors to one-line messages and exit codes."""

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        complete.enable_if_asked()
        code = _invoke(super().main, args, prog_name or "repx", complete_var, extra)
        if standalone_mode:
            sys.exit(code)
        return code


def _invoke(
    run: Any, args: Any, prog_name: str, complete_var: str | None, extra: dict[str, Any]
) -> int:
    """Run the click machinery without its own error handling; return the exit code."""
    try:
        result = run(
            args=args,
            prog_name=prog_name,
            complete_var=complete_var,
            standalone_mode=False,
            **extra,
        )
    except RepxError as exc:
        _print_error(exc.message, exc.details)
        return exc.exit_code
    except typer.TyperException as exc:
        # typer's own errors (public base class; typer >= 0.26 bundles its own click, whose
        # UsageError it does not export): usage errors carry the command's context
        return _typer_error(exc)
    except (typer.Abort, KeyboardInterrupt):
        _print_error("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        _print_error(
            f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)"
        )
        return 1
    # standalone_mode=False returns the exit code of typer.Exit, or the command's value.
    return result if isinstance(result, int) else 0


def _typer_error(exc: typer.TyperException) -> int:
    code: int = getattr(exc, "exit_code", 1)
    text = exc.format_message().strip()
    ctx = getattr(exc, "ctx", None)
    if not text:  # no arguments: typer's rich help printer has already shown the help
        return code
    if "\n" in text:  # the same help as text (TYPER_USE_RICH=0): a message is one line
        sys.stderr.write(text + "\n")
        return code
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    _print_error(text + hint)
    return code


def _print_error(message: str, details: str = "") -> None:
    text = f"error: {message}\n"
    if details:
        text += "".join(f"  {line}\n" for line in details.splitlines())
    sys.stderr.write(text)
    sys.stderr.flush()


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"repx {__version__}")
        raise typer.Exit()


app = typer.Typer(
    name="repx",
    cls=_RepxGroup,
    help="Build, inspect and run reproducible experiments defined with Nix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples(""),
)
use_plain_metavars()


@app.callback()
def _root(  # noqa: PLR0917 (typer maps parameters to CLI options)
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
    lab: Annotated[
        Path | None,
        typer.Option(
            "--lab", "-l", help="The lab of every command (default: ./result).", show_default=False
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            "--target", help="Target of config.toml for every command.", show_default=False
        ),
    ] = None,
    scheduler: run_cmd.SchedulerOption = None,
    resources: Annotated[
        Path | None,
        typer.Option("--resources", help="resources.toml for `run`.", show_default=False),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="Debug messages.", show_default=False)
    ] = 0,
) -> None:
    """Build, inspect and run reproducible experiments defined with Nix."""
    # RepX's global options, given before the command: they become the defaults of the
    # command's own options of the same name (given after the command, those still win).
    chosen = {
        "lab": lab,
        "target": target,
        "scheduler": scheduler,
        "resources": resources,
        "verbose": True if verbose else None,
    }
    given = {name: value for name, value in chosen.items() if value is not None}
    if given:
        ctx.default_map = option_defaults(ctx.command, given)


app.command("init", epilog=examples("init"))(init_cmd.init)
app.command("build", epilog=examples("build"))(build_cmd.build)
app.command("schema", epilog=examples("schema"))(schema_cmd.schema)
app.command("run", epilog=examples("run"))(run_cmd.run)
app.command("status", epilog=examples("status"))(status_cmd.status)
app.command("log", epilog=examples("log"))(log_cmd.log)
app.command("cancel", epilog=examples("cancel"))(cancel_cmd.cancel)
app.command("tui", epilog=examples("tui"))(tui_cmd.tui)
app.command("pull", epilog=examples("pull"))(pull_cmd.pull)
app.add_typer(list_cmd.app, name="list")
app.add_typer(show.app, name="show")
app.command("trace-params", epilog=examples("trace-params"))(trace.trace_params)
app.command("viz", epilog=examples("viz"))(viz.viz)
app.command("verify", epilog=examples("verify"))(verify.verify)
app.command("export", epilog=examples("export"))(export_cmd.export)
app.command("diff", epilog=examples("diff"))(diff_cmd.diff)
app.command("report", epilog=examples("report"))(report_cmd.report)
app.add_typer(gc_cmd.app, name="gc")
app.command("debug-run", epilog=examples("debug-run"))(debug_cmd.debug_run)
app.command("completions", epilog=examples("completions"))(complete.completions)


def main() -> int:
    """Run the ``repx`` command line; return its exit code."""
    try:
        return int(app(prog_name="repx", standalone_mode=False))
    except KeyboardInterrupt:  # outside command execution (e.g. while importing)
        _print_error("interrupted")
        return EXIT_INTERRUPTED
