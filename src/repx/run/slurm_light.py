"""Light SLURM tasks, the submit host's half: which jobs can run without pydantic, and
their tasks file (read on the node by :mod:`repx.run.light_task`).

A group whose tasks each run one plain job — no scatter-gather, no gathered input, no
``metadata__<run>`` input, runtime native or bwrap, lab files not node-local — gets a
tasks file beside its manifest: a header line (the store, the full task to hand over to,
the paths the node must have, each task line's offset) and one line per task with
everything the job's lifecycle needs: argv, environment and working directory as the
submit host's runtime builds them for an attempt directory named by a token (replaced
by the real one on the node), inputs.json, the declared outputs and the record's fields.
Any other group runs the full task (``python -m repx.run.slurm_task``).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from repx.config import RuntimeKind
from repx.run import light_task
from repx.run.runtime import Runtime
from repx.run.spec import JobSpec, NodeLocalLab

#: Runtimes whose command line the submit host can build for a node.
LIGHT_RUNTIMES: Final = (RuntimeKind.NATIVE, RuntimeKind.BWRAP)
#: The task program (``python -I -S`` runs it as a file: no site-packages, no pydantic).
PROGRAM: Final = os.fspath(Path(light_task.__file__).resolve())


def why_not_light(spec: JobSpec, runtime: Runtime, node_local: NodeLocalLab | None) -> str | None:
    """Why ``spec`` needs the full Python task (None: a light task runs it)."""
    if runtime.kind not in LIGHT_RUNTIMES:
        return f"runtime {runtime.kind.value}"
    if node_local is not None:
        return "node-local lab copies"
    if spec.pieces is not None:
        return "a scatter-gather job"
    if spec.gathers:
        return "a gathered input"
    if spec.run_metadata:
        return "a metadata__<run> input"
    return None


def tasks_file(
    tasks: Mapping[int, JobSpec],
    runtime: Runtime,
    *,
    base: str,
    python: str,
    manifest: str,
    store_probe: str | None,
) -> bytes:
    """The tasks file of a group whose array task ``i`` runs ``tasks[i]`` (every one light;
    an index without a task has offset -1)."""
    token = f"/.repx-attempt-{secrets.token_hex(8)}"
    offsets = [-1] * (max(tasks) + 1)
    lines: list[bytes] = []
    at = 0
    for index, spec in sorted(tasks.items()):
        text = json.dumps(entry(spec, runtime, token), separators=(",", ":"), ensure_ascii=False)
        lines.append(text.encode() + b"\n")
        offsets[index] = at
        at += len(lines[-1])
    executable = [runtime.bwrap] if runtime.kind is RuntimeKind.BWRAP and runtime.bwrap else []
    probe = store_probe if store_probe and runtime.store is None else None
    header: dict[str, Any] = {
        "format": light_task.LIGHT_FORMAT,
        "base": base,
        "python": python,
        "manifest": manifest,
        "work_token": token,
        "need": {
            "executable": executable,
            "dirs": sorted({spec.lab_root for spec in tasks.values()}),
            "exists": [probe] if probe else [],
        },
        "offsets": offsets,
    }
    head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    return head + b"".join(lines)


def entry(spec: JobSpec, runtime: Runtime, token: str) -> dict[str, Any]:
    """One task's line: the job's lifecycle, precomputed (attempt directory = ``token``)."""
    argv, env, cwd = runtime.command(spec, Path(token), inputs_exist=True)
    sandboxed = runtime.kind is RuntimeKind.BWRAP
    return {
        "job": spec.job,
        "lab_id": spec.lab_id,
        "runtime": runtime.kind.value,
        "impure": list(runtime.impure),
        "executable": spec.executable,
        "argv": argv,
        "env": env,
        "cwd": cwd,
        "parameters_file": spec.parameters_file,
        "inputs": {**spec.inputs, **spec.store_inputs},
        "outputs": list(spec.outputs),
        # bound in the sandbox: a node where one is missing runs the full task (which
        # leaves it out, as local runs do)
        "bound": runtime.input_dirs(spec) if sandboxed else [],
    }


def batch_line(python: str, tasks: Path) -> list[str]:
    """The argv the batch script execs (before the array index)."""
    return [python, "-I", "-S", PROGRAM, os.fspath(tasks)]
