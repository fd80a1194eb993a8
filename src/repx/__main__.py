"""Entry point for ``python -m repx``."""

from __future__ import annotations

import sys

from repx.cli import main

if __name__ == "__main__":
    sys.exit(main())
