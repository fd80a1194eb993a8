"""repx_py: RepX's analysis API over repx labs and run descriptions."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import repx
from labfactory import RunSpec, StageSpec, write_lab
from repx.config import RuntimeKind
from repx.run.reporter import RecordingReporter
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab
from repx_py import Experiment, JobCollection, LocalCacheResolver, ManifestResolver

PRODUCE = r"""
seed=$(cat "$params" | sed 's/[^0-9]//g')
printf 'x,y\n1,%s\n2,%s\n' "$seed" "$((seed * 2))" > "$out/data.csv"
"""
TOTAL = r"""
file=$(sed -n 's/.*"produce_data_csv": "\(.*\)".*/\1/p' "$inputs")
sum=0
while IFS=, read -r x y; do [ "$x" = x ] || sum=$((sum + y)); done < "$file"
echo "$sum" > "$out/result.sum"
"""
KEEP_META = r"""
meta=$(sed -n 's/.*"metadata__sim": "\(.*\)".*/\1/p' "$inputs")
cp "$meta" "$out/meta.json"
"""


def runs():
    sim = RunSpec(
        name="sim",
        parameters={"seed": [1, 2, 3]},
        stages=(
            StageSpec("produce", params=("seed",), outputs=("data.csv",), script=PRODUCE),
            StageSpec("total", after=("produce",), outputs=("result.sum",), script=TOTAL),
        ),
    )
    analysis = RunSpec(
        name="analysis",
        depends_on={"sim": "hard"},
        stages=(
            StageSpec(
                "plot",
                store_base=True,
                metadata_of=("sim",),
                outputs=("meta.json",),
                script=KEEP_META,
            ),
        ),
    )
    return (sim, analysis)


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("repx-py")
    factory = write_lab(tmp / "lab", runs(), static_tools=True)  # busybox sed in host-tools
    base = tmp / "base"
    options = RunOptions(
        where=Location(lab=factory.root, base=base), runtime=RuntimeKind.NATIVE, jobs=2
    )
    summary = run_lab(options, RecordingReporter())
    assert summary.exit_code == 0, summary
    [plot] = factory.run_jobs["analysis"]
    meta = base / "outputs" / plot / "out" / "meta.json"
    return factory, base, meta


def test_from_run_metadata_as_repx_analysis_code_uses_it(ran):
    factory, base, meta = ran
    exp = Experiment.from_run_metadata(meta, base)
    assert len(exp.jobs()) == 6
    producer = exp.jobs().filter(name__contains="produce")[0]
    assert producer.name == "produce-1.0"
    frame = producer.load_csv("data.csv")
    assert list(frame.columns) == ["x", "y"]
    totals = exp.jobs().filter(name__contains="total", seed=2)
    [total] = totals
    assert total.get_output_path("result.sum").read_text().strip() == "6"
    assert total.effective_params == {"seed": 2} and total.params == {}
    assert total.status == "succeeded" and total.run == "sim"
    assert [d.id for d in total.dependencies] == [
        j for j in factory.stage_jobs[("sim", "produce")] if exp.get_job(j).params == {"seed": 2}
    ]
    # store__base or its outputs/ directory: both work, as in RepX
    again = Experiment.from_run_metadata(str(meta), str(base / "outputs"))
    assert again.get_job(total.id).get_output_path("result.sum") == total.get_output_path(
        "result.sum"
    )


def test_paths_follow_the_given_store_not_the_recorded_one(ran, tmp_path):
    """A copy of the store elsewhere (a laptop without Nix) resolves under the copy."""
    _, base, meta = ran
    copy = tmp_path / "copy"
    shutil.copytree(base / "outputs", copy / "outputs", symlinks=True)
    exp = Experiment.from_run_metadata(meta, copy)
    job = exp.jobs().filter(name__contains="total")[0]
    assert job.get_output_path("result.sum").is_relative_to(copy)
    assert job.get_output_path("result.sum").exists()


def test_to_dataframe_has_repx_shape(ran):
    _, base, meta = ran
    frame = Experiment.from_run_metadata(meta, base).jobs().to_dataframe()
    assert frame.index.name == "job_id"
    assert list(frame.columns) == ["name", "seed"]
    assert sorted(frame["seed"]) == [1, 1, 2, 2, 3, 3]
    empty = Experiment.from_run_metadata(meta, base).jobs().filter(name="none").to_dataframe()
    assert empty.empty


def test_experiment_over_a_lab_agrees_with_repx_lab(ran):
    factory, base, _ = ran
    lab = repx.Lab.open(factory.root, base=base)
    exp = Experiment(factory.root, base=base)
    assert exp.lab is not None and len(exp.jobs()) == len(lab)
    assert set(exp.runs()) == {"sim", "analysis"}
    [total] = exp.jobs().filter(stage="total", seed=3)
    assert total.get_output_path("result.sum") == lab.job(total.id).output_path("result.sum")
    assert total.status == "succeeded"
    assert (total.name, total.pname, total.version) == ("total-1.0", "total", "1.0")
    assert total.load_csv("result.sum", header=None).iloc[0, 0] == 9
    frame = exp.jobs().filter(run="sim").to_dataframe()
    assert len(frame) == 6 and "seed" in frame.columns
    # a repx.Lab is accepted as it is
    assert Experiment(lab).jobs().ids == exp.jobs().ids
    assert exp.get_run_for_job(total.id)[0] == "sim"


def test_filter_semantics():
    exp = Experiment(_preloaded_metadata=repx_shaped_metadata())
    jobs = exp.jobs()
    assert len(jobs.filter(name__contains="producer")) == 2
    assert len(jobs.filter(name__startswith="simple-summer")) == 1
    assert len(jobs.filter(name__endswith="-1.1")) == 3
    assert len(jobs.filter(name="simple-producer-1.1")) == 2
    assert len(jobs.filter(name="simple-producer")) == 0  # exact, as in RepX
    # parameters: exact, operators, alternatives
    assert len(jobs.filter(slope=2)) == 2  # the producer and its summer (inherited)
    assert len(jobs.filter(slope__in=(1, 2))) == 3
    assert len(jobs.filter(slope__gt=1)) == 2
    assert len(jobs.filter(slope__ne=1)) == 2
    assert len(jobs.filter(missing=1)) == 0
    assert len(jobs.filter(lambda j: j.params.get("slope") == 1)) == 1
    # chained filters and slices keep being collections
    assert isinstance(jobs[0:2], JobCollection)
    assert jobs.filter(name__contains="summer").filter(slope=2)[0].name == "simple-summer-1.1"
    # RepX metadata keys are attributes of a job
    assert jobs.filter(name__contains="summer")[0].resource_hints == {"mem": "1G"}


def test_unknown_operator_warns_and_compares_equality(caplog):
    exp = Experiment(_preloaded_metadata=repx_shaped_metadata())
    assert len(exp.jobs().filter(name__regex="x")) == 0
    assert "unknown filter operator: __regex" in caplog.text


def test_a_parameter_with_double_underscore_is_a_parameter():
    meta = repx_shaped_metadata()
    meta["jobs"]["a" * 32 + "-p"]["params"] = {"learning__rate": 0.1}
    exp = Experiment(_preloaded_metadata=meta)
    assert len(exp.jobs().filter(learning__rate=0.1)) == 1


def test_indexing_an_empty_result_names_the_filter():
    exp = Experiment(_preloaded_metadata=repx_shaped_metadata())
    with pytest.raises(
        IndexError,
        match=r"filter\(name__contains='nope'\) has 0 job\(s\), no index 0 \(job names: simple-producer-1.1, simple-summer-1.1\)",
    ):
        exp.jobs().filter(name__contains="nope")[0]


def test_repx_effective_params_are_inherited():
    exp = Experiment(_preloaded_metadata=repx_shaped_metadata())
    summer = exp.jobs().filter(name__contains="summer")[0]
    assert summer.effective_params == {"slope": 2, "offset": 0}
    assert summer.params == {"offset": 0}


def test_resolvers(tmp_path):
    exp = Experiment(
        resolver=ManifestResolver({"a" * 32 + "-p": tmp_path}),
        _preloaded_metadata=repx_shaped_metadata(),
    )
    producer = exp.get_job("a" * 32 + "-p")
    assert producer.get_output_path("data.csv") == tmp_path / "data.csv"
    with pytest.raises(KeyError, match=r"has no output 'nope' \(declared: data.csv\)"):
        producer.get_output_path("nope")
    with pytest.raises(FileNotFoundError, match="no output directory"):
        exp.get_job("b" * 32 + "-p").get_output_path("data.csv")
    local = LocalCacheResolver(tmp_path)
    assert local.resolve_path(producer, "x") == tmp_path / ("a" * 32 + "-p") / "out" / "x"


def test_bad_metadata_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run metadata not found"):
        Experiment.from_run_metadata(tmp_path / "none.json", tmp_path)
    (tmp_path / "top.json").write_text('{"type": "root"}')
    with pytest.raises(ValueError, match="expected run metadata \\(type 'run'\\), got 'root'"):
        Experiment.from_run_metadata(tmp_path / "top.json", tmp_path)
    with pytest.raises(ValueError, match="needs a lab"):
        Experiment()


def test_described_run_path_needs_neither_pydantic_nor_the_cli_deps(ran):
    """Inside a job the plain offline Python has pandas but no pydantic v2, typer, rich."""
    _, base, meta = ran
    code = f"""
