"""`repx report`: a self-contained HTML page built from a real (factory) lab run."""

from __future__ import annotations

import base64
import re
import shutil
from html.parser import HTMLParser

import pytest
from typer.testing import CliRunner

from labfactory import RunSpec, StageSpec, write_lab
from repx.cli import app
from repx.config import RuntimeKind
from repx.run.reporter import RecordingReporter
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab

PNG = b"\x89PNG\r\n\x1a\n"
PLOT = r"""seed=$(jq -r .seed "$params")
if [ "$seed" = 3 ]; then echo "diverged at step 7" >&2; exit 4; fi
printf 'seed,value\n%s,%s\n' "$seed" "$((seed * 10))" > "$out/table.csv"
printf '\211PNG\r\n\032\nfake' > "$out/plot.png"
"""


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.images: list[str] = []
        self.cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        self._in_cell = tag in {"td", "th"}

    def handle_data(self, data):
        if self._in_cell:
            self.cells.append(data)


@pytest.fixture
def report_html(tmp_path, monkeypatch):
    runs = (
        RunSpec(
            name="sim",
            parameters={"seed": [1, 2, 3]},
            stages=(
                StageSpec("plot", params=("seed",), outputs=("plot.png", "table.csv"), script=PLOT),
            ),
        ),
    )
    lab = write_lab(tmp_path / "lab", runs)
    base = tmp_path / "base"
    options = RunOptions(
        where=Location(lab=lab.root, base=base),
        runtime=RuntimeKind.NATIVE,
        jobs=2,
        continue_on_failure=True,
    )
    assert run_lab(options, RecordingReporter()).exit_code == 1
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--lab", str(lab.root), "--base", str(base)])
    assert result.exit_code == 0, result.output
    assert "wrote " in result.output
    return lab, (tmp_path / "report.html").read_text()


def test_report_shows_states_parameters_failures_and_results(report_html):
    lab, page = report_html
    parsed = _Collector()
    parsed.feed(page)
    assert lab.lab_id in page and "succeeded: 2" in page and "failed: 1" in page
    if shutil.which("dot"):
        assert "<svg" in page and "legend (jobs)" in page
    assert parsed.cells[parsed.cells.index("seed") :][:2] == ["seed", "1, 2, 3"]
    # the failure: its parameters, exit code and the end of its stderr
    assert re.search(r"<h3>plot seed=3</h3>\s*<p><code>[^<]+</code>: exit 4", page)
    assert "diverged at step 7" in page
    # results: each CSV as a table, each PNG inline
    assert parsed.cells.count("seed") >= 3 and "20" in parsed.cells and "10" in parsed.cells
    pngs = [base64.b64decode(src.split(",", 1)[1]) for src in parsed.images]
    assert len(pngs) == 2 and all(p.startswith(PNG) for p in pngs)
    # self-contained: nothing is fetched (SVG namespaces are names, not downloads)
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)
    assert "<link" not in page and "<script" not in page


def test_report_refuses_a_non_html_name(tmp_path):
    lab = write_lab(tmp_path / "lab")
    result = CliRunner().invoke(app, ["report", "--lab", str(lab.root), "-o", "r.pdf"])
    assert result.exit_code == 2 and "name it *.html" in result.output
