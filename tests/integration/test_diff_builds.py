"""`repx build` remembers what `result` pointed at; `repx diff` explains the new revision."""

from __future__ import annotations

import json

import pytest
from runlab import GitExperiment

pytestmark = pytest.mark.slow


def test_two_builds_then_diff_names_the_script_line_and_the_reruns(tmp_path):
    exp = GitExperiment(tmp_path)
    experiment, repx, build = exp.root, exp.repx, exp.build
    build()
    stage = experiment / "nix" / "stages" / "simulate.nix"
    stage.write_text(stage.read_text().replace("print c + 0", "print c + 0  # inside count"))
    build()
    shown = repx("diff", "--json")  # the previous build of ./result against ./result
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    changed = {j["stage"] for j in report["jobs"] if j["change"] == "changed"}
    assert changed == {"simulate", "aggregate", "report"}  # the script, then downstream
    assert report["added"] == report["removed"] == 0
    [script] = report["scripts"]
    assert script["stage"] == "simulate" and script["file"].endswith("stages/simulate.nix")
    assert any(line.startswith("+") and "# inside count" in line for line in script["lines"])
    params = [j["params"] for j in report["jobs"] if j["stage"] == "simulate"]
    assert {p["seed"] for p in params} == {1, 2, 3}
    text = repx("diff")
    assert "script changed" in text.stdout and "# inside count" in text.stdout
