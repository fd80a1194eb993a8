"""``repx verify``: check every entry of a lab against its integrity list, and its lab id.

Only ``lab/lab-metadata.json`` has to be readable: a damaged manifest shows up as an
altered file (and as a problem), not as an error that stops the check.
"""

from __future__ import annotations

import os
from pathlib import Path

from repx.errors import LabError
from repx.inspect.models import VerifyReport
from repx.lab.integrity import check_integrity
from repx.lab.loader import LAB_METADATA, open_lab, read_model, resolve_root
from repx.lab.models import LabMetadata


def verify_lab(path: Path, expect: str | None = None) -> VerifyReport:
    """Compare every entry of the lab at ``path`` with its list; report the differences.

    Never uses the validation cache. Besides the list, the lab id is recomputed from the
    content (and compared with ``expect``), the lab's structure is checked with
    ``repx build``'s checks, and a lab in the Nix store is compared with Nix's record.
    """
    from repx.lab import validate  # noqa: PLC0415 (imports networkx)

    root = resolve_root(path)
    meta = read_model(root, LAB_METADATA, LabMetadata)
    report = check_integrity(root, meta, exclude=(LAB_METADATA,))
    problems: list[str] = []
    try:
        lab = open_lab(root)
    except LabError as exc:
        problems.append(exc.message)
        problems += validate.lab_id_problems(root, meta)
    else:
        problems += validate.find_problems(lab, check_integrity=False).problems
    if expect is not None:
        problems += [p for p in validate.lab_id_problems(root, meta, expect) if p not in problems]
    # an altered file already fails the check; the NAR hash would only say it again
    nix_problems = None if report.altered else validate.nix_record_problems(root)
    problems += nix_problems or []
    return VerifyReport(
        lab=os.fspath(root),
        lab_id=meta.lab_id,
        ok=report.ok and not problems,
        files_listed=len(meta.files),
        files_found=report.file_count,
        size_bytes=report.size_bytes,
        missing=list(report.missing),
        extra=list(report.extra),
        altered=list(report.altered),
        reasons=dict(report.reasons),
        problems=problems,
        expected_lab_id=expect,
        nix_checked=nix_problems is not None,
    )
