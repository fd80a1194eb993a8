"""RepX's resources.toml spelling: job_id_glob, cpus-per-task, sbatch_opts, target,
worker_resources."""

from __future__ import annotations

import pytest

from repx.errors import UsageError
from repx.lab.models import Executable, Job, Resources
from repx.run.slurm_resources import ResourcePolicy, load_resources

#: A resources.toml as RepX's docs write one.
REPX_RESOURCES = """\
[defaults]
partition = "main"
time = "01:00:00"
mem = "2G"

[[rules]]
job_id_glob = "*-simulate*"
cpus-per-task = 8
mem = "16G"
sbatch_opts = ["--qos=long"]

[[rules]]
job_id_glob = "*-simulate*"
target = "other-cluster"
mem = "64G"

[[rules]]
job_id_glob = "*-sum*"
time = "00:10:00"
[rules.worker_resources]
cpus-per-task = 2
mem = "1G"
"""


def job(stage: str) -> Job:
    return Job(
        stage=stage,
        executables={"main": Executable(path="jobs/x/bin/s")},
        parameters_file="jobs/x/parameters.json",
        resources=Resources(),
    )


def test_repx_spelling_resolves_as_ours(tmp_path):
    path = tmp_path / "resources.toml"
    path.write_text(REPX_RESOURCES)
    file = load_resources(path, required=True)
    policy = ResourcePolicy(file, target="hpc")
    sim = policy.resolve("abc-simulate", job("simulate"), ["run"])
    assert (sim.cpus, sim.mem, sim.time_seconds, sim.partition) == (8, "16G", 3600, "main")
    assert sim.options == ("--qos=long",)
    # the rule for another target does not apply here, and does there
    other = ResourcePolicy(file, target="other-cluster").resolve("abc-simulate", job("x"), [])
    assert other.mem == "64G"
    total = policy.resolve("abc-sum", job("sum"), ["run"])
    assert (total.cpus, total.time_seconds) == (None, 600)
    workers = policy.worker_resources("abc-sum", job("sum"), ["run"])
    assert (workers.cpus, workers.mem, workers.partition, workers.options) == (2, "1G", None, ())
    assert policy.worker_resources("abc-simulate", job("simulate"), []).cpus is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[rules]]\njob_id_glob = "a*"\njob = "b*"\n', "rules[0]: job_id_glob: and job differ"),
        ("[[rules]]\ncpus-per-task = 0\n", "rules[0]: cpus:"),
        (
            '[[rules]]\n[rules.worker_resources]\njob_id_glob = "x"\n',
            "worker_resources.job: a worker table holds values only",
        ),
        ("[[rules]]\ngpus = 1\n", "rules[0]: gpus: Extra inputs are not permitted"),
    ],
)
def test_errors_name_the_file_rule_and_key(tmp_path, text, message):
    path = tmp_path / "resources.toml"
    path.write_text(text)
    with pytest.raises(UsageError) as err:
        load_resources(path, required=True)
    assert err.value.message.startswith(f"{path}: "), err.value.message
    assert message in err.value.message and "\n" not in err.value.message
