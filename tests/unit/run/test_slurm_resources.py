"""resources.toml and the lab's hints -> sbatch options; every bad value named before submission."""

from __future__ import annotations

import pytest

from repx.errors import UsageError
from repx.lab.models import Executable, Job, Resources
from repx.run.slurm_resources import (
    ResourcePolicy,
    ResourcesFile,
    ResourceValues,
    Rule,
    SlurmResources,
    auto_bundle,
    check_target,
    format_time,
    load_resources,
    parse_time,
)


def job(stage="simulate", **hints):
    return Job(
        stage=stage,
        executables={"main": Executable(path="jobs/x/bin/s")},
        parameters_file="jobs/x/parameters.json",
        resources=Resources(**hints),
    )


# The grammar itself (mem, time, partition, options) is tested once, against the Nix side,
# in tests/unit/lab/test_hints_agree.py; here: how the values combine and what errors say.


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10", 600), ("1-02:03", 93780), ("1-0:0:5", 86460), ("00:30", 60)],
)
def test_sinfo_max_time(text, seconds):
    assert parse_time(text) == seconds  # whole minutes, as SLURM counts them


@pytest.mark.parametrize("text", ["infinite", "UNLIMITED", "1:99"])
def test_bad_sinfo_max_time(text):
    with pytest.raises(ValueError, match="invalid value"):
        parse_time(text)


def test_format_time():
    assert format_time(600) == "00:10:00"
    assert format_time(93784) == "1-02:03:04"


def test_precedence_target_defaults_hints_rules():
    file = ResourcesFile(
        defaults=ResourceValues(
            partition="p-default", time="10", mem="1G", sbatch_options=("--qos=a",)
        ),
        rules=(
            Rule(stage="sim*", cpus=4, sbatch_options=("--qos=b",)),
            Rule(job="0000*", mem="8G"),
            Rule(run="other", cpus=99),
            Rule(stage="simulate", cpus=2, jobs_per_task=5),
        ),
    )
    policy = ResourcePolicy(file, target_partition="p-target", target_options=("--qos=t",))
    hinted = job(mem="2G", time="00:05:00", partition="p-lab", sbatch_opts=["--qos=lab"])
    resolved = policy.resolve("0000abc-simulate", hinted, ["simulation"])
    assert resolved == SlurmResources(
        cpus=2,  # the last matching rule
        mem="8G",  # a rule beats the hint
        time_seconds=300,  # the hint beats [defaults]
        partition="p-lab",
        options=("--qos=t", "--qos=a", "--qos=lab", "--qos=b"),
        jobs_per_task=5,
    )
    assert resolved.sbatch_args(bundle=2) == [
        "--cpus-per-task=2",
        "--mem=8G",
        "--time=00:10:00",
        "--partition=p-lab",
        "--qos=t",
        "--qos=a",
        "--qos=lab",
        "--qos=b",
    ]
    plain = policy.resolve("1111-other", job(stage="other"), ["simulation"])
    assert plain.partition == "p-default" and plain.time_seconds == 600 and plain.cpus is None
    assert ResourcePolicy().resolve("x", job(), []).sbatch_args() == []


def test_integer_hints_and_units():
    """The lab carries mem in MiB and time in minutes; --mem uses the largest exact unit."""
    policy = ResourcePolicy()
    assert policy.resolve("x", job(mem=512, time=30), []).sbatch_args() == [
        "--mem=512M",
        "--time=00:30:00",
    ]
    assert policy.resolve("x", job(mem="1536M", time="1-00"), []).sbatch_args() == [
        "--mem=1536M",
        "--time=1-00:00:00",
    ]
    assert policy.resolve("x", job(mem="2T"), []).mem == "2T"
    assert (
        ResourcePolicy(ResourcesFile(defaults=ResourceValues(mem="3072")))
        .resolve("x", job(), [])
        .mem
        == "3G"
    )


def test_resources_file_errors_name_the_rule(tmp_path):
    path = tmp_path / "resources.toml"
    path.write_text(
        '[defaults]\ntime = "1:00:00"\n[[rules]]\nstage = "a"\n[[rules]]\nstage = "sim*"\nmem = "lots"\n'
    )
    with pytest.raises(UsageError) as info:
        load_resources(path, required=True)
    assert info.value.message == (
        f"{path}: rules[1] (stage 'sim*'): mem: invalid value \"lots\": use a whole number of MiB (512) or a size"
        ' with a unit K, M, G or T ("512M", "1.5G"), from 1M to 1048576T'
    )
    path.write_text('[defaults]\ntime = "99:99"\n')
    with pytest.raises(UsageError, match=r'\[defaults\]: time: invalid value "99:99": use minutes'):
        load_resources(path, required=True)
    # every option is checked, not only the first
    path.write_text('[[rules]]\nsbatch_options = ["--qos=long", "--array=1-3"]\n')
    with pytest.raises(
        UsageError,
        match=r'rules\[0\]: sbatch_options\.1: invalid value "--array=1-3": --array is set by repx',
    ):
        load_resources(path, required=True)
    path.write_text('[[rules]]\nsbatch_options = ["--qos", "long"]\n')
    with pytest.raises(
        UsageError, match=r'sbatch_options\.1: invalid value "long": use one option'
    ):
        load_resources(path, required=True)
    path.write_text("[[rules]]\ncpus = 0\n")
    with pytest.raises(UsageError, match=r"rules\[0\]: cpus: invalid value 0"):
        load_resources(path, required=True)
    path.write_text('[defaults]\nmem = "1.5 G"\n')
    with pytest.raises(UsageError, match=r'\[defaults\]: mem: invalid value "1.5 G"'):
        load_resources(path, required=True)
    path.write_text("[defaults]\ngpus = 1\n")
    with pytest.raises(UsageError, match=r"\[defaults\]: gpus: Extra inputs"):
        load_resources(path, required=True)
    assert load_resources(tmp_path / "absent.toml", required=False) == ResourcesFile()
    with pytest.raises(UsageError, match="no such resources file"):
        load_resources(tmp_path / "absent.toml", required=True)


def test_target_settings_are_checked():
    check_target("hpc", "short", ["--qos=normal"])
    with pytest.raises(UsageError, match=r"target 'hpc' \(config.toml\): slurm.partition"):
        check_target("hpc", "bad name", [])
    with pytest.raises(UsageError, match=r"slurm.sbatch_options\[1\]: .*-d is set by repx itself"):
        check_target("hpc", None, ["--qos=normal", "-d"])


def test_auto_bundle():
    timed = SlurmResources(time_seconds=600)
    assert auto_bundle(SlurmResources(), 1000, 16, None) == 1  # no time limit: never
    assert auto_bundle(timed, 64, 16, None) == 1  # fits 4 per slot
    assert auto_bundle(timed, 1000, 16, None) == 16
    assert auto_bundle(SlurmResources(time_seconds=600, cpus=4), 1000, 16, None) == 63
    assert auto_bundle(timed, 1000, 16, 1800) == 3  # the partition's MaxTime caps it
    assert auto_bundle(timed, 100_000, 16, None) == 64
    assert SlurmResources(jobs_per_task=None).sbatch_args() == []


def test_auto_in_rules(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text(
        '[defaults]\njobs_per_task = 4\n[[rules]]\nstage = "s"\njobs_per_task = "auto"\n'
    )
    policy = ResourcePolicy(load_resources(path, required=True))
    assert policy.resolve("x-s", job(stage="s"), []).jobs_per_task is None
    assert policy.resolve("x-t", job(stage="t"), []).jobs_per_task == 4
