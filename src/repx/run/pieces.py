"""Where a scatter-gather job's pieces live in the output store, and how far it got.

The names of the layout :mod:`repx.run.scatter` writes (see there), kept apart so that
reading states (``repx status``, ``list``, ``show``) does not import the runner.
"""

# ruff: noqa: PTH110, PTH118, PTH120, PTH123

from __future__ import annotations

import json
import os
from typing import Final

from pydantic import BaseModel, ConfigDict

from repx.lab.models import ScatterGather

#: Directory of the store (beside outputs/) holding the pieces of unfinished jobs.
PIECES: Final = "pieces"
#: A branch's work item, in ``branch-N/``.
WORK_ITEM: Final = "work_item.json"
_OUT: Final = "out"
_REPX: Final = "repx"
_SUCCESS: Final = "SUCCESS"


def pieces_dir(outputs: str, job: str) -> str:
    """``<base>/pieces/<job>`` for the store whose outputs directory is ``outputs``."""
    return os.path.join(os.path.dirname(outputs), PIECES, job)


class Progress(BaseModel):
    """How far a scatter-gather job got: branches complete out of its work items."""

    model_config = ConfigDict(frozen=True)

    done: int
    total: int

    def __str__(self) -> str:
        return f"{self.done}/{self.total} branches"


def progress(outputs: str, job: str, layout: ScatterGather) -> Progress | None:
    """Branch progress of ``job`` (committed, or in ``pieces/``); None before its scatter."""
    sink = f"step-{layout.sink}"
    for root in (os.path.join(outputs, job), pieces_dir(outputs, job)):
        items = os.path.join(root, "scatter", _OUT, layout.work_items)
        try:
            with open(items, encoding="utf-8") as f:
                total = len(json.load(f))
        except (OSError, ValueError, TypeError):
            continue
        done = sum(
            os.path.exists(os.path.join(root, f"branch-{n}", sink, _REPX, _SUCCESS))
            for n in range(total)
        )
        return Progress(done=done, total=total)
    return None
