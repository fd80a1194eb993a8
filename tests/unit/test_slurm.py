"""repx.slurm: parsing SLURM's machine output, and errors (stand-in commands beside the real
cluster tests of tests/integration/test_run_slurm.py)."""

from __future__ import annotations

import pytest

from fakeslurm import install
from repx import slurm


def test_parse_parsable():
    assert slurm.parse_parsable("1234\n") == "1234"
    assert slurm.parse_parsable("1234;cluster\n") == "1234"
    assert slurm.parse_parsable("sbatch: warning: x\n77\n") == "77"
    with pytest.raises(slurm.SlurmError, match="no job id"):
        slurm.parse_parsable("Submitted batch job\n")


def test_parse_squeue():
    entries = slurm.parse_squeue(
        "4201_0|4201|0|PENDING|None\n"
        "4202|4202|N/A|CANCELLED|DependencyNeverSatisfied\n"
        "4203_5|4203|5|RUNNING|None\n"
        "garbage\n"
        "4204|4204|N/A|CANCELLED by 0|None\n"
    )
    assert [(e.job_id, e.array_job_id, e.array_task, e.state) for e in entries] == [
        ("4201_0", "4201", 0, slurm.JobState.PENDING),
        ("4202", "4202", None, slurm.JobState.CANCELLED),
        ("4203_5", "4203", 5, slurm.JobState.RUNNING),
        ("4204", "4204", None, slurm.JobState.CANCELLED),
    ]
    assert entries[0].state.queued and entries[2].state.running
    assert not entries[1].state.active
    assert not entries[1].never_runs  # cancelled already: not pending
    pending = slurm.QueueEntry("1", "1", None, slurm.JobState.PENDING, "DependencyNeverSatisfied")
    assert pending.never_runs
    assert slurm.JobState.parse("WEIRD") is slurm.JobState.OTHER


def test_parse_show_job():
    line = (
        "JobId=4203 ArrayJobId=4203 ArrayTaskId=0,2,5-6 JobName=repx-stats UserId=root(0)"
        " JobState=PENDING Reason=None Dependency=aftercorr:4201_*(unfulfilled)"
        " Command=/base/slurm/b 1/001-stats.sh WorkDir=/tmp/tp StdOut=/tmp/x.out Power="
    )
    fields = slurm.parse_show_job(line)
    assert fields["ArrayTaskId"] == "0,2,5-6"
    assert fields["Dependency"] == "aftercorr:4201_*(unfulfilled)"
    assert fields["Command"] == "/base/slurm/b 1/001-stats.sh"  # a value with a space
    assert fields["UserId"] == "root(0)" and fields["Power"] == ""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    fake = install(tmp_path / "fake")
    monkeypatch.setenv("PATH", str(fake.bin))
    return fake


def test_sbatch_argv_and_error_message(fake, tmp_path):
    script = tmp_path / "x.sh"
    script.write_text("#!/bin/sh\n")
    assert slurm.sbatch(script, ["--array=0-3"]) == "1001"
    assert fake.calls("sbatch")[0]["argv"] == ["sbatch", "--parsable", "--array=0-3", str(script)]
    fake.configure(fail_sbatch=[2], sbatch_error="Batch job submission failed: Invalid partition")
    with pytest.raises(slurm.SlurmError) as info:
        slurm.sbatch(script, [])
    assert info.value.message == "sbatch: Batch job submission failed: Invalid partition"
    assert not isinstance(info.value, slurm.SlurmUnavailableError)


def test_squeue_and_scancel_argv(fake):
    fake.set_queue(["7_1|7|1|RUNNING|None"])
    [entry] = slurm.squeue(["8", "7", "7"])
    assert entry.job_id == "7_1"
    assert fake.calls("squeue")[0]["argv"] == [
        "squeue",
        "--noheader",
        "--array",
        "--states=all",
        "--format=%i|%F|%K|%T|%r",
        "--jobs=7,8",
    ]
    assert slurm.squeue([]) == []
    slurm.scancel(["7_1", "9"])
    assert fake.calls("scancel")[0]["argv"] == ["scancel", "7_1", "9"]
    assert slurm.limits() == slurm.Limits(max_array_size=1001, max_job_count=10000)


def test_squeue_asks_many_ids_in_batches(fake):
    # 30,000 separate jobs (e.g. a plan without arrays): one --jobs= of 180 KB would exceed
    # Linux's 128 KiB limit on one argument; each call carries at most 32 KiB of ids.
    ids = [str(100_000 + i) for i in range(30_000)]
    fake.set_queue(["100000|100000|N/A|PENDING|None"])
    entries = slurm.squeue(ids)
    calls = fake.calls("squeue")
    lists = [c["argv"][-1].removeprefix("--jobs=") for c in calls]
    assert len(calls) == 7  # 210,000 characters
    assert all(len(text) <= 32768 for text in lists)
    assert [i for text in lists for i in text.split(",")] == ids
    assert len(entries) == len(calls)  # the fake prints its queue once per call


def test_missing_commands_and_unreachable_controller(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(slurm.SlurmUnavailableError, match="'sbatch' was not found on PATH"):
        slurm.ping()
    fake = install(tmp_path / "fake")
    monkeypatch.setenv("PATH", str(fake.bin))
    slurm.ping()  # the stand-in controller answers
    unreachable = fake.bin / "squeue"
    unreachable.write_text(
        "#!/bin/sh\necho 'slurm_load_jobs error: Unable to contact slurm controller"
        " (connect failure)' >&2\nexit 1\n"
    )
    with pytest.raises(slurm.SlurmUnavailableError, match="cannot be reached: slurm_load_jobs"):
        slurm.squeue(["1"])


def test_parse_sinfo():
    parts = slurm.parse_sinfo(
        "debug*|0/16/0/16|infinite\nlong|4/4/0/8|7-00:00:00\nlong|0/8/0/8|7-00:00:00\n"
    )
    assert parts["debug"].cpus == 16 and parts["debug"].default
    assert parts[""] == parts["debug"]
    assert parts["long"].cpus == 16 and parts["long"].max_time == "7-00:00:00"
