"""Inter-run inputs (``store__base``, ``metadata__<run>``) resolved when a job starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labfactory import RunSpec, StageSpec, refresh_integrity, write_lab
from repx.config import RuntimeKind
from repx.errors import LabError
from repx.lab.loader import open_lab
from repx.lab.validate import find_problems
from repx.run.job import run_job
from repx.run.reporter import RecordingReporter
from repx.run.runtime import Runtime, resolve_runtime
from repx.run.spec import make_spec
from repx.run.store import Store
from repx.run.store_models import RunMetadata
from repx.services.location import Location
from repx.services.run import RunOptions, run_lab

#: The analysis job copies what it was given (inputs.json, the description) into $out and
#: reads every upstream output through store__base, as RepX's analysis scripts do.
ANALYSIS = r"""
cp "$inputs" "$out/inputs.json"
meta=$(jq -r '."metadata__sim"' "$inputs")
base=$(jq -r '."store__base"' "$inputs")
cp "$meta" "$out/meta.json"
for job in $(jq -r '.jobs | keys[]' "$meta"); do
  cat "$base/outputs/$job/out/result.json" >> "$out/result.json"
done
"""


FAIL_SEED_2 = """
case $(cat "$params") in *'"seed":2'*) exit 3 ;; esac
cat "$params" > "$out/result.json"
"""


#: The same without jq (not in the static host-tools of the sandboxed lab).
ANALYSIS_SED = r"""
base=$(sed -n 's/.*"store__base": "\(.*\)".*/\1/p' "$inputs")
for dir in "$base"/outputs/*-produce "$base"/outputs/*-total; do
  cat "$dir/out/result.json" >> "$out/result.json"
done
"""


def runs(analysis_script: str = ANALYSIS, kind: str = "hard") -> tuple[RunSpec, ...]:
    sim = RunSpec(
        name="sim",
        parameters={"seed": [1, 2]},
        stages=(
            StageSpec("produce", params=("seed",)),
            StageSpec("total", after=("produce",)),
        ),
    )
    analysis = RunSpec(
        name="analysis",
        depends_on={"sim": kind},
        stages=(StageSpec("plot", store_base=True, metadata_of=("sim",), script=analysis_script),),
    )
    return (sim, analysis)


def run(lab, base, runtime=RuntimeKind.NATIVE, **kwargs):
    options = RunOptions(where=Location(lab=lab, base=base), runtime=runtime, jobs=2, **kwargs)
    return run_lab(options, RecordingReporter())


def plot_out(base, factory):
    [job] = factory.run_jobs["analysis"]
    return base / "outputs" / job / "out", job


def test_factory_emits_run_inputs_into_the_manifest_and_the_id(tmp_path):
    factory = write_lab(tmp_path / "lab", runs())
    lab = open_lab(factory.root)
    [job] = factory.run_jobs["analysis"]
    assert [(i.name, i.kind, i.run) for i in lab.jobs[job].run_inputs] == [
        ("metadata__sim", "run_metadata", "sim"),
        ("store__base", "store_base", None),
    ]
    # the upstream run's hash is part of the consumer's id
    other = write_lab(tmp_path / "lab2", (RunSpec("sim", stages=(StageSpec("x"),)), runs()[1]))
    assert other.run_jobs["analysis"] != factory.run_jobs["analysis"]


def test_local_run_resolves_store_base_and_run_metadata(tmp_path):
    factory = write_lab(tmp_path / "lab", runs())
    base = tmp_path / "base"
    summary = run(factory.root, base)
    assert summary.exit_code == 0, summary
    out, job = plot_out(base, factory)
    inputs = json.loads((out / "inputs.json").read_text())
    # RepX's store__base: the store's base directory (its outputs/ inside)
    assert inputs["store__base"] == str(base.resolve())
    meta_path = inputs["metadata__sim"]
    assert meta_path.startswith(str(base.resolve() / ".work"))  # where the job read it
    meta = RunMetadata.model_validate_json((out / "meta.json").read_bytes())
    assert meta.type == "run" and meta.name == "sim" and meta.lab_id == factory.lab_id
    assert set(meta.jobs) == set(factory.run_jobs["sim"])
    totals = factory.stage_jobs[("sim", "total")]
    for jid, described in meta.jobs.items():
        assert described.status == "succeeded"
        assert described.name == f"{described.stage}-1.0"  # RepX's <pname>-<version>
        assert described.out_dir == str(base.resolve() / "outputs" / jid / "out")
        assert described.output_paths == {"result.json": described.out_dir + "/result.json"}
        assert described.executables["main"].outputs == {"result.json": "$out/result.json"}
        # effective parameters: a total job inherits its producer's seed
        assert described.effective_params.keys() == {"seed"}
        if jid in totals:
            assert described.params == {}
            [upstream] = described.executables["main"].inputs
            assert upstream.job_id in factory.stage_jobs[("sim", "produce")]
    # every upstream output was readable through store__base
    assert (out / "result.json").read_text().count("{") == 4
    # after the commit inputs.json names the description at its committed place
    committed = json.loads((base / "outputs" / job / "repx" / "inputs.json").read_text())
    assert committed["metadata__sim"] == str(
        base.resolve() / "outputs" / job / "repx" / "run-metadata__sim.json"
    )
    assert RunMetadata.model_validate_json(Path(committed["metadata__sim"]).read_bytes()) == meta


def test_soft_dependency_describes_failed_and_missing_jobs(tmp_path):
    sim = RunSpec(
        name="sim",
        parameters={"seed": [1, 2]},
        stages=(
            StageSpec("produce", params=("seed",), script=FAIL_SEED_2),
            StageSpec("total", after=("produce",)),
        ),
    )
    script = 'cp "$(jq -r \'."metadata__sim"\' "$inputs")" "$out/result.json"'
    analysis = runs(script, kind="soft")[1]
    factory = write_lab(tmp_path / "lab", (sim, analysis))
    base = tmp_path / "base"
    summary = run(factory.root, base, continue_on_failure=True)
    assert summary.exit_code == 1, repr(summary)
    out, _ = plot_out(base, factory)
    meta = RunMetadata.model_validate_json((out / "result.json").read_bytes())
    statuses = sorted(j.status for j in meta.jobs.values())
    # seed 1: produce and total succeeded; seed 2: produce failed, its total never ran
    assert statuses == ["failed", "missing", "succeeded", "succeeded"]


def test_bwrap_job_reads_upstream_outputs_through_store_base(tmp_path):
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap is not installed")
    factory = write_lab(tmp_path / "lab", runs(ANALYSIS_SED), static_tools=True)
    base = tmp_path / "base"
    summary = run(factory.root, base, runtime=RuntimeKind.BWRAP)
    assert summary.exit_code == 0, summary
    out, _ = plot_out(base, factory)
    assert (out / "result.json").read_text().count("{") == 4


def test_bwrap_binds_the_described_jobs_outputs(tmp_path):
    factory = write_lab(tmp_path / "lab", runs())
    lab = open_lab(factory.root)
    store = Store.open(tmp_path / "base")
    [job] = factory.run_jobs["analysis"]
    spec = make_spec(lab, job, store.outputs)
    runtime = Runtime(kind=RuntimeKind.BWRAP, path="/x", outputs=str(store.outputs), bwrap="/b")
    # store__base: the whole outputs directory, read-only
    assert runtime.input_dirs(spec) == [str(store.outputs)]
    only_meta = spec.model_copy(update={"store_inputs": {}})
    for jid in factory.run_jobs["sim"]:
        (store.outputs / jid / "out").mkdir(parents=True)
    assert sorted(runtime.input_dirs(only_meta)) == sorted(
        str(store.outputs / j / "out") for j in factory.run_jobs["sim"]
    )


def test_description_is_built_once_per_run(tmp_path):
    two = RunSpec(
        name="analysis",
        depends_on={"sim": "hard"},
        parameters={"k": [1, 2]},
        stages=(StageSpec("plot", params=("k",), metadata_of=("sim",)),),
    )
    factory = write_lab(tmp_path / "lab", (runs()[0], two))
    lab = open_lab(factory.root)
    outputs = tmp_path / "base" / "outputs"
    a, b = (make_spec(lab, j, outputs) for j in factory.run_jobs["analysis"])
    assert a.run_metadata["metadata__sim"] is b.run_metadata["metadata__sim"]


def test_unknown_run_is_one_clear_error(tmp_path):
    factory = write_lab(tmp_path / "lab", runs())
    [job] = factory.run_jobs["analysis"]
    manifest = factory.manifest_path("analysis")
    data = json.loads(manifest.read_text())
    data["jobs"][job]["run_inputs"][0]["run"] = "nope"
    manifest.write_text(json.dumps(data))
    refresh_integrity(factory.root)
    lab = open_lab(factory.root)
    with pytest.raises(
        LabError, match=r"input 'metadata__sim' describes run 'nope'.*runs: sim, analysis"
    ):
        make_spec(lab, job, tmp_path / "outputs")


def test_slurm_task_shape_runs_the_same_lifecycle(tmp_path):
    """What a SLURM task runs (run_job on a JobSpec read back from JSON) resolves the same."""
    factory = write_lab(tmp_path / "lab", runs())
    base = tmp_path / "base"
    lab = open_lab(factory.root)
    store = Store.open(base)
    runtime = resolve_runtime(lab, RuntimeKind.NATIVE, store.outputs)
    for jid in [*factory.stage_jobs[("sim", "produce")], *factory.stage_jobs[("sim", "total")]]:
        assert run_job(store, make_spec(lab, jid, store.outputs), runtime).succeeded
    [job] = factory.run_jobs["analysis"]
    spec = make_spec(lab, job, store.outputs)
    again = type(spec).model_validate_json(spec.model_dump_json())  # through a manifest
    result = run_job(store, again, runtime)
    store.close()
    assert result.succeeded
    meta = json.loads((base / "outputs" / job / "out" / "meta.json").read_text())
    assert {j["status"] for j in meta["jobs"].values()} == {"succeeded"}


def test_described_run_must_be_a_dependency(tmp_path):
    sim, analysis = runs()
    loose = RunSpec(name="analysis", stages=analysis.stages)  # no depends_on
    factory = write_lab(tmp_path / "lab", (sim, loose))
    lab = open_lab(factory.root)
    [job] = factory.run_jobs["analysis"]
    with pytest.raises(LabError, match=r"run 'analysis' does not depend on it"):
        make_spec(lab, job, tmp_path / "outputs")
    # the lab's validation (before anything runs) names it too
    [problem] = find_problems(lab, check_integrity=False).problems
    assert problem.endswith(
        f"jobs.{job}.run_inputs[0].run: run 'sim' is not a dependency of run 'analysis'"
    )
    with pytest.raises(LabError, match=r"run_inputs\[0\].run: run 'sim' is not a dependency"):
        run(factory.root, tmp_path / "base")  # `repx run` refuses before anything runs
    assert not (tmp_path / "base" / "outputs").exists()
