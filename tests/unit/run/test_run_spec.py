"""Job specs: inputs resolved to store paths, gathers, outputs, resource hints."""

from __future__ import annotations

import pytest

from labfactory import edit_json
from repx.errors import LabError
from repx.lab.loader import open_lab
from repx.run.spec import make_spec, output_path


def test_simple_and_gathered_inputs(factory_lab, tmp_path):
    lab = open_lab(factory_lab.root)
    outputs = tmp_path / "outputs"
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]
    spec = make_spec(lab, stats, outputs)
    [inp] = lab.jobs[stats].inputs
    assert spec.inputs == {inp.name: str(outputs / inp.job / "out" / "samples.csv")}
    assert spec.executable == str(factory_lab.root / f"jobs/{stats}/bin/stats")
    assert spec.parameters_file == str(factory_lab.root / f"jobs/{stats}/parameters.json")
    assert spec.outputs == ("stats.json",)

    [aggregate] = factory_lab.stage_jobs[("simulation", "aggregate")]
    spec = make_spec(lab, aggregate, outputs)
    assert spec.inputs == {}
    [(_, entries)] = spec.gathers.items()
    assert {e.job for e in entries} == set(factory_lab.stage_jobs[("simulation", "stats")])
    # stats declares no parameter: each entry carries what it inherits from its simulate job
    assert all(lab.jobs[e.job].params == {} for e in entries)
    for entry in entries:
        [upstream] = lab.jobs[entry.job].inputs
        assert entry.params == lab.jobs[upstream.job].params != {}
    assert sorted((e.params["seed"], e.params["noise"]) for e in entries) == [
        (seed, noise) for seed in (1, 2, 3) for noise in (0.1, 0.5)
    ]


def test_resources(factory_lab, tmp_path):
    lab = open_lab(factory_lab.root)
    job = factory_lab.job_ids[0]
    spec = make_spec(lab, job, tmp_path)
    assert spec.cpus == 1 and spec.mem_bytes == 0


def test_output_paths():
    assert output_path("$out/a/b.csv") == "a/b.csv"
    for bad in ("out/x", "$out/", "$out//etc/passwd", "$out/../x"):
        with pytest.raises(LabError):
            output_path(bad)


def test_missing_upstream_output_is_a_lab_error(factory_lab, tmp_path):
    stats = factory_lab.stage_jobs[("simulation", "stats")][0]

    def rename(manifest):
        manifest["jobs"][stats]["inputs"][0]["output"] = "nope.csv"

    edit_json(factory_lab.manifest_path("simulation"), rename)
    lab = open_lab(factory_lab.root)
    with pytest.raises(LabError, match=r"has no output 'nope\.csv'"):
        make_spec(lab, stats, tmp_path)
