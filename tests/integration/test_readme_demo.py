"""The README's first command, `tools/demo.sh`, runs the example end to end (twice)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("nix") is None or os.geteuid() != 0,
        reason="needs nix and root (tools/setup.sh configures the machine)",
    ),
]


def test_demo_runs_the_example_and_shows_the_results(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    first = subprocess.run(
        [str(REPO / "tools/demo.sh"), str(demo)], capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "# Estimating pi" in first.stdout
    report = (
        demo
        / next(
            line.split()[-1] for line in first.stdout.splitlines() if line.startswith("report:")
        ).split(str(demo) + "/")[-1]
    )
    assert report.is_file() and "| 20000 | 3 |" in report.read_text()
    assert "8 succeeded" in first.stdout + first.stderr

    # Idempotent: the second invocation reuses the experiment and every output.
    second = subprocess.run(
        [str(REPO / "tools/demo.sh"), str(demo)], capture_output=True, text=True, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "8 already done" in second.stdout + second.stderr
    assert report.read_text() in second.stdout

    # After an edit that changes job ids, the old outputs stay and the new report is shown.
    runs = demo / "nix/runs/report.nix"
    runs.write_text(runs.read_text().replace("digits = [ 4 ]", "digits = [ 2 ]"))
    third = subprocess.run(
        [str(REPO / "tools/demo.sh"), str(demo)], capture_output=True, text=True, check=False
    )
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    # the new report rounds to 2 digits: "| 20000 | 3 | 3.14 | 0.01 |" (mean, spread of 3 seeds)
    row = re.search(r"\| 20000 \| 3 \| (\d\.\d\d) \| (\d\.\d\d) \|", third.stdout)
    assert row is not None, third.stdout[-3000:]
    assert 3.0 < float(row.group(1)) < 3.3  # an estimate of pi from 20,000 samples
    assert len(list((demo / "repx-runs/outputs").glob("*-report"))) == 2
