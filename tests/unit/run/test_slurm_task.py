"""The program each SLURM task runs: the local job lifecycle, on a node, for one array index."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from labfactory import RunSpec, StageSpec, write_lab
from repx.config import RuntimeKind
from repx.lab.loader import open_lab
from repx.run import slurm_task
from repx.run.runtime import Runtime
from repx.run.slurm_models import ManifestError, TaskManifest, manifest_json, read_manifest
from repx.run.spec import make_spec
from repx.run.store import Store


def test_runs_the_jobs_of_one_task(tmp_path, capsys):
    script = 'case "$(cat "$params")" in *\'"seed":2\'*) exit 4;; esac\ncat "$params" > "$out/result.json"'
    runs = (
        RunSpec(
            "s",
            parameters={"seed": [1, 2, 3]},
            stages=(StageSpec("sim", params=("seed",), script=script),),
        ),
    )
    lab = open_lab(write_lab(tmp_path / "lab", runs).root)
    base = tmp_path / "base"
    store = Store.open(base)
    specs = [make_spec(lab, job, store.outputs) for job in lab.jobs]
    by_seed = {lab.jobs[s.job].params["seed"]: s for s in specs}
    host_bin = lab.root / lab.meta.host_tools / "bin"
    runtime = Runtime(kind=RuntimeKind.NATIVE, path=str(host_bin), outputs=str(store.outputs))
    manifest = tmp_path / "m.json"
    content = TaskManifest(
        base=str(base),
        runtime=runtime,
        tasks={"0": (by_seed[1],), "4": (by_seed[2], by_seed[3])},
    )
    manifest.write_text(manifest_json(content))
    assert slurm_task.main([str(manifest), "0"]) == 0
    assert (store.out_dir(by_seed[1].job) / "result.json").read_text() == '{"seed":1}'
    # a bundle: the failure is committed, the next job still runs, the task exits 1
    assert slurm_task.main([str(manifest), "4"]) == 1
    assert (store.repx_dir(by_seed[2].job) / "FAIL").exists()
    assert (store.out_dir(by_seed[3].job) / "result.json").exists()
    lines = [json.loads(x) for x in store.completions.read_text().splitlines()]
    assert [r["status"] for r in lines] == ["succeeded", "failed", "succeeded"]
    assert slurm_task.main([str(manifest), "9"]) == 2
    assert "has no task 9" in capsys.readouterr().err


def test_a_lab_the_node_cannot_see(tmp_path, capsys):
    lab = open_lab(write_lab(tmp_path / "lab").root)
    store = Store.open(tmp_path / "base")
    spec = make_spec(lab, next(iter(lab.jobs)), store.outputs)
    spec = spec.model_copy(update={"lab_root": str(tmp_path / "elsewhere")})
    runtime = Runtime(kind=RuntimeKind.NATIVE, path="/x", outputs=str(store.outputs))
    manifest = tmp_path / "m.json"
    manifest.write_text(
        manifest_json(TaskManifest(base=str(store.root), runtime=runtime, tasks={"0": (spec,)}))
    )
    assert slurm_task.main([str(manifest), "0"]) == 2
    assert "is not visible on this node" in capsys.readouterr().err
    assert slurm_task.main([]) == 2


def test_node_without_nix_or_bwrap(tmp_path):
    tools = tmp_path / "host-tools"
    tools.mkdir()
    (tools / "bwrap").write_text("#!/bin/sh\n")
    os.chmod(tools / "bwrap", 0o755)
    lab_store = tmp_path / "store"
    lab_store.mkdir()
    missing = "/nix/store/00000000000000000000000000000000-absent"
    bwrap = Runtime(kind=RuntimeKind.BWRAP, path=str(tools), outputs="/o", bwrap="/no/such/bwrap")
    adapted = slurm_task.node_runtime(bwrap, missing, str(lab_store))
    assert adapted.bwrap == str(tools / "bwrap")
    assert adapted.store == str(lab_store)  # the lab's store/ copy at /nix/store
    assert slurm_task.node_runtime(adapted, None, None) == adapted
    native = Runtime(kind=RuntimeKind.NATIVE, path=str(tools), outputs="/o")
    with pytest.raises(slurm_task.TaskError, match="native runtime cannot run here"):
        slurm_task.node_runtime(native, missing, str(lab_store))
    with pytest.raises(slurm_task.TaskError, match="has no store/ copy"):
        slurm_task.node_runtime(bwrap.model_copy(update={"bwrap": None}), missing, None)


def _one_job_manifest(tmp_path):
    """A factory lab's first job as task 0 of a manifest: (store, spec, the manifest's JSON)."""
    lab = open_lab(write_lab(tmp_path / "lab").root)
    store = Store.open(tmp_path / "base")
    spec = make_spec(lab, next(iter(lab.jobs)), store.outputs)
    host_bin = lab.root / lab.meta.host_tools / "bin"
    runtime = Runtime(kind=RuntimeKind.NATIVE, path=str(host_bin), outputs=str(store.outputs))
    good = json.loads(
        manifest_json(TaskManifest(base=str(store.root), runtime=runtime, tasks={"0": (spec,)}))
    )
    return store, spec, good


def test_a_bad_or_old_manifest_is_one_clear_line(tmp_path, capsys):
    store, _spec, good = _one_job_manifest(tmp_path)
    manifest = tmp_path / "m.json"
    cases = {
        "format 'repx-slurm-tasks/0', this repx reads repx-slurm-tasks/1": {
            **good,
            "format": "repx-slurm-tasks/0",
        },
        "no format field, this repx reads repx-slurm-tasks/1": {
            k: v for k, v in good.items() if k != "format"
        },
        "base: Field required": {k: v for k, v in good.items() if k != "base"},
        "tasks.0.0.job: Field required": {
            **good,
            "tasks": {"0": [{k: v for k, v in good["tasks"]["0"][0].items() if k != "job"}]},
        },
    }
    for expected, content in cases.items():
        manifest.write_text(json.dumps(content))
        assert slurm_task.main([str(manifest), "0"]) == 2
        err = capsys.readouterr().err
        assert err == f"repx slurm task: {manifest}: {expected}" + err.split(expected, 1)[1]
        assert err.count("\n") == 1, err
    manifest.write_text("[1, 2")
    assert slurm_task.main([str(manifest), "0"]) == 2
    assert "not a task manifest" in capsys.readouterr().err
    assert not store.completions.exists()  # nothing ran


def test_a_task_validates_only_its_own_jobs(tmp_path):
    """Every task reads the whole manifest: it validates its own entry only (cost not
    proportional to the array); another task's broken entry does not concern it."""
    store, spec, good = _one_job_manifest(tmp_path)
    good["tasks"]["1"] = [{"job": "broken"}]
    data = json.dumps(good).encode()
    assert read_manifest(data, "0").tasks == {"0": (spec,)}
    assert read_manifest(data, "7").tasks == {}
    with pytest.raises(ManifestError, match=r"^tasks\.1\.0\."):
        read_manifest(data)
    manifest = tmp_path / "m.json"
    manifest.write_bytes(data)
    assert slurm_task.main([str(manifest), "0"]) == 0
    assert store.committed_success(spec.job, spec.outputs)


def test_the_task_program_imports_no_scatter_or_graph_code():
    """Each array task pays its own imports: scatter-gather (and through it the planner
    and networkx) is imported only by a task that runs a scatter-gather job."""
    code = (
        "import sys, repx.run.slurm_task;"
        " print(sorted(m for m in ('networkx', 'repx.run.scatter', 'repx.run.slurm_plan')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
