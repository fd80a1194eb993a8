"""The plan of a submission to an SSH target: what the remote runner executes.

repx decides here, with the lab loaded, everything that needs the lab's semantics — which
jobs, in which order, each one's sandbox argv (:class:`repx.run.runtime.Runtime`, the same
code as local runs, with the target's paths), inputs.json and gather lists — and writes it
into a directory that is copied to the target; ``src/repx/remote/runner.sh`` only executes
it (docs/remote.md, "The remote runner").
"""

# Paths here are the target's (strings for another host), not this machine's.
# ruff: noqa: PTH118

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from repx.config import RuntimeKind
from repx.errors import UsageError
from repx.lab.loader import LoadedLab
from repx.remote import RUNNER
from repx.run.graph import JobGraph, is_barrier
from repx.run.job import gather_file_name, run_metadata_file_name
from repx.run.runtime import Runtime, image_rootfs_by_run
from repx.run.spec import JobSpec, make_spec
from repx.run.store_models import RunMetadata
from repx.services.remote_scatter import write_scatter

#: Stands for the attempt directory in argv and inputs.json (the runner substitutes it).
PLACEHOLDER: Final = "@@WORK@@"
#: Separates the fields of one record of the plan's ``*.nul`` files (ASCII unit separator).
FIELD_SEPARATOR: Final = "\x1f"
RUNNER_NAME: Final = "runner.sh"


class RemoteRuntime(Runtime):
    """The runtime of a target. Its commands are built with ``inputs_exist``: upstream
    outputs are bound whether or not they exist *here* (they exist there; the runner starts
    a job only after its inputs succeeded)."""

    def input_dirs(self, spec: JobSpec) -> list[str]:
        if spec.run_metadata and not spec.store_inputs:
            # metadata__<run>: a local run binds the described jobs' out/ that exist when
            # the job starts; a plan is written before, and bwrap refuses to bind a missing
            # directory (a failed job of a soft dependency): the outputs directory, in
            # which the job finds the same out/ directories
            return [self.outputs]
        return super().input_dirs(spec)


def remote_runtime(
    lab: LoadedLab,
    kind: RuntimeKind,
    *,
    lab_dir: str,
    outputs: str,
    store: str | None,
    tools: str,
) -> Runtime:
    """The sandbox of jobs on the target: the lab at ``lab_dir``, ``store`` bound at
    /nix/store (None: the target's own /nix/store has the lab's closure), ``tools`` the
    host-tools bin directory as the host sees it (bwrap is started from there)."""
    if kind is RuntimeKind.NATIVE and store is not None:
        raise UsageError(
            "--runtime native on an SSH target needs the lab's store paths in that host's"
            " /nix/store, and it lacks them; use bwrap (it binds the synced closure there)"
        )
    path = os.path.join(lab_dir, lab.meta.host_tools, "bin")
    if kind is RuntimeKind.NATIVE:
        return RemoteRuntime(kind=kind, path=path, outputs=outputs)
    images = image_rootfs_by_run(lab)
    run_images = {run: _on_target(lab, root, lab_dir) for run, root in images.items()}
    image = None
    if lab.meta.container_mode == "unified" and "unified" in lab.meta.images:
        image = os.path.join(lab_dir, lab.meta.images["unified"], "rootfs")
    elif run_images:
        image = next(iter(run_images.values()))
    return RemoteRuntime(
        kind=RuntimeKind.BWRAP,
        path=path,
        outputs=outputs,
        bwrap=os.path.join(tools, "bwrap"),
        store=store,
        image=image,
        run_images=run_images,
    )


def _on_target(lab: LoadedLab, local: str, lab_dir: str) -> str:
    return os.path.join(lab_dir, os.path.relpath(local, lab.root))


def _description_template(described: RunMetadata) -> tuple[list[str], list[str]]:
    """A ``metadata__<run>`` description as the runner fills it when the consumer starts.

    The description is the local one's bytes (:func:`repx.run.job.describe_statuses`, the
    target's paths) with each job's status left out: the text is cut where each status goes,
    the runner reads the last status of those jobs from the store's completions.jsonl (the
    lab's host-tools jq, which skips a torn line) and writes the pieces and the statuses in
    between (``describe`` in runner.sh). Statuses are those of the moment the job starts,
    as locally — a soft run dependency lets it start after failures upstream; everything
    else is decided here, so jq never re-encodes the parameters (1.0 stays 1.0).
    Returns the pieces (one more than the jobs) and the job ids, in the text's order."""
    data = described.model_dump(mode="json")
    cut = f"@@STATUS-{secrets.token_hex(8)}@@"
    for job in data["jobs"].values():
        job["status"] = cut
    text = json.dumps(data, separators=(",", ":")) + "\n"
    pieces = text.split(json.dumps(cut))
    if len(pieces) != len(data["jobs"]) + 1:  # the cut is random: never in the lab's values
        raise UsageError(f"run {described.name}: its description cannot be cut for the runner")
    return pieces, list(data["jobs"])


def _fields(values: Iterable[str], job: str) -> str:
    """One record: the runner splits it at :data:`FIELD_SEPARATOR` with ``read -a``."""
    values = list(values)
    for value in values:
        if any(c in value for c in (FIELD_SEPARATOR, "\n", "\0")):
            raise UsageError(f"job {job}: a path or argument holds a control character: {value!r}")
    return FIELD_SEPARATOR.join(values)


