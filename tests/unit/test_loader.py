"""open_lab: reading factory labs, and one-line errors naming file and field."""

from __future__ import annotations

import pytest

from labfactory import RunSpec, StageSpec, edit_json, sweep_runs, write_lab
from repx.errors import LabError
from repx.lab.loader import LAB_METADATA, open_lab


def test_loads_every_run_and_job(factory_lab):
    lab = open_lab(factory_lab.root)
    assert lab.root == factory_lab.root.resolve()
    assert list(lab.runs) == ["simulation", "report"]
    assert len(lab.jobs) == 14 == lab.meta.job_count
    assert set(lab.jobs) == set(factory_lab.job_ids)
    aggregate = factory_lab.stage_jobs[("simulation", "aggregate")][0]
    assert lab.job_runs[aggregate] == ["simulation"]
    plot = lab.jobs[factory_lab.stage_jobs[("report", "plot")][0]]
    assert [(i.run, i.job, i.gather) for i in plot.inputs] == [("simulation", aggregate, True)]


def test_accepts_result_symlink_and_lab_subdirectory(factory_lab, tmp_path):
    link = tmp_path / "result"
    link.symlink_to(factory_lab.root)
    assert open_lab(link).root == factory_lab.root.resolve()
    assert open_lab(factory_lab.root / "lab").root == factory_lab.root.resolve()


def test_job_shared_by_two_runs_is_stored_once(tmp_path):
    stage = StageSpec("simulate", params=("seed",))
    runs = [RunSpec(name, (stage,), parameters={"seed": [1, 2]}) for name in ("a", "b")]
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    assert len(lab.jobs) == 2
    assert all(runs == ["a", "b"] for runs in lab.job_runs.values())


def test_loads_a_10k_job_lab(factory_lab_10k):
    lab = open_lab(factory_lab_10k.root)
    assert len(lab.jobs) == 10_000
    # 2 files per job, README, 2 revision files, job index, 9 host tools
    assert len(lab.integrity_list().files) == 20_013


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        ("nothing", "no such lab"),
        ("dangling", "dangling symlink"),
        ("empty-dir", f"not a repx lab ({LAB_METADATA} missing)"),
        ("file", "not a directory"),
    ],
)
def test_not_a_lab(tmp_path, setup, expected):
    path = tmp_path / "result"
    if setup == "dangling":
        path.symlink_to(tmp_path / "gone")
    elif setup == "empty-dir":
        path.mkdir()
    elif setup == "file":
        path.write_text("x")
    with pytest.raises(LabError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        open_lab(path)


def test_missing_run_manifest_is_named(factory_lab):
    manifest = factory_lab.manifest_path("report")
    manifest.unlink()
    rel = manifest.relative_to(factory_lab.root)
    with pytest.raises(LabError) as info:
        open_lab(factory_lab.root)
    assert info.value.message.startswith(f"{rel}: missing file")


def test_bad_json_is_named(factory_lab):
    (factory_lab.root / "revision/metadata.json").write_text("{not json")
    with pytest.raises(LabError, match=r"^revision/metadata\.json: invalid JSON: "):
        open_lab(factory_lab.root)


def test_missing_field_names_file_and_path(factory_lab):
    job_id = factory_lab.run_jobs["simulation"][0]
    edit_json(factory_lab.manifest_path("simulation"), lambda m: m["jobs"][job_id].pop("stage"))
    rel = factory_lab.manifest_path("simulation").relative_to(factory_lab.root)
    with pytest.raises(LabError) as info:
        open_lab(factory_lab.root)
    assert str(info.value) == f"{rel}: jobs.{job_id}.stage: field required"


def test_nested_list_index_in_field_path(factory_lab):
    job_id = factory_lab.stage_jobs[("simulation", "stats")][0]

    def drop_input_job(m):
        del m["jobs"][job_id]["inputs"][0]["job"]

    edit_json(factory_lab.manifest_path("simulation"), drop_input_job)
    with pytest.raises(LabError, match=rf"jobs\.{job_id}\.inputs\[0\]\.job: field required$"):
        open_lab(factory_lab.root)


def test_several_errors_are_counted(factory_lab):
    edit_json(factory_lab.root / LAB_METADATA, lambda m: [m.pop("lab_id"), m.pop("git_hash")])
    with pytest.raises(
        LabError, match=r"^lab/lab-metadata\.json: lab_id: field required \(and 1 more error\)$"
    ):
        open_lab(factory_lab.root)


def test_unsupported_format_version_wins_over_other_errors(factory_lab):
    def future(meta):
        meta["format"] = "repx-lab/2"
        meta.pop("files")

    edit_json(factory_lab.root / LAB_METADATA, future)
    with pytest.raises(LabError) as info:
        open_lab(factory_lab.root)
    assert info.value.message.startswith(
        "lab/lab-metadata.json: format: unsupported format 'repx-lab/2' "
        "(this repx reads 'repx-lab/1')"
    )


def test_manifest_of_another_run(factory_lab):
    edit_json(factory_lab.manifest_path("report"), lambda m: m.update(name="other"))
    with pytest.raises(
        LabError, match=r"name: 'other' but revision/metadata\.json lists it as run 'report'"
    ):
        open_lab(factory_lab.root)


def test_error_is_one_line(tmp_path):
    lab = write_lab(tmp_path / "lab", sweep_runs(3))
    edit_json(lab.manifest_path("sweep"), lambda m: m.update(jobs=[]))
    with pytest.raises(LabError) as info:
        open_lab(lab.root)
    assert "\n" not in str(info.value)
    assert ": jobs: input should be an object" in str(info.value)
