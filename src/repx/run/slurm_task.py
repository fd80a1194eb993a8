"""The program a SLURM task runs: ``python -m repx.run.slurm_task MANIFEST INDEX``.

It looks up the jobs of task ``INDEX`` in the submission's manifest and runs each through
:func:`repx.run.job.run_job`, the same lifecycle as a local run (lock, attempt directory,
logs, markers, atomic commit, ``completions.jsonl``). Exit status 0 when every job of the
task succeeded (so ``afterok`` dependencies hold exactly then), 1 when one did not, 2 when
the task cannot run at all (its message goes to the task's SLURM log).

A node whose ``/nix/store`` lacks the lab's store paths runs like a local host without
Nix: the bwrap runtime binds the lab's ``store/`` copy at ``/nix/store``; a bwrap missing
on the node is taken from the lab's host-tools.

With ``artifact_store = "node-local"`` the task first makes sure the node has its copy of
the lab (:func:`repx.run.node_local.ensure_copy`: unpacked by the first task on the node,
waited for and reused by the others) and runs the jobs from there; the task's log says
which (``lab <id>: node-local copy <path>, unpacked|reused``).
"""

# ruff: noqa: PTH110, PTH112, PTH118

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from repx.config import RuntimeKind
from repx.errors import RepxError, UsageError
from repx.run import containers
from repx.run.job import Stop, run_job
from repx.run.node_local import (
    ensure_copy,
    lab_paths,
    relocate_path,
    relocate_runtime,
    relocate_spec,
)
from repx.run.runtime import Runtime
from repx.run.slurm_models import ManifestError, TaskManifest, read_manifest
from repx.run.spec import JobSpec, NodeLocalLab
from repx.run.store import Store, StoreError


class TaskError(Exception):
    """This task cannot run here (a message for the task's log)."""


def node_runtime(runtime: Runtime, store_probe: str | None, lab_store: str | None) -> Runtime:
    """Adapt the submit host's runtime to this node (no Nix here, no bwrap on PATH)."""
    if runtime.kind is RuntimeKind.NATIVE:
        if store_probe and not os.path.exists(store_probe):
            raise TaskError(
                f"this node's /nix/store lacks the lab's store paths (e.g. {store_probe}):"
                ' the native runtime cannot run here; use runtime = "bwrap" in the target'
            )
        return runtime
    update: dict[str, Any] = {}
    if runtime.kind in containers.CONTAINER_KINDS and runtime.engine is not None:
        try:
            update["engine"], update["oci_runtime"] = containers.on_node(
                runtime.kind, runtime.engine, runtime.oci_runtime, runtime.images
            )
        except UsageError as exc:
            raise TaskError(exc.message) from None
    if runtime.bwrap is not None and not os.access(runtime.bwrap, os.X_OK):
        candidate = os.path.join(runtime.path, "bwrap")
        if not os.access(candidate, os.X_OK):
            raise TaskError(f"bubblewrap is neither at {runtime.bwrap} nor at {candidate}")
        update["bwrap"] = candidate
    if runtime.store is None and store_probe and not os.path.exists(store_probe):
        if not lab_store or not os.path.isdir(lab_store):
            raise TaskError(
                f"this node's /nix/store lacks the lab's store paths (e.g. {store_probe})"
                " and the lab has no store/ copy"
            )
        update["store"] = lab_store
    return runtime.model_copy(update=update) if update else runtime


def run_task(manifest: Path, index: str, stop: Stop) -> int:
    """Run the jobs of one task; return the exit status.

    After a stop (``scancel``: SIGTERM) the running job is recorded as interrupted and
    the rest of the bundle as interrupted before it started, so none is lost.
    """
    data = _read(manifest, index)
    try:
        specs = data.tasks[index]
    except KeyError:
        raise TaskError(f"{manifest} has no task {index}") from None
    runtime, lab_store = data.runtime, data.lab_store
    if data.node_local is not None:
        specs, runtime, lab_store = _to_node_copy(data.node_local, specs, runtime, lab_store)
    runtime = node_runtime(runtime, data.store_probe, lab_store)
    missing = [s.lab_root for s in specs if not os.path.isdir(s.lab_root)]
    if missing:
        raise TaskError(
            f"the lab {missing[0]} is not visible on this node: put it on a file system the"
            " nodes share (copy it with `cp -a result/. DIR` and pass --lab DIR)"
        )
    store = Store.open(Path(data.base))
    ok = True
    try:
        for spec in specs:
            result = run_job(store, spec, runtime, stop)
            ok = ok and result.succeeded
    finally:
        store.close()
    return 0 if ok else 1


def _to_node_copy(
    where: NodeLocalLab, specs: Sequence[JobSpec], runtime: Runtime, lab_store: str | None
) -> tuple[tuple[JobSpec, ...], Runtime, str | None]:
    """Make sure this node has its copy of the lab; the jobs, runtime and store copy there."""
    try:
        expect = lab_paths(specs, where.source)
        copy = ensure_copy(Path(where.archive), Path(where.root), where.lab_id, expect)
    except RepxError as exc:
        raise TaskError(f"node-local copy of lab {where.lab_id}: {exc.message}") from None
    new = os.fspath(copy.path)
    sys.stderr.write(
        f"repx slurm task: lab {where.lab_id}: node-local copy {new},"
        f" {'unpacked' if copy.unpacked else 'reused'}\n"
    )
    sys.stderr.flush()
    return (
        tuple(relocate_spec(s, where.source, new) for s in specs),
        relocate_runtime(runtime, where.source, new),
        relocate_path(lab_store, where.source, new) if lab_store else lab_store,
    )


def _read(manifest: Path, index: str) -> TaskManifest:
    try:
        return read_manifest(manifest.read_bytes(), index)
    except ManifestError as exc:
        raise TaskError(f"{manifest}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        sys.stderr.write("usage: python -m repx.run.slurm_task MANIFEST INDEX\n")
        return 2
    # Handlers first: a scancel at any moment from here on is recorded, never lost.
    with Stop().installed() as stop:
        try:
            return run_task(Path(args[0]), args[1], stop)
        except (TaskError, StoreError) as exc:
            message = exc.message if isinstance(exc, StoreError) else str(exc)
            sys.stderr.write(f"repx slurm task: {message}\n")
        except OSError as exc:
            sys.stderr.write(f"repx slurm task: cannot read {args[0]}: {exc.strerror or exc}\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
