"""Files that run on SSH targets (docs/remote.md): the remote runner, ``runner.sh``."""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: The remote runner script (bash; runs with the lab's host-tools only).
RUNNER: Final = Path(__file__).with_name("runner.sh")
