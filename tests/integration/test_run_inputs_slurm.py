"""Inter-run inputs resolved by SLURM tasks (the same lifecycle as local jobs), for real."""

from __future__ import annotations

import json

import pytest
from runlab import repx

from labfactory import RunSpec, StageSpec, write_lab
from repx_py import Experiment
from slurm_cluster import SlurmCluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

ANALYSIS = r"""
cp "$inputs" "$out/inputs.json"
cp "$(jq -r '."metadata__sim"' "$inputs")" "$out/meta.json"
base=$(jq -r '."store__base"' "$inputs")
for job in $(jq -r '.jobs | keys[]' "$out/meta.json"); do
  cat "$base/outputs/$job/out/result.json" >> "$out/result.json"
done
"""


@pytest.fixture(scope="module")
def slurm_cluster():
    with SlurmCluster.session() as cluster:
        yield cluster


def test_slurm_task_resolves_store_base_and_run_metadata(slurm_cluster, tmp_path):
    sim = RunSpec(
        name="sim",
        parameters={"seed": [1, 2]},
        stages=(StageSpec("produce", params=("seed",)), StageSpec("total", after=("produce",))),
    )
    analysis = RunSpec(
        name="analysis",
        depends_on={"sim": "hard"},
        stages=(StageSpec("plot", store_base=True, metadata_of=("sim",), script=ANALYSIS),),
    )
    factory = write_lab(tmp_path / "lab", (sim, analysis))
    base = tmp_path / "base"
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text(
        f'default_target = "hpc"\n[targets.hpc]\nscheduler = "slurm"\nbase = "{base}"\n'
        'runtime = "native"\n'
    )
    env = {"REPX_CONFIG_DIR": str(config)}
    result = repx("run", "--lab", factory.root, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    [plot] = factory.run_jobs["analysis"]
    out = base / "outputs" / plot / "out"
    inputs = json.loads((out / "inputs.json").read_text())
    assert inputs["store__base"] == str(base)
    meta = json.loads((out / "meta.json").read_text())
    assert set(meta["jobs"]) == set(factory.run_jobs["sim"])
    assert {j["status"] for j in meta["jobs"].values()} == {"succeeded"}
    assert (out / "result.json").read_text().count("{") == 4
    # what analysis code reads from it
    exp = Experiment.from_run_metadata(out / "meta.json", base)
    assert sorted(j.effective_params["seed"] for j in exp.jobs().filter(stage="total")) == [1, 2]
