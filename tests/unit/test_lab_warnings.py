"""Build warnings read from a lab: run parameters no stage uses, the stage checks' warnings."""

from __future__ import annotations

from labfactory import RunSpec, StageSpec, edit_json, refresh_integrity, write_lab
from repx.lab.loader import open_lab
from repx.lab.summary import summarize_lab
from repx.lab.warnings import CHECK_WARNINGS, lab_warnings


def lab_with_leftover(tmp_path):
    runs = (
        RunSpec(
            name="sim",
            parameters={"seed": [1, 2], "tmperature": [1.5]},
            stages=(
                StageSpec("simulate", params=("seed",)),
                StageSpec("stats", after=("simulate",)),
            ),
        ),
    )
    return write_lab(tmp_path / "lab", runs)


def test_a_parameter_no_stage_declares_is_named_with_its_line(tmp_path):
    factory = lab_with_leftover(tmp_path)
    bare = lab_warnings(open_lab(factory.root))
    assert bare == [
        "run 'sim': parameter 'tmperature' is used by no stage (stages: simulate, stats), so it"
        " changes no job; remove it, or declare it in the parameters of the stage that needs it"
    ]
    # a lab that records where parameters are written names the line
    edit_json(
        factory.manifest_path("sim"),
        lambda m: m.update(
            parameter_positions={"seed": "nix/run.nix:4", "tmperature": "nix/run.nix:5"}
        ),
    )
    refresh_integrity(factory.root)
    [warning] = lab_warnings(open_lab(factory.root))
    assert warning.startswith(
        "run 'sim' (nix/run.nix:5): parameter 'tmperature' is used by no stage"
    )


def test_check_warnings_are_read_once_each(tmp_path):
    factory = write_lab(tmp_path / "lab")
    assert lab_warnings(open_lab(factory.root)) == []
    line = "repx: warning: stage 'fit' (nix/stages/fit.nix:9:12): ${parameters.n} is inside single quotes"
    (factory.root / CHECK_WARNINGS).write_text(f"{line}\n{line}\n")
    refresh_integrity(factory.root)
    lab = open_lab(factory.root)
    assert lab_warnings(lab) == [line.removeprefix("repx: warning: ")]
    assert summarize_lab(lab).warnings == (line.removeprefix("repx: warning: "),)
