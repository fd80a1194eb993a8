"""``repx verify``: hash every file of a lab again and compare with its ``files`` list.

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


def verify_lab(path: Path) -> VerifyReport:
    """Recompute the sha256 of every file of the lab at ``path``; report the differences.

    Never uses the validation cache. Besides the file list, the lab's structure is checked
    with ``repx build``'s checks (its JSON files load, every reference resolves).
    """
    root = resolve_root(path)
    meta = read_model(root, LAB_METADATA, LabMetadata)
    report = check_integrity(root, meta.files, exclude=(LAB_METADATA,))
    problems: list[str] = []
    try:
        lab = open_lab(root)
    except LabError as exc:
        problems.append(exc.message)
    else:
        from repx.lab.validate import find_problems  # noqa: PLC0415 (imports networkx)

        problems += find_problems(lab, check_integrity=False).problems
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
        problems=problems,
    )
