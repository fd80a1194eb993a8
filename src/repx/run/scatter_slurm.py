"""Scatter-gather jobs on SLURM: one job array per step, over the branches.

The job's own SLURM task runs the orchestrator (:mod:`repx.run.scatter`): it runs the
scatter, and -- the number of branches being known only now -- submits one array per
step whose tasks are the branches that still need the step (array index = branch
number), each ``afterok`` the arrays of the steps it depends on and with the step's own
resources. It then waits for them (``squeue``) and runs the gather. Each array task runs
``python -m repx.run.scatter --piece TASK.json STEP`` and commits its piece exactly as a
local run does, so a resumed job submits only the pieces that are not done. Stopping
the job (``repx cancel``, ``scancel``) cancels the arrays it submitted.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Final

from repx import slurm
from repx.lab.hints import mem_text
from repx.lab.models import Resources
from repx.run.slurm_models import SLURM_DIR
from repx.run.slurm_plan import array_spec
from repx.run.slurm_resources import SlurmResources, format_time
from repx.run.spec import JobSpec, PieceSlurm

#: How often the orchestrator asks squeue about the step arrays (seconds).
POLL: Final = 1.0


def on_slurm(spec: JobSpec, python: str, resources: SlurmResources) -> JobSpec:
    """``spec`` for a SLURM task: a scatter-gather job then submits its steps as arrays."""
    if spec.pieces is None:
        return spec
    how = PieceSlurm(python=python, partition=resources.partition, options=resources.options)
    return spec.model_copy(update={"pieces": spec.pieces.model_copy(update={"slurm": how})})


def step_options(how: PieceSlurm, hints: Resources) -> list[str]:
    """sbatch resource options of a step: its own hints, the job's partition and options."""
    args: list[str] = []
    if hints.cpus is not None:
        args.append(f"--cpus-per-task={hints.cpus}")
    if hints.mem is not None:
        args.append(f"--mem={mem_text(hints.mem)}")
    if hints.time is not None:
        args.append(f"--time={format_time(hints.time * 60)}")
    partition = hints.partition or how.partition
    if partition is not None:
        args.append(f"--partition={partition}")
    return args + list(how.options) + list(hints.sbatch_opts or ())


def submit_steps(
    how: PieceSlurm,
    task_file: str,
    *,
    base: str,
    job: str,
    todo: Mapping[str, Sequence[int]],
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    hints: Mapping[str, Resources],
    hold: bool = False,
) -> dict[str, str]:
    """Submit one array per step of ``todo`` (step -> branches); return step -> SLURM id.

    On a refusal by SLURM the arrays submitted so far are cancelled again. ``hold`` (a
    test hook) submits them held, so that they never start.
    """
    folder = Path(base) / SLURM_DIR / f"pieces-{job}"
    folder.mkdir(parents=True, exist_ok=True)
    ids: dict[str, str] = {}
    try:
        for step in order:
            branches = todo.get(step, ())
            if not branches:
                continue
            script = folder / f"step-{step}.sh"
            script.write_text(
                "#!/bin/sh\n"
                f"# repx: step {step} of {job}, one task per branch\n"
                f"exec {shlex.quote(how.python)} -m repx.run.scatter --piece"
                f" {shlex.quote(task_file)} {shlex.quote(step)}"
                ' "${SLURM_ARRAY_TASK_ID}"\n',
                encoding="utf-8",
            )
            options = [
                f"--job-name=repx-{job.split('-', 1)[-1]}-{step}",
                f"--chdir={folder}",
                f"--output={folder / f'step-{step}-%A_%a.log'}",
                f"--array={array_spec(list(branches))}",
            ]
            if hold:
                options.append("--hold")
            after = [ids[d] for d in deps.get(step, ()) if d in ids]
            if after:
                options += [f"--dependency=afterok:{':'.join(after)}", "--kill-on-invalid-dep=yes"]
            options += step_options(how, hints[step])
            ids[step] = slurm.sbatch(script, options)
    except slurm.SlurmError:
        cancel(ids.values())
        raise
    return ids


def active(ids: Sequence[str]) -> bool:
    """True while a task of the arrays ``ids`` is queued or running."""
    return any(entry.state.active for entry in slurm.squeue(ids))


def cancel(ids: Iterable[str]) -> None:
    """Cancel the arrays (a refusal is reported in the job's log: the job ends anyway)."""
    try:
        slurm.scancel(ids)
    except slurm.SlurmError as exc:
        sys.stderr.write(f"repx: cannot cancel the step arrays: {exc.message}\n")
