"""The plan of a scatter-gather job on an SSH target (run by ``runner.sh scatter``).

Locally such a job's process is repx's orchestrator (:mod:`repx.run.scatter`); the target
has no repx, so the remote runner does the same work in bash (docs/remote.md,
"Scatter-gather jobs"). Everything that needs the lab's semantics is decided here: each
piece's sandbox argv, inputs.json and declared outputs, with ``@@BRANCH@@`` standing for
the branch number, ``@@PIECE@@`` for the piece's attempt directory and ``@@WORK@@`` for
the job's. Only the work items are read there, when the scatter has written them.
"""

# Paths here are the target's (strings for another host), not this machine's.
# ruff: noqa: PTH118

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Final

from repx.config import RuntimeKind
from repx.errors import UsageError
from repx.lab.models import PieceInput
from repx.run.pieces import WORK_ITEM, pieces_dir
from repx.run.runtime import Runtime
from repx.run.scatter import WORKER_OUTS
from repx.run.spec import JobSpec, output_path

#: the branch number in a piece's key, paths and argv
BRANCH: Final = "@@BRANCH@@"
#: a piece's attempt directory
PIECE: Final = "@@PIECE@@"


def _parents(outputs: Iterable[str]) -> list[str]:
    found: dict[str, None] = {}
    for rel in outputs:
        parts = rel.split("/")[:-1]
        for n in range(1, len(parts) + 1):
            found["/".join(parts[:n])] = None
    return list(found)


def write_scatter(  # noqa: PLR0917
    directory: Path,
    spec: JobSpec,
    runtime: Runtime,
    stage_inputs: Mapping[str, str],
    work: str,
    join: Callable[[Iterable[str], str], str],
) -> None:
    """Write ``directory`` (``SUB/scatter/<index>``) for the scatter-gather job ``spec``
    (its paths the target's); ``stage_inputs`` is the job's inputs.json, ``work`` the
    placeholder of the job's attempt, ``join`` the plan's record joiner ((values, job) ->
    one record; it refuses control characters)."""
    assert spec.pieces is not None
    layout = spec.pieces.layout
    outputs = runtime.outputs
    root = pieces_dir(outputs, spec.job)
    final = os.path.join(outputs, spec.job)
    budget = max(1, spec.cpus)
    if runtime.kind is not RuntimeKind.NATIVE:
        # pieces read each other's outputs and the job's gather lists (as locally)
        extra = (root, os.path.join(work, "repx"))
        runtime = runtime.model_copy(update={"mount_paths": runtime.mount_paths + extra})

    def stage(name: str) -> str:
        try:
            return stage_inputs[name]
        except KeyError:
            raise UsageError(
                f"job {spec.job}: input '{name}' of a piece is not among the job's inputs;"
                " rebuild the lab"
            ) from None

    def step_input(name: str, source: PieceInput) -> str:
        if source.source == "item":
            return os.path.join(root, f"branch-{BRANCH}", WORK_ITEM)
        if source.source == "step":
            assert source.step is not None and source.output is not None
            rel = output_path(layout.steps[source.step].outputs[source.output])
            return os.path.join(root, f"branch-{BRANCH}", f"step-{source.step}", "out", rel)
        return stage(source.input or name)

    def piece(  # noqa: PLR0917
        key: str,
        executable: str,
        inputs: dict[str, str],
        outs: tuple[str, ...],
        cpus: int | None,
        deps: tuple[str, ...] = (),
    ) -> bytes:
        piece_spec = spec.model_copy(
            update={"executable": executable, "inputs": inputs, "outputs": outs, "pieces": None}
        )
        argv, _env, _cwd = runtime.command(piece_spec, Path(PIECE), inputs_exist=True)
        values = [
            key,
            str(min(budget, cpus or 1)),
            join(deps, spec.job),
            join(outs, spec.job),
            join(_parents(outs), spec.job),
            json.dumps(inputs, indent=1, sort_keys=True) + "\n",
            join(argv, spec.job),
        ]
        return b"".join(v.encode() + b"\0" for v in values)

    exe = spec.pieces.executables
    directory.mkdir(parents=True)
    sc = layout.scatter
    records = [
        piece(
            "scatter",
            exe["scatter"],
            {name: stage(name) for name in sc.inputs},
            tuple(output_path(v) for v in sc.outputs.values()),
            sc.resources.cpus,
        )
    ]
    for step in layout.step_order:
        info = layout.steps[step]
        records.append(
            piece(
                f"branch-{BRANCH}/step-{step}",
                exe[f"step-{step}"],
                {n: step_input(n, s) for n, s in info.inputs.items()},
                tuple(output_path(v) for v in info.outputs.values()),
                info.resources.cpus,
                tuple(f"branch-{BRANCH}/step-{d}" for d in info.deps),
            )
        )
    gather_inputs: dict[str, str] = {}
    for name, source in layout.gather.inputs.items():
        if source.source == "branches":
            gather_inputs[name] = os.path.join(work, "repx", WORKER_OUTS)
        elif source.source == "scatter":
            assert source.output is not None
            rel = output_path(sc.outputs[source.output])
            gather_inputs[name] = os.path.join(root, "scatter", "out", rel)
        else:
            gather_inputs[name] = stage(source.input or name)
    records.append(
        piece("gather", exe["gather"], gather_inputs, spec.outputs, layout.gather.resources.cpus)
    )
    for n, record in enumerate(records):
        (directory / f"{n}.nul").write_bytes(record)
    sink = layout.steps[layout.sink]
    settings = [root, final, str(budget), layout.work_items, layout.sink]
    settings.append(str(len(layout.step_order)))
    (directory / "settings").write_bytes(b"".join(s.encode() + b"\0" for s in settings))
    # worker__outs: one element per branch, as json.dumps(…, indent=1) writes the list
    for name, where in (("outs-pieces", root), ("outs-final", final)):
        branch = os.path.join(where, f"branch-{BRANCH}", f"step-{layout.sink}", "out")
        element = {out: os.path.join(branch, output_path(t)) for out, t in sink.outputs.items()}
        text = json.dumps([element], indent=1)
        (directory / name).write_text(text[len("[\n") : -len("\n]")])
