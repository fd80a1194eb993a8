"""lab/job-index.tsv: a lab opened lazily reads the records it is asked for, the same jobs as
a whole read, and refuses an index that does not match its manifests."""

from __future__ import annotations

import json

import pytest

from labfactory import JOB_INDEX, RunSpec, StageSpec, write_lab
from repx.errors import LabError
from repx.lab.job_index import read_index
from repx.lab.loader import open_lab


@pytest.fixture
def lab(tmp_path):
    return write_lab(tmp_path / "lab")


def _manifest_jobs(factory, run):
    return json.loads(factory.manifest_path(run).read_bytes())["jobs"]


def _edit_job_line(manifest, job, old, new):
    """Replace ``old`` by ``new`` in the line of ``job``'s record only."""
    lines = manifest.read_bytes().split(b"\n")
    at = next(i for i, line in enumerate(lines) if line.startswith(f'"{job}"'.encode()))
    assert old in lines[at]
    lines[at] = lines[at].replace(old, new)
    manifest.write_bytes(b"\n".join(lines))


def test_lazy_and_whole_reads_give_the_same_jobs(lab):
    lazy = open_lab(lab.root, lazy=True)
    whole = open_lab(lab.root)
    (lab.root / JOB_INDEX).unlink()
    unindexed = open_lab(lab.root)
    assert isinstance(whole.jobs, dict)
    assert not isinstance(lazy.jobs, dict)
    assert sorted(lazy.jobs) == sorted(whole.jobs) == sorted(unindexed.jobs) == sorted(lab.job_ids)
    for job_id in lab.job_ids:
        assert lazy.jobs[job_id] == whole.jobs[job_id] == unindexed.jobs[job_id]
    assert lazy.job_runs == unindexed.job_runs
    # the index's upstream ids (no record read) are the records' inputs
    assert lazy.index is not None and unindexed.index is None
    assert dict(lazy.upstream) == dict(unindexed.upstream)
    assert any(lazy.upstream.values())
    for job_id in lab.job_ids:
        assert lazy.readers_of(job_id) == unindexed.readers_of(job_id)
    assert any(lazy.readers_of(job_id) for job_id in lab.job_ids)
    for run in lab.run_hashes:
        assert list(lazy.runs[run].jobs) == list(unindexed.runs[run].jobs)
        assert lazy.runs[run].model_dump(exclude={"jobs"}) == unindexed.runs[run].model_dump(
            exclude={"jobs"}
        )


def test_the_index_points_at_each_record(lab):
    index = read_index(lab.root)
    assert index is not None
    ranges = {
        rel: {job: tuple(map(int, rest.split("\t")[:2])) for job, rest in per.items()}
        for rel, per in index.rows.items()
    }
    for run, run_hash in lab.run_hashes.items():
        rel = f"revision/{run_hash}.json"
        data = (lab.root / rel).read_bytes()
        expected = _manifest_jobs(lab, run)
        assert list(ranges[rel]) == list(expected)
        for job_id, (offset, length) in ranges[rel].items():
            assert json.loads(data[offset : offset + length]) == expected[job_id]


def test_a_lazy_lab_reads_only_what_is_looked_up(lab):
    """A damaged record is refused when it is looked up (in one line naming the manifest and
    the job), the others read fine; reading the lab whole refuses it at once."""
    run = "simulation"
    manifest = lab.manifest_path(run)
    victim = next(iter(_manifest_jobs(lab, run)))
    # same length, so every other range stays right: the stage becomes a number
    _edit_job_line(manifest, victim, b'"stage":"simulate"', b'"stage":1234567890')
    lazy = open_lab(lab.root, lazy=True)
    other = next(j for j in lab.run_jobs[run] if j != victim)
    assert lazy.jobs[other].stage == "simulate"
    with pytest.raises(LabError) as caught:
        lazy.jobs[victim]
    rel = manifest.relative_to(lab.root).as_posix()
    assert str(caught.value) == f"{rel}: jobs.{victim}.stage: input should be a valid string"
    with pytest.raises(LabError, match=f"jobs.{victim}.stage"):
        open_lab(lab.root)


def test_a_range_that_is_not_the_record_is_refused(lab):
    lines = (lab.root / JOB_INDEX).read_text().splitlines()
    job, manifest, offset, length, reads = lines[1].split("\t")
    lines[1] = "\t".join([job, manifest, str(int(offset) + 1), length, reads])
    (lab.root / JOB_INDEX).write_text("\n".join(lines) + "\n")
    lazy = open_lab(lab.root, lazy=True)
    with pytest.raises(LabError, match=f"the range of job {job} is not its record in {manifest}"):
        lazy.jobs[job]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("repx-job-index/9\n", "lab/job-index.tsv: line 1: 'repx-job-index/9' is not"),
        ("repx-job-index/1\na\tb\n", "lab/job-index.tsv: line 2: not 'job<TAB>manifest"),
    ],
)
def test_a_malformed_index_is_one_line(lab, text, message):
    (lab.root / JOB_INDEX).write_text(text)
    with pytest.raises(LabError, match=message):
        open_lab(lab.root, lazy=True)


