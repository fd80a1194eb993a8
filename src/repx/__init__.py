"""repx: build, inspect and run reproducible computational experiments defined with Nix."""

from __future__ import annotations

#: Not typing's: a SLURM light task (repx.run.light_task) imports this package and must not
#: pay for typing (mypy treats the name as typing's).
TYPE_CHECKING = False
__version__ = "0.1.0"

if TYPE_CHECKING:
    from repx.api import Input, Job, Lab, Run

__all__ = ["Input", "Job", "Lab", "Run", "__version__"]
_API = frozenset({"Input", "Job", "Lab", "Run"})


def __getattr__(name: str) -> object:
    """Import the Python API on first use: the CLI must not pay for it at start-up."""
    if name in _API:
        from repx import api  # noqa: PLC0415

        return getattr(api, name)
    raise AttributeError(f"module 'repx' has no attribute '{name}'")
