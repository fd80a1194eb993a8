"""repx: build, inspect and run reproducible computational experiments defined with Nix."""

from __future__ import annotations

__version__ = "0.1.0"
