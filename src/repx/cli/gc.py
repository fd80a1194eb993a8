"""``repx gc``, ``repx gc pin|unpin|list``: clean an output store, keep what matters."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from repx.cli import output
from repx.cli.help import examples
from repx.cli.inspecting import Column, JsonOption, print_table
from repx.cli.run import BaseOption, LabOption, TargetOption

if TYPE_CHECKING:
    from repx.services.gc import GcReport

app = typer.Typer(
    name="gc",
    help="Remove outputs no pinned or recent lab needs; pin labs to keep them.",
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=examples("gc"),
)

KeepOption = Annotated[
    int,
    typer.Option(
        "--keep-recent", metavar="N", help="Also keep the N most recently run labs.", min=0
    ),
]


def _base(lab: Path, base: Path | None, target: str | None) -> Path:
    from repx.config import resolve_base  # noqa: PLC0415 (keep start-up light)
    from repx.services.location import Location, target_of  # noqa: PLC0415

    return resolve_base(base, target_of(Location(lab=lab, base=base, target=target)))


@app.callback()
def gc(  # noqa: PLR0917 (typer maps parameters to CLI options)
    ctx: typer.Context,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be removed; remove nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Remove without asking.")] = False,
    keep_recent: KeepOption = 5,
    with_nix: Annotated[
        bool,
        typer.Option("--nix", help="Also let Nix delete old labs that nothing else references."),
    ] = False,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_out: JsonOption = False,
) -> None:
    """Remove outputs that no kept lab needs, failed attempts' leftovers and stale work.

    Kept: pinned labs (`repx gc pin`), the current lab (--lab, default `result`) and the
    N most recently run labs. Nothing is removed while a `repx run` uses the store.
    """
    if ctx.invoked_subcommand is not None:
        return
    from repx.services.gc import collect  # noqa: PLC0415

    where = _base(lab, base, target)
    if not dry_run and not yes:
        plan = collect(where, current=lab, keep_recent=keep_recent, dry_run=True)
        if not plan.removed and not with_nix:
            _print_report(plan, json_out)
            return
        _print_report(plan, json_out=False)
        if not sys.stdin.isatty():
            from repx.errors import UsageError  # noqa: PLC0415

            raise UsageError("not removing without confirmation: pass -y (or --dry-run)")
        if not typer.confirm("Remove these?", default=False, err=True):
            output.message("nothing removed")
            return
    report = collect(
        where, current=lab, keep_recent=keep_recent, dry_run=dry_run, with_nix=with_nix
    )
    _print_report(report, json_out)


def _print_report(report: GcReport, json_out: bool) -> None:
    if json_out:
        output.print_json(report)
        return
    for kept in report.kept:
        why = f"pinned '{kept.pin}'" if kept.pin else kept.why
        output.message(f"keeping lab {kept.lab_id} ({why}, {kept.jobs} jobs): {kept.path}")
    verb = "would remove" if report.dry_run else "removed"
    parts = []
    for kind, label in (
        ("output", "output director(ies) no kept lab uses"),
        ("failed-out", "failed attempts' partial outputs"),
        ("work", "leftover work director(ies)"),
    ):
        if count := report.count(kind):
            parts.append(f"{count} {label} ({output.human_size(report.size(kind))})")
    if parts:
        output.message(f"{verb} " + "; ".join(parts))
    else:
        output.message(f"nothing to remove in {report.base}")
    if report.skipped_in_use:
        output.message(f"skipped {len(report.skipped_in_use)} job(s) in use (locked)")
    if report.forgotten_labs:
        output.message(f"forgot {len(report.forgotten_labs)} lab(s) that no longer exist")
    for path in report.nix_deleted:
        output.message(f"nix deleted {path}")
    for path in report.nix_alive:
        output.message(f"nix kept {path}: still referenced (a result link, a profile, …)")


@app.command("pin", epilog=examples("gc pin"))
def pin(
    lab_arg: Annotated[
        Path | None,
        typer.Argument(metavar="LAB", help="The lab to pin (default: --lab, `result`)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Pin name (default: the lab id's start).")
    ] = None,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Pin a lab: gc never removes its outputs, and Nix keeps the lab."""
    from repx.services.gc import pin as pin_lab  # noqa: PLC0415

    chosen = lab_arg or lab
    entry = pin_lab(_base(chosen, base, target), chosen, name)
    output.message(f"pinned lab {entry.lab_id} as '{entry.name}': {entry.path}")


@app.command("unpin", epilog=examples("gc unpin"))
def unpin(
    name: Annotated[str, typer.Argument(help="The pin to remove (see `repx gc list`).")],
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
) -> None:
    """Remove a pin; its lab's outputs become collectable unless kept otherwise."""
    from repx.services.gc import unpin as unpin_lab  # noqa: PLC0415

    unpin_lab(_base(lab, base, target), name)
    output.message(f"unpinned '{name}'")


@app.command("list", epilog=examples("gc list"))
def list_labs(  # noqa: PLR0917 (typer maps parameters to CLI options)
    sizes: Annotated[
        bool, typer.Option("--sizes", help="Add the disk use of each lab's outputs.")
    ] = False,
    keep_recent: KeepOption = 5,
    lab: LabOption = Path("result"),
    base: BaseOption = None,
    target: TargetOption = None,
    json_out: JsonOption = False,
) -> None:
    """List pinned and recently run labs of the output store, and what gc keeps."""
    from repx.services.gc import list_labs as list_store_labs  # noqa: PLC0415

    listing = list_store_labs(
        _base(lab, base, target), current=lab, keep_recent=keep_recent, sizes=sizes
    )
    if json_out:
        output.print_json(listing)
        return
    columns = [Column("kind"), Column("name"), Column("lab_id"), Column("last used")]
    columns += [Column("jobs", "right")]
    if sizes:
        columns.append(Column("size", "right"))
    columns.append(Column("path", fold=True))
    rows = []
    for row in listing.labs:
        used = (
            datetime.datetime.fromtimestamp(row.last_used).strftime("%Y-%m-%d %H:%M")
            if row.last_used
            else "-"
        )
        cells = [row.kind, row.name or "-", row.lab_id, used, str(row.jobs or "-")]
        if sizes:
            cells.append(output.human_size(row.bytes) if row.bytes is not None else "-")
        cells.append(row.path if row.exists else f"{row.path} (gone)")
        rows.append(cells)
    print_table(columns, rows, title=f"labs of {listing.base}")