def write_plan(
    directory: Path,
    lab: LoadedLab,
    plan: JobGraph,
    runtime: Runtime,
    *,
    lab_dir: str,
    base: str,
    max_jobs: int,
    continue_on_failure: bool,
    forced: frozenset[str] = frozenset(),
) -> int:
    """Write the submission directory; return the number of jobs in it. ``forced``: jobs
    run again although committed there (``run --force``): their success stays when the
    new attempt fails."""
    directory.mkdir(parents=True)
    shutil.copyfile(RUNNER, directory / RUNNER_NAME)
    settings = [
        base,
        lab_dir,
        lab.meta.lab_id,
        runtime.path,
        str(max_jobs),
        "1" if continue_on_failure else "0",
        runtime.kind.value,
    ]
    (directory / "settings").write_bytes(b"".join(s.encode() + b"\0" for s in settings))
    index = {node: i for i, node in enumerate(plan.order)}
    lines: list[str] = []
    # one record per node (empty for a run barrier), in index order: argv, declared
    # outputs, their parent directories (parents first), inputs.json, and the run
    # descriptions of metadata__<run> inputs (file name in repx/, template, …)
    records: dict[str, list[str]] = {
        "argv": [],
        "outputs": [],
        "dirs": [],
        "inputs": [],
        "metadata": [],
    }
    templates: dict[str, str] = {}  # described run -> its template's name in metadata/
    outputs = os.path.join(base, "outputs")
    count = 0
    for node in plan.order:
        # "-" for none: tab is a whitespace separator for read(1), empty fields would vanish
        preds = (
            " ".join(
                f"{index[p]}{'h' if kind.needs_success else 's'}"
                for p, kind in plan.predecessors(node)
            )
            or "-"
        )
        if is_barrier(node):
            lines.append(f"{index[node]}\tB\t{node}\t{preds}\t-\t-")
            for field in records.values():
                field.append("")
            continue
        count += 1
        spec = make_spec(lab, node, Path(outputs))
        spec = spec.model_copy(
            update={
                "lab_root": lab_dir,
                "executable": os.path.join(lab_dir, os.path.relpath(spec.executable, lab.root)),
            }
        )
        # a scatter-gather job: the runner's own orchestrator (runner.sh scatter) runs it
        # (its inputs exist there when it starts, not here: bound whether or not)
        if spec.pieces is not None:
            argv: list[str] = []
        else:
            argv = runtime.command(spec, Path(PLACEHOLDER), inputs_exist=True)[0]
        parents: dict[str, None] = {}
        for rel in spec.outputs:
            parts = rel.split("/")[:-1]
            for n in range(1, len(parts) + 1):
                parents["/".join(parts[:n])] = None
        records["argv"].append(_fields(argv, node))
        records["outputs"].append(_fields(spec.outputs, node))
        records["dirs"].append(_fields(list(parents), node))
        inputs = dict(spec.inputs)
        inputs.update(spec.store_inputs)
        if spec.gathers:
            own = directory / "gathers" / str(index[node])
            own.mkdir(parents=True)
            for name, entries in spec.gathers.items():
                file = gather_file_name(name)
                (own / file).write_text(
                    json.dumps([e.model_dump(mode="json") for e in entries], indent=1) + "\n"
                )
                inputs[name] = os.path.join(PLACEHOLDER, "repx", file)
        described: list[str] = []
        for name, run in spec.run_metadata.items():
            if run.name not in templates:
                templates[run.name] = key = str(len(templates))
                pieces, ids = _description_template(run)
                (directory / "metadata").mkdir(exist_ok=True)
                (directory / "metadata" / f"{key}.nul").write_bytes(
                    b"".join(p.encode() + b"\0" for p in pieces)
                )
                (directory / "metadata" / f"{key}.jobs").write_text("".join(j + "\n" for j in ids))
            file = run_metadata_file_name(name)
            described += [file, templates[run.name]]
            inputs[name] = os.path.join(PLACEHOLDER, "repx", file)
        records["metadata"].append(_fields(described, node))
        if spec.pieces is not None:
            moved = spec.pieces.model_copy(
                update={
                    "executables": {
                        name: os.path.join(lab_dir, os.path.relpath(path, lab.root))
                        for name, path in spec.pieces.executables.items()
                    }
                }
            )
            write_scatter(
                directory / "scatter" / str(index[node]),
                spec.model_copy(update={"pieces": moved}),
                runtime,
                inputs,
                PLACEHOLDER,
                _fields,
            )
        text = json.dumps(inputs, indent=1, sort_keys=True)
        if "\0" in text:
            raise UsageError(f"job {node}: an input path holds a NUL byte")
        records["inputs"].append(text)
        params = lab.jobs[node].parameters_file
        # g: inputs.json names files of repx/, rewritten at the commit; f: forced
        written = spec.gathers or spec.run_metadata
        flags = ("g" if written else "") + ("f" if node in forced else "")
        flags = flags + ("s" if spec.pieces is not None else "") or "-"  # s: scatter-gather
        lines.append(f"{index[node]}\tJ\t{node}\t{preds}\t{flags}\t{params}")
    (directory / "nodes.tsv").write_text("".join(line + "\n" for line in lines))
    for name, values in records.items():
        (directory / f"{name}.nul").write_bytes(b"".join(v.encode() + b"\0" for v in values))
    return count
