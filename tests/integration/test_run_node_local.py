"""``artifact_store = "node-local"`` on a real single-node SLURM cluster (tests/slurm_cluster.py),
and locally on a host without Nix.

The example lab run with node-local copies gives the same bytes as with the shared lab; its
tasks start together on the node and exactly one unpacks the lab (the others wait and
reuse it, as their SLURM logs say); jobs are started from the copy (a factory lab whose
jobs write the path they were started as). Without Nix (test_run_nonix.py's namespace), the
copy of an exported archive carries the closure the jobs run with.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runlab import (
    assert_store_consistent,
    build_lab,
    lab_jobs,
    outputs_digest,
    repx,
    repx_argv,
)
from test_run_nonix import _require_unshare, _without_nix

from labfactory import RunSpec, StageSpec, write_lab
from repx.lab.loader import open_lab
from repx.run.node_local import MARKER_SUFFIX, read_marker
from repx.run.slurm_models import read_submissions
from slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slurm_cluster():
    with SlurmCluster.session() as cluster:
        yield cluster


def target_env(tmp_path: Path, name: str, base: Path, runtime: str, extra: str = "") -> dict:
    """A config.toml (RepX's spelling) with the SLURM target ``hpc``."""
    config = tmp_path / f"config-{name}"
    config.mkdir()
    (config / "config.toml").write_text(
        f'submission_target = "hpc"\n[targets.hpc]\ndefault_scheduler = "slurm"\n'
        f'base_path = "{base}"\ndefault_execution_type = "{runtime}"\n{extra}'
    )
    return {"REPX_CONFIG_DIR": str(config)}


def node_local(scratch: Path) -> str:
    return f'artifact_store = "node-local"\nnode_local_path = "{scratch}"\n'


def task_logs(base: Path) -> list[str]:
    """The wrapper log of every task submitted from ``base``."""
    return [
        Path(record.log_of(index)).read_text()
        for record in read_submissions(base)
        for index in record.tasks
    ]


@pytest.mark.slurm
def test_sweep_lab_from_node_local_copies_is_byte_identical(slurm_cluster, tmp_path):
    lab = build_lab("sweep")
    lab_id = open_lab(lab).meta.lab_id
    shared_base, base, scratch = tmp_path / "shared", tmp_path / "nl", tmp_path / "scratch"
    shared = repx(
        "run", "--lab", lab, "--wait", env=target_env(tmp_path, "s", shared_base, "bwrap")
    )
    assert shared.returncode == 0, shared.stderr
    env = target_env(tmp_path, "nl", base, "bwrap", node_local(scratch))
    result = repx("run", "--lab", lab, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    events = result.events()
    jobs = sorted(lab_jobs(lab))
    assert events[-1]["succeeded"] == len(jobs)
    copy = scratch / lab_id
    [plan] = [e for e in events if e["event"] == "plan"]
    assert plan["node_local"] == str(copy)
    assert outputs_digest(base, jobs) == outputs_digest(shared_base, jobs)
    assert_store_consistent(base, lab)
    # a directory lab: archived once into the output store, which the nodes share
    assert (base / "archives" / f"{lab_id}.tar").is_file()
    # one task per job (the simulate array's start together), one node: one task unpacked
    # the lab, the others waited for it and reused it
    logs = task_logs(base)
    assert len(logs) == len(jobs)
    said = [line for log in logs for line in log.splitlines() if "node-local copy" in line]
    assert len(said) == len(logs)
    assert sorted(line.rsplit(", ", 1)[1] for line in said) == ["reused"] * (len(said) - 1) + [
        "unpacked"
    ]
    assert all(f"lab {lab_id}: node-local copy {copy}," in line for line in said)
    marker = read_marker(scratch / f"{lab_id}{MARKER_SUFFIX}")
    assert marker is not None and marker.lab_id == lab_id
    assert (copy / "lab" / "lab-metadata.json").is_file()
    # outputs stay in the output store: nothing is written into the copy's tree
    assert not (copy / "outputs").exists()


@pytest.mark.slurm
def test_jobs_start_from_the_node_local_copy(slurm_cluster, tmp_path):
    script = 'printf %s "$0" > "$out/result.json"'
    runs = (
        RunSpec("s", parameters={"i": [1, 2, 3]}, stages=(StageSpec("w", ("i",), script=script),)),
    )
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    base, scratch = tmp_path / "base", tmp_path / "scratch"
    env = target_env(tmp_path, "nl", base, "native", node_local(scratch))
    result = repx("run", "--lab", lab.root, "--wait", "--json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.events()[-1]["succeeded"] == 3
    copy = scratch / lab.meta.lab_id
    for job in lab.jobs:
        started_as = (base / "outputs" / job / "out" / "result.json").read_text()
        executable = lab.jobs[job].executables["main"].path
        assert started_as == str(copy / executable)
    results = [
        json.loads((base / "outputs" / job / "repx" / "result.json").read_text())
        for job in lab.jobs
    ]
    assert {r["status"] for r in results} == {"succeeded"}


def test_an_archive_runs_from_its_node_local_copy_without_nix(tmp_path):
    _require_unshare()
    lab = build_lab("sweep")
    lab_id = open_lab(lab).meta.lab_id
    exported = repx("export", "--lab", lab, "-o", tmp_path / "lab.tar")
    assert exported.returncode == 0, exported.stderr
    native = repx("run", "--lab", lab, "--base", tmp_path / "native", "--runtime", "native")
    assert native.returncode == 0, native.stderr
    scratch = tmp_path / "scratch"
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.toml").write_text(
        f'[targets.ws]\nbase_path = "{tmp_path / "nonix"}"\n{node_local(scratch)}'
    )
    argv = repx_argv("run", "--lab", tmp_path / "lab.tar", "--target", "ws")
    result = _without_nix(["env", f"REPX_CONFIG_DIR={config}", *argv])
    assert result.returncode == 0, result.stderr
    assert f"jobs read the lab from its node-local copy, {scratch / lab_id}" in result.stderr
    jobs = sorted(lab_jobs(lab))
    assert outputs_digest(tmp_path / "nonix", jobs) == outputs_digest(tmp_path / "native", jobs)
    # the archive is read where it is: nothing is written into the store for it
    assert not (tmp_path / "nonix" / "archives").exists()
    assert (scratch / lab_id / "store").is_dir()
