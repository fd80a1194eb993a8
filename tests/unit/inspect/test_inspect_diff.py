"""`repx diff`: jobs matched by run, stage and effective parameters; reasons from the labs."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from labfactory import RunSpec, StageSpec, write_lab
from repx.build_history import previous_build, record_build
from repx.cli import app
from repx.inspect.diff import diff_labs
from repx.lab.loader import open_lab


def pipeline(seeds, *, script=None, noise=(0.1,)):
    return (
        RunSpec(
            name="sim",
            parameters={"seed": list(seeds), "noise": list(noise)},
            stages=(
                StageSpec("simulate", params=("seed", "noise"), script=script),
                StageSpec("stats", after=("simulate",)),
                StageSpec("aggregate", gather=("stats",)),
            ),
        ),
    )


def test_new_and_dropped_values_are_named(tmp_path):
    old = open_lab(write_lab(tmp_path / "a", pipeline([1, 2, 3])).root)
    new = open_lab(write_lab(tmp_path / "b", pipeline([1, 2, 4])).root)
    report = diff_labs(old, new)
    by = {(c.change, c.stage): c for c in report.jobs}
    added = by[("added", "simulate")]
    assert added.params == {"noise": 0.1, "seed": 4}
    assert added.reasons == ("new parameter value seed=4",)
    # stats inherits seed from simulate: matched by its effective parameters
    assert by[("added", "stats")].params == {"noise": 0.1, "seed": 4}
    assert by[("removed", "simulate")].reasons == ("no longer swept seed=3",)
    [aggregate] = [c for c in report.jobs if c.stage == "aggregate"]
    assert aggregate.change == "changed"
    assert aggregate.reasons == ("upstream changed: input stats_result_json (from stats)",)
    assert (report.added, report.removed, report.changed, report.unchanged) == (2, 2, 1, 4)


def test_a_changed_script_is_shown_down_to_the_line(tmp_path):
    old = open_lab(write_lab(tmp_path / "a", pipeline([1], script='echo 1 > "$out/x"')).root)
    new = open_lab(write_lab(tmp_path / "b", pipeline([1], script='echo 2 > "$out/x"')).root)
    report = diff_labs(old, new)
    [simulate] = [c for c in report.jobs if c.stage == "simulate"]
    assert simulate.change == "changed" and simulate.reasons[0].startswith("script changed")
    downstream = {c.stage: c.reasons for c in report.jobs if c.stage != "simulate"}
    assert downstream["stats"] == ("upstream changed: input simulate_result_json (from simulate)",)
    assert [s.stage for s in report.scripts] == ["simulate"]


def test_identical_labs_have_no_changes(tmp_path):
    lab = open_lab(write_lab(tmp_path / "a", pipeline([1, 2])).root)
    report = diff_labs(lab, lab)
    assert report.jobs == () and report.unchanged == 5


def test_cli_defaults_to_the_previous_build_of_result(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    old = write_lab(tmp_path / "a", pipeline([1, 2]))
    new = write_lab(tmp_path / "b", pipeline([1, 3]))
    runner = CliRunner()
    (tmp_path / "result").symlink_to(old.root)
    record_build(tmp_path / "result", old.root, old.lab_id)
    none = runner.invoke(app, ["diff"])
    assert none.exit_code == 2 and "no earlier build of result is recorded" in none.output
    (tmp_path / "result").unlink()
    (tmp_path / "result").symlink_to(new.root)
    record_build(tmp_path / "result", new.root, new.lab_id)
    assert previous_build(tmp_path / "result", new.lab_id).lab_id == old.lab_id
    shown = runner.invoke(app, ["diff", "--json"])
    assert shown.exit_code == 0, shown.output
    report = json.loads(shown.stdout)
    assert report["old"]["lab_id"] == old.lab_id and report["new"]["lab_id"] == new.lab_id
    assert {(j["change"], j["stage"]) for j in report["jobs"]} >= {("added", "simulate")}
    text = runner.invoke(app, ["diff", str(old.root), str(new.root)])
    assert text.exit_code == 0 and "new parameter value seed=3" in text.stdout