import sys
for name in ("pydantic", "typer", "rich", "networkx"):
    sys.modules[name] = None  # any import of them fails
from repx_py import Experiment
exp = Experiment.from_run_metadata({str(meta)!r}, {str(base)!r})
job = exp.jobs().filter(name__contains="produce", seed=1)[0]
print(job.load_csv("data.csv")["y"].sum(), len(exp.jobs().to_dataframe()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["3", "6"]


def repx_shaped_metadata():
    """A run metadata file as RepX writes it (no effective_params, no status)."""
    p1, p2, s2 = "a" * 32 + "-p", "b" * 32 + "-p", "c" * 32 + "-s"
    main = lambda outputs, inputs=(): {  # noqa: E731
        "path": "jobs/x/bin/x",
        "outputs": outputs,
        "inputs": list(inputs),
    }
    return {
        "type": "run",
        "name": "simulation-run",
        "gitHash": "unknown",
        "dependencies": {},
        "jobs": {
            p1: {
                "name": "simple-producer-1.1",
                "stage_type": "simple",
                "params": {"slope": 1},
                "executables": {"main": main({"data.csv": "$out/data.csv"})},
            },
            p2: {
                "name": "simple-producer-1.1",
                "stage_type": "simple",
                "params": {"slope": 2},
                "executables": {"main": main({"data.csv": "$out/data.csv"})},
            },
            s2: {
                "name": "simple-summer-1.1",
                "stage_type": "simple",
                "params": {"offset": 0},
                "resource_hints": {"mem": "1G"},
                "executables": {
                    "main": main(
                        {"result.sum": "$out/sum.txt"},
                        [{"job_id": p2, "source_output": "data.csv", "target_input": "data"}],
                    )
                },
            },
        },
    }


def test_metadata_written_by_the_runner_is_valid_json_with_repx_keys(ran):
    _, _, meta = ran
    data = json.loads(Path(meta).read_text())
    assert data["type"] == "run"
    for job in data["jobs"].values():
        assert {"name", "params", "executables"} <= set(job)


def test_distribution_is_repx_lab_with_repx_py_and_analysis_extra():
    """PyPI's `repx` is another project: the docs must never tell `pip install repx`."""
    repo = Path(__file__).resolve().parents[2]
    project = tomllib.loads((repo / "pyproject.toml").read_text())
    assert project["project"]["name"] == "repx-lab"
    assert any(
        d.startswith("pandas") for d in project["project"]["optional-dependencies"]["analysis"]
    )
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert {"src/repx", "src/repx_py"} <= set(wheel["packages"])
    assert project["project"]["scripts"] == {"repx": "repx.cli:main"}
    docs = "\n".join(p.read_text() for p in [repo / "README.md", *(repo / "docs").glob("*.md")])
    assert "pip install 'repx-lab[analysis]'" in docs
    assert "pip install repx[" not in docs and "pip install repx " not in docs
