"""The hand-written lab factory lays its labs out as the Nix library does, so tests built on
it see what real labs hold: jobs keyed by id (not in dependency order) and normalised hints."""

from __future__ import annotations

import json

import pytest

from labfactory import RunSpec, StageSpec, pipeline_runs, write_lab
from repx.lab.loader import open_lab


def test_manifest_jobs_are_keyed_by_id_not_in_dependency_order(tmp_path):
    lab = write_lab(tmp_path / "lab", pipeline_runs(3))
    manifest = json.loads(lab.manifest_path("pipeline").read_text())
    ids = list(manifest["jobs"])
    assert ids == sorted(ids)
    assert list(manifest["stages"]) == ["aggregate", "simulate", "stats"]
    position = {job: i for i, job in enumerate(ids)}
    # at least one job is listed before a job it consumes: order proves nothing
    assert any(
        position[i["job"]] > position[job]
        for job, record in manifest["jobs"].items()
        for i in record["inputs"]
    )
    for record in manifest["jobs"].values():
        keys = [
            "\t".join([i["name"], i["job"], i["output"], "g" * i["gather"]])
            for i in record["inputs"]
        ]
        assert keys == sorted(keys)
    # the factory's own lists keep their documented (dependency) order
    assert [j.split("-", 1)[1] for j in lab.run_jobs["pipeline"]][:3] == ["simulate"] * 3


def test_resource_hints_are_written_normalised(tmp_path):
    hints = {"cpus": 2, "mem": "1G", "time": "00:10:00", "sbatch_opts": ["--qos=x"]}
    runs = (RunSpec("r", stages=(StageSpec("s", resources=hints),)),)
    lab = write_lab(tmp_path / "lab", runs)
    manifest = json.loads(lab.manifest_path("r").read_text())
    expected = {"cpus": 2, "mem": 1024, "time": 10, "sbatch_opts": ["--qos=x"]}
    assert manifest["stages"]["s"]["resources"] == expected
    (job,) = manifest["jobs"].values()
    assert job["resources"] == expected
    assert open_lab(lab.root).jobs[lab.job_ids[0]].resources.mem == 1024


def test_a_hint_the_build_refuses_is_refused(tmp_path):
    runs = (RunSpec("r", stages=(StageSpec("s", resources={"time": "99:99"}),)),)
    with pytest.raises(ValueError, match='invalid value "99:99"'):
        write_lab(tmp_path / "lab", runs)