def test_an_index_naming_a_manifest_no_run_has_is_refused(lab):
    with (lab.root / JOB_INDEX).open("a") as f:
        f.write(f"{lab.job_ids[0]}\trevision/other.json\t1\t2\t\n")
    with pytest.raises(LabError, match=r"lists jobs of revision/other\.json, which no run"):
        open_lab(lab.root, lazy=True)


def test_a_manifest_not_laid_out_as_indexed_is_read_whole(lab):
    manifest = lab.manifest_path("simulation")
    manifest.write_text(json.dumps(json.loads(manifest.read_bytes()), indent=1))
    loaded = open_lab(lab.root, lazy=True)
    assert isinstance(loaded.jobs, dict)  # the whole read: the file is the truth
    assert sorted(loaded.jobs) == sorted(lab.job_ids)


def test_a_shared_job_must_be_identical_in_every_run(tmp_path):
    runs = (
        RunSpec("a", parameters={"k": [1]}, stages=(StageSpec("x", params=("k",)),)),
        RunSpec("b", parameters={"k": [1]}, stages=(StageSpec("x", params=("k",)),)),
    )
    factory = write_lab(tmp_path / "lab", runs)
    [job] = factory.run_jobs["a"]
    assert factory.run_jobs["b"] == [job]
    assert open_lab(factory.root, lazy=True).jobs[job] == open_lab(factory.root).jobs[job]
    manifest = factory.manifest_path("b")
    _edit_job_line(manifest, job, b'"cpus":1', b'"cpus":2')
    lazy = open_lab(factory.root, lazy=True)
    with pytest.raises(LabError, match=f"jobs.{job}: differs from the job of the same id"):
        lazy.jobs[job]


def test_a_malformed_line_is_refused_when_its_job_is_looked_up(lab):
    lines = (lab.root / JOB_INDEX).read_text().splitlines()
    job, manifest, _, length, reads = lines[1].split("\t")
    lines[1] = "\t".join([job, manifest, "x", length, reads])
    (lab.root / JOB_INDEX).write_text("\n".join(lines) + "\n")
    lazy = open_lab(lab.root, lazy=True)
    with pytest.raises(LabError, match=f"lab/job-index.tsv: the line of job {job} is not"):
        lazy.jobs[job]
    with pytest.raises(LabError, match=f"the line of job {job} is not"):
        open_lab(lab.root)


def test_facts_are_the_records_fields_without_the_rest(lab):
    """What reading states needs (stage, stage type, declared outputs) comes from a lazy lab
    without validating the rest of a record; a whole read's facts are its records."""
    run = "simulation"
    manifest = lab.manifest_path(run)
    whole = open_lab(lab.root)
    assert whole.facts is whole.jobs
    victim, other = list(_manifest_jobs(lab, run))[:2]
    # same length: an absolute parameters file, which the whole record refuses
    _edit_job_line(manifest, victim, b'"parameters_file":"jobs/', b'"parameters_file":"/obs/')
    lazy = open_lab(lab.root, lazy=True)
    for job_id in lab.job_ids:
        facts, record = lazy.facts[job_id], whole.jobs[job_id]
        assert (facts.stage, facts.stage_type, facts.outputs) == (
            record.stage,
            record.stage_type,
            record.outputs,
        )
    assert lazy.facts[victim].outputs == {"samples.csv": "$out/samples.csv"}
    with pytest.raises(LabError, match=f"jobs.{victim}.parameters_file"):
        lazy.jobs[victim]
    assert lazy.jobs[other] == whole.jobs[other]
    assert lazy.facts[other] is lazy.jobs[other]  # a record read whole is its own facts


def test_facts_refuse_an_output_outside_out(lab):
    run = "simulation"
    manifest = lab.manifest_path(run)
    victim = next(iter(_manifest_jobs(lab, run)))
    _edit_job_line(manifest, victim, b'":"$out/samples.csv"', b'":"/tmp/samples.csv"')
    lazy = open_lab(lab.root, lazy=True)
    rel = manifest.relative_to(lab.root).as_posix()
    with pytest.raises(LabError) as caught:
        lazy.facts[victim]
    assert str(caught.value) == (
        f"{rel}: jobs.{victim}.outputs.samples.csv: '/tmp/samples.csv' is not a path under $out/"
    )
