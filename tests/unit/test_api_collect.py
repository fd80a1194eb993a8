"""``Lab.collect``: one DataFrame of an output of many jobs, beside their parameters."""

from __future__ import annotations

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx import Lab
from repx.config import RuntimeKind
from repx.errors import UsageError
from repx.run.reporter import RecordingReporter
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab

pd = pytest.importorskip("pandas")

FIT = """\
p=$(cat "$params")
printf '{"loss": 0.5, "seed": "shadowed", "meta": {"params": %s}}\\n' "$p" > "$out/fit.json"
printf 'step,value\\n1,10\\n2,20\\n' > "$out/curve.csv"
case "$p" in *'"seed":3'*) exit 1 ;; esac
"""


@pytest.fixture
def ran(tmp_path):
    runs = (
        RunSpec(
            name="sweep",
            parameters={"seed": [1, 2, 3], "n": [10]},
            stages=(
                StageSpec(
                    "fit", params=("seed", "n"), outputs=("fit.json", "curve.csv"), script=FIT
                ),
                StageSpec("summary", gather=("fit",), outputs=("all.json",)),
            ),
        ),
    )
    factory = write_lab(tmp_path / "lab", runs)
    base = tmp_path / "base"
    options = RunOptions(
        where=Location(lab=factory.root, base=base),
        runtime=RuntimeKind.NATIVE,
        continue_on_failure=True,
    )
    run_lab(options, RecordingReporter())
    return Lab.open(factory.root, base=base)


def test_collect_json_rows_beside_the_parameters(ran):
    frame = ran.collect("fit.json", stage="fit")
    # seed 3 failed: its file is not there, it is left out
    assert list(frame.columns) == [
        "id",
        "run",
        "stage",
        "seed",
        "n",
        "loss",
        "out.seed",
        "meta.params.n",
        "meta.params.seed",
    ]
    assert sorted(frame["seed"]) == [1, 2]
    assert set(frame["loss"]) == {0.5} and set(frame["out.seed"]) == {"shadowed"}
    assert (frame["seed"] == frame["meta.params.seed"]).all()
    assert set(frame["stage"]) == {"fit"} and set(frame["run"]) == {"sweep"}
    # parameter filters as in jobs()
    assert list(ran.collect("fit.json", seed=2)["seed"]) == [2]


def test_collect_csv_one_row_per_line(ran):
    frame = ran.collect("curve.csv", stage="fit")
    assert len(frame) == 4
    assert list(frame.columns[-2:]) == ["step", "value"]
    assert frame.groupby("seed")["value"].sum().to_dict() == {1: 30, 2: 30}


def test_collect_errors(ran):
    with pytest.raises(UsageError, match=r"has no 'fit.json' yet \(status: failed"):
        ran.collect("fit.json", stage="fit", missing="raise")
    with pytest.raises(UsageError, match=r"no job of stage 'fit' declares an output 'fitt.json'"):
        ran.collect("fitt.json", stage="fit")
    with pytest.raises(UsageError, match=r"collect reads .json, .csv or .tsv outputs"):
        ran.collect("plot.png", stage="fit")
    with pytest.raises(UsageError, match="unknown stage 'fitt'"):
        ran.collect("fit.json", stage="fitt")
