"""``repx build``: build an experiment flake into a lab, then check and summarise it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from repx import nix
from repx.build_history import record_build
from repx.errors import BuildValidationError, LabError, NixError
from repx.lab.loader import open_lab
from repx.lab.summary import LabSummary, summarize_lab
from repx.lab.validate import validate_lab
from repx.nix_log import BuildStatus
from repx.services.build_errors import experiment_dir, map_source_paths, untracked_file


@dataclass(frozen=True)
class BuildOptions:
    """What to build and how."""

    flake_ref: str = "."
    out_link: Path | None = Path("result")
    verbose: bool = False
    override_inputs: Mapping[str, str] = field(default_factory=dict)
    check_integrity: bool = True
    show_trace: bool = False


def build_lab(
    options: BuildOptions,
    *,
    on_status: Callable[[BuildStatus], None] | None = None,
    on_log_line: Callable[[str], None] | None = None,
) -> LabSummary:
    """Run ``nix build``, then load and validate the lab it produced; return its summary."""
    started = time.monotonic()
    try:
        out_path = nix.build(
            options.flake_ref,
            options.out_link,
            verbose=options.verbose,
            on_status=on_status,
            on_log_line=on_log_line,
            override_inputs=options.override_inputs,
            show_trace=options.show_trace,
        )
    except NixError as exc:
        raise _explained(exc, options) from None
    seconds = time.monotonic() - started
    try:
        lab = open_lab(out_path)
        result = validate_lab(lab, check_integrity=options.check_integrity, just_built=True)
    except LabError as exc:
        raise BuildValidationError(
            f"nix built {out_path}, but it is not a valid repx lab: {exc.message}", exc.details
        ) from None
    if options.out_link is not None:
        record_build(options.out_link, lab.root, lab.meta.lab_id)
    return summarize_lab(
        lab,
        size_bytes=result.size_bytes,
        build_seconds=round(seconds, 3),
        out_link=str(options.out_link) if options.out_link is not None else None,
    )


def _explained(exc: NixError, options: BuildOptions) -> NixError:
    """Nix's failure in the user's terms: one line when we know what it means (a package the
    package set lacks, a file git does not track), nix's report only with --show-trace;
    otherwise nix's report with the experiment's source paths mapped back to its files."""
    trace = exc.details if options.show_trace else ""
    if isinstance(exc, nix.MissingAttributeError):
        from repx.services.missing_package import explain  # noqa: PLC0415 (errors only)

        line = explain(
            exc.missing,
            flake_ref=options.flake_ref,
            override_inputs=options.override_inputs,
            show_trace=options.show_trace,
        )
        if line is not None:
            return NixError(line, trace)
    experiment = experiment_dir(options.flake_ref)
    if experiment is None:
        return exc
    line = untracked_file(exc.details, experiment)
    if line is not None:
        return NixError(line, trace)
    return NixError(exc.message, map_source_paths(exc.details, experiment))
