"""``repx verify``: check every file of a lab against its sha256 list."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final

import typer

from repx.cli import output
from repx.cli.inspecting import JsonOption, LabOption, print_model, stdout_is_terminal

#: Exit status when the lab differs from its file list (2 stays "cannot read the lab").
EXIT_DIFFERS: Final = 1
#: Files of each kind listed before counting the rest.
_MAX_LISTED: Final = 50


def verify(
    lab: LabOption = Path("result"),
    json_output: JsonOption = False,
    expect: Annotated[
        str | None,
        typer.Option(
            "--expect",
            metavar="LAB_ID",
            help="The lab id repx build printed: the content must hash to it.",
        ),
    ] = None,
) -> int:
    """Check every entry of the lab (files, symlinks, directories) and its lab id.

    Reports missing, extra and altered entries; a lab in the Nix store is also compared
    with Nix's record of the path. Exits with 1 when anything differs (or the lab's
    structure has problems).
    """
    from repx.inspect.verify import verify_lab  # noqa: PLC0415 (keep `repx --help` fast)

    if stdout_is_terminal() and not json_output:
        with output.err_console().status("hashing the lab's files", spinner="dots"):
            report = verify_lab(lab, expect)
    else:
        report = verify_lab(lab, expect)
    if json_output:
        print_model(report)
        return 0 if report.ok else EXIT_DIFFERS
    lines: list[str] = []
    for kind, paths in (
        ("missing", report.missing),
        ("extra", report.extra),
        ("altered", report.altered),
    ):
        lines += [
            f"{kind}\t{p}" + (f"\t({report.reasons[p]})" if p in report.reasons else "")
            for p in paths[:_MAX_LISTED]
        ]
        if len(paths) > _MAX_LISTED:
            lines.append(f"{kind}\t… {len(paths) - _MAX_LISTED} more (--json lists all)")
    lines += [f"problem\t{p}" for p in report.problems]
    if lines:
        print("\n".join(lines))
    size = output.human_size(report.size_bytes)
    summary = f"lab {report.lab_id}: {report.files_listed} files listed, {size} on disk"
    if report.ok:
        checked = "content matches the lab id"
        if report.expected_lab_id:
            checked += " (as expected)"
        if report.nix_checked:
            checked += " and Nix's record of the store path"
        output.message(f"{summary}, {checked}: ok")
        return 0
    counts = [
        f"{len(paths)} {kind}"
        for kind, paths in (
            ("missing", report.missing),
            ("extra", report.extra),
            ("altered", report.altered),
            ("other problems", report.problems),
        )
        if paths
    ]
    output.message(f"{summary}: {', '.join(counts)}")
    return EXIT_DIFFERS
