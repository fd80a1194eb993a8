"""Fixtures of the inspection tests: a factory lab opened as a LabView, an output store.

Not a conftest.py: ``from conftest import …`` elsewhere must keep finding tests/conftest.py.
Test modules import the fixtures they use (``from inspect_fixtures import base, view``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labfactory import FactoryLab
from repx.inspect.view import LabView
from repx.lab.loader import open_lab


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """Where the output store of a test goes (not created)."""
    return tmp_path / "runs"


@pytest.fixture
def view(factory_lab: FactoryLab, base: Path) -> LabView:
    """The 14-job factory lab (simulation: simulate 6 -> stats 6 -> aggregate 1; report)."""
    return LabView(open_lab(factory_lab.root), base)
