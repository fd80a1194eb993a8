"""The README's first command, `tools/demo.sh`, runs the example end to end (twice)."""

from __future__ import annotations

import os
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


def _plot_line(stdout: str) -> Path:
    """The demo ends by printing where the plot is."""
    last = stdout.splitlines()[-1]
    assert last.startswith("plot:"), stdout[-3000:]
    return Path(last.split()[-1])


def test_demo_runs_the_example_and_shows_the_results(tmp_path: Path) -> None:
    demo = tmp_path / "demo"
    first = subprocess.run(
        [str(REPO / "tools/demo.sh"), str(demo)], capture_output=True, text=True, check=False
    )
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "10 succeeded" in first.stdout + first.stderr
    # the aggregate table: a header and one row per simulation (2 seeds x 4 temperatures)
    header = "temperature,seed,size,sweeps,magnetisation,susceptibility,energy,specific_heat"
    table = first.stdout.split(header + "\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len(table) == 8 and table[0].startswith("1.5,1,32,1000,")
    plot = _plot_line(first.stdout)
    assert plot.is_absolute() and plot.is_relative_to(demo / "repx-runs" / "outputs")
    assert plot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

    # Idempotent: the second invocation reuses the experiment and every output.
    second = subprocess.run(
        [str(REPO / "tools/demo.sh"), str(demo)], capture_output=True, text=True, check=False
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "10 already done" in second.stdout + second.stderr
    assert "\n".join(table) in second.stdout
    assert _plot_line(second.stdout) == plot

    # After an edit that changes job ids, the old outputs stay and the new plot is shown.
    runs = demo / "nix/runs/analysis.nix"
    runs.write_text(runs.read_text().replace("burn_in = [ 200 ]", "burn_in = [ 500 ]"))
    third = subprocess.run(
        [str(REPO / "tools/demo.sh"), str(demo)], capture_output=True, text=True, check=False
    )
    assert third.returncode == 0, third.stdout[-3000:] + third.stderr[-3000:]
    # the simulations are reused; only the aggregate and the plot run again
    assert "2 succeeded, 8 already done" in third.stdout + third.stderr
    new_plot = _plot_line(third.stdout)
    assert new_plot != plot and new_plot.read_bytes().startswith(b"\x89PNG")
    assert plot.is_file()
    assert len(list((demo / "repx-runs/outputs").glob("*-plot"))) == 2
