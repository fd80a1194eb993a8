"""SLURM submission: a plan's jobs become job arrays that SLURM orders itself.

:meth:`SlurmSubmitter.flush` groups the jobs handed over (:mod:`repx.run.slurm_plan`),
writes each group's manifest and batch script under ``<base>/slurm/<batch>/`` and calls
``sbatch`` once per group, with ``--dependency`` on the groups it waits for. Each task runs
``python -m repx.run.slurm_task``, i.e. the local job lifecycle, on the node. Jobs already
queued or running from an earlier submission are adopted (followed, not submitted again).
Every job submitted or adopted is handed to a :class:`~repx.run.slurm_follow.SlurmFollower`.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from repx import slurm
from repx.run import slurm_light
from repx.run.events import Event, JobsSubmitted, Notice
from repx.run.graph import JobGraph
from repx.run.runtime import Runtime
from repx.run.scatter_slurm import on_slurm
from repx.run.slurm_follow import SlurmFollower
from repx.run.slurm_models import (
    SLURM_DIR,
    Submission,
    TaskManifest,
    append_submission,
    job_refs,
    manifest_json,
    read_submissions,
)
from repx.run.slurm_plan import (
    DependencyMap,
    PlannedGroup,
    array_spec,
    held_dependencies,
    plan_groups,
)
from repx.run.slurm_resources import SlurmResources, auto_bundle, parse_time
from repx.run.spec import JobSpec, NodeLocalLab
from repx.run.store import Store

logger = logging.getLogger(__name__)

#: The module every task runs (see repx.run.slurm_task).
TASK_MODULE: Final = "repx.run.slurm_task"
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class SubmittedGroup:
    """One sbatch call made (for the report of ``repx run``)."""

    slurm_id: str
    stage: str
    jobs: tuple[str, ...]
    array: str | None
    dependency: str | None
    bundle: int


class SlurmSubmitter:
    """Submits jobs to SLURM as arrays with dependencies; hands them to ``follower``."""

    def __init__(
        self,
        store: Store,
        runtime: Runtime,
        graph: JobGraph,
        resources: Mapping[str, SlurmResources],
        follower: SlurmFollower,
        *,
        target: str,
        python: str,
        lab_id: str,
        store_probe: str | None,
        lab_store: str | None,
        emit: Callable[[Event], None],
        node_local: NodeLocalLab | None = None,
        light_tasks: bool = True,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.graph = graph
        self.resources = resources
        self.follower = follower
        self.target = target
        self.python = python
        self.lab_id = lab_id
        self.store_probe = store_probe
        self.lab_store = lab_store
        self.node_local = node_local
        self.light_tasks = light_tasks
        self.emit = emit
        self.submitted: list[SubmittedGroup] = []
        #: jobs found queued or running from an earlier submission (job -> SLURM id)
        self.adopted: dict[str, str] = {}
        self.sbatch_calls = 0

    def flush(self, pending: Sequence[JobSpec]) -> list[SubmittedGroup]:
        """Submit ``pending`` (in plan order); return the sbatch calls made.

        On a refusal by SLURM, what this flush submitted is cancelled again and the error
        names the target, the stage and a job.
        """
        specs = {spec.job: spec for spec in pending}
        if not specs:
            return []
        order = list(specs)
        deps = held_dependencies(self.graph)
        adopted = self._find_active(order, deps)
        self.adopted.update(adopted)
        for job, ref in adopted.items():
            self.follower.follow(job, ref, ref.split("_", 1)[0], time.time(), "")
        if adopted:
            self.emit(
                Notice(
                    message=f"{len(adopted)} job(s) are already queued or running in SLURM"
                    " (an earlier submission): followed, not submitted again"
                )
            )
        todo = [job for job in order if job not in adopted]
        limits = slurm.limits() if len(todo) > 1 else slurm.Limits(max_array_size=2)
        groups = plan_groups(
            todo,
            stage_of={job: specs[job].stage for job in todo},
            deps={job: deps.get(job, {}) for job in todo},
            resources={job: self.resources[job] for job in todo},
            adopted=adopted,
            max_array_size=limits.max_array_size,
            max_job_count=limits.max_job_count,
            bundle_size=_AutoBundle(),
        )
        self._check_budget(groups, limits)
        batch = self._batch_dir()
        ids: dict[int, str] = {}
        arrays: dict[int, bool] = {}
        made: list[Submission] = []
        try:
            for group in groups:
                record = self._submit_group(group, specs, batch, ids, arrays)
                made.append(record)
        except slurm.SlurmError as exc:
            self._withdraw(made)
            job = group.jobs[0]
            count = len(group.jobs)
            undone = f" ({len(made)} earlier sbatch call(s) of this run cancelled)" if made else ""
            raise slurm.SlurmError(
                f"target '{self.target}': SLURM refused the {count} job(s) of stage"
                f" '{group.stage}' (e.g. {job}): {exc.message}",
                f"nothing of this run stays submitted{undone}",
            ) from None
        return self.submitted[-len(made) :] if made else []

    def _check_budget(self, groups: Sequence[PlannedGroup], limits: slurm.Limits) -> None:
        """Say which groups "auto" bundled to stay within the budget; refuse a plan with
        more tasks than the cluster's MaxJobCount (SLURM would refuse it part-way)."""
        bundled: dict[str, tuple[int, int, str]] = {}
        for group in groups:
            if group.over_budget is not None:
                jobs, _, _ = bundled.get(group.stage, (0, 0, ""))
                bundled[group.stage] = (jobs + len(group.jobs), group.bundle, group.over_budget)
        for stage, (jobs, bundle, why) in bundled.items():
            self.emit(
                Notice(
                    message=f"stage {stage}: {jobs} job(s) one per task would need {why}:"
                    f' up to {bundle} jobs per task (jobs_per_task = "auto";'
                    " set jobs_per_task in resources.toml to choose)"
                )
            )
        tasks = sum(len(group.tasks) for group in groups)
        if tasks >= limits.max_job_count:
            stage = max(groups, key=lambda g: len(g.tasks)).stage
            raise slurm.SlurmError(
                f"target '{self.target}': {tasks} SLURM tasks, more than the cluster holds"
                f" (MaxJobCount {limits.max_job_count})",
                f'set jobs_per_task (stage {stage}) to "auto" or a larger number in'
                " resources.toml; nothing was submitted",
            )

    def _submit_group(
        self,
        group: PlannedGroup,
        specs: Mapping[str, JobSpec],
        batch: Path,
        ids: dict[int, str],
        arrays: dict[int, bool],
    ) -> Submission:
        name = f"{group.number:03d}-{_UNSAFE.sub('_', group.stage)}"
        manifest = batch / f"{name}.json"
        script = batch / f"{name}.sh"
        log = batch / "logs" / (f"{name}-%A_%a.log" if group.array else f"{name}-%j.log")
        content = TaskManifest(
            base=os.fspath(self.store.root),
            runtime=self.runtime,
            store_probe=self.store_probe,
            lab_store=self.lab_store,
            node_local=self.node_local,
            tasks={
                str(i): tuple(
                    on_slurm(specs[j], self.python, self.resources[j], self.node_local)
                    for j in jobs
                )
                for i, jobs in group.tasks.items()
            },
        )
        _write(manifest, manifest_json(content))
        light = self._light_tasks(group, specs, batch / f"{name}.tasks", manifest)
        _write(script, batch_script(self.python, manifest, group, light))
        dependency = group.dependency(ids, arrays)
        options = sbatch_options(group, batch, log, dependency)
        self.sbatch_calls += 1
        slurm_id = slurm.sbatch(script, options)
        ids[group.number] = slurm_id
        arrays[group.number] = group.array
        log_text = os.fspath(log).replace("%A", slurm_id).replace("%j", slurm_id)
        record = Submission(
            slurm_id=slurm_id,
            array=group.array,
            stage=group.stage,
            target=self.target,
            submitted=time.time(),
            tasks={str(i): tuple(jobs) for i, jobs in group.tasks.items()},
            manifest=os.fspath(manifest),
            log=log_text,
            dependency=dependency,
            lab_id=self.lab_id,
        )
        append_submission(self.store.root, record)
        for index, jobs in group.tasks.items():
            ref = record.ref(str(index))
            log_of_task = record.log_of(str(index))
            for job in jobs:
                self.follower.follow(job, ref, slurm_id, record.submitted, log_of_task)
        submitted = SubmittedGroup(
            slurm_id=slurm_id,
            stage=group.stage,
            jobs=tuple(group.jobs),
            array=array_spec(list(group.tasks)) if group.array else None,
            dependency=dependency,
            bundle=group.bundle,
        )
        self.submitted.append(submitted)
        self.emit(
            JobsSubmitted(
                slurm_id=slurm_id,
                stage=group.stage,
                jobs=len(submitted.jobs),
                array=submitted.array,
                dependency=dependency,
                bundle=submitted.bundle,
            )
        )
        return record

    def _light_tasks(
        self, group: PlannedGroup, specs: Mapping[str, JobSpec], path: Path, manifest: Path
    ) -> Path | None:
        """Write the group's tasks file when every task runs one light job (see
        :mod:`repx.run.slurm_light`); its path, or None (the full task runs them)."""
        if not self.light_tasks or group.bundle != 1 or self.node_local is not None:
            return None
        tasks = {index: specs[jobs[0]] for index, jobs in group.tasks.items()}
        if any(slurm_light.why_not_light(s, self.runtime, None) for s in tasks.values()):
            return None
        data = slurm_light.tasks_file(
            tasks,
            self.runtime,
            base=os.fspath(self.store.root),
            python=self.python,
            manifest=os.fspath(manifest),
            store_probe=self.store_probe,
        )
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return path

    def _withdraw(self, made: Sequence[Submission]) -> None:
        if not made:
            return
        try:
            slurm.scancel(record.slurm_id for record in made)
        except slurm.SlurmError as exc:
            logger.warning("cannot cancel the jobs just submitted: %s", exc.message)
        for record in made:
            append_submission(self.store.root, record.model_copy(update={"kind": "withdrawn"}))
            for jobs in record.tasks.values():
                self.follower.forget(jobs)
        self.submitted = self.submitted[: len(self.submitted) - len(made)]

    def _find_active(self, jobs: Sequence[str], deps: DependencyMap) -> dict[str, str]:
        """Jobs of ``jobs`` (in order) that an earlier submission has queued or running and
        that can still run as submitted (-> SLURM id): every job they wait for is adopted too.

        The other tasks of earlier submissions are cancelled (their jobs are submitted again).
        """
        refs = job_refs(read_submissions(self.store.root))
        mine = {job: refs[job] for job in jobs if job in refs}
        if not mine:
            return {}
        entries = {e.job_id: e for e in slurm.squeue({r.array_job for r in mine.values()})}
        active: dict[str, str] = {}
        stale: set[str] = set()
        for job in jobs:
            ref = mine.get(job)
            entry = entries.get(ref.ref) if ref is not None else None
            if ref is None or entry is None or not entry.state.active:
                continue
            waits_for_new = any(pred not in active for pred in deps.get(job, {}))
            if entry.never_runs or (entry.state.queued and waits_for_new):
                stale.add(ref.ref)  # it waits for an old attempt: submitted again
                continue
            active[job] = ref.ref
        if stale:
            slurm.scancel(stale)
        return active

    def _batch_dir(self) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        root = self.store.root / SLURM_DIR
        for n in range(1000):
            path = root / f"{stamp}-{os.getpid()}-{n}"
            try:
                (path / "logs").mkdir(parents=True)
            except FileExistsError:
                continue
            return path
        raise OSError(f"cannot create a batch directory under {root}")


class _AutoBundle:
    """Jobs per task: the resources' ``jobs_per_task``, else :func:`auto_bundle` with the
    partition's CPUs and MaxTime (``sinfo``, asked once and only when needed)."""

    def __init__(self) -> None:
        self._partitions: dict[str, slurm.Partition] | None = None

    def __call__(self, resources: SlurmResources, jobs: int) -> int:
        if resources.jobs_per_task is not None:
            return resources.jobs_per_task
        if resources.time_seconds is None or jobs <= 1:
            return 1
        if self._partitions is None:
            try:
                self._partitions = slurm.partitions()
            except slurm.SlurmError as exc:
                logger.warning("no automatic bundles (sinfo: %s)", exc.message)
                self._partitions = {}
        name = (resources.partition or "").split(",")[0]
        partition = self._partitions.get(name)
        if partition is None:
            return 1
        try:
            max_time: int | None = parse_time(partition.max_time)
        except ValueError:
            max_time = None  # "infinite"
        return auto_bundle(resources, jobs, partition.cpus, max_time)


def batch_script(
    python: str, manifest: Path, group: PlannedGroup, light: Path | None = None
) -> str:
    """The batch script of a group: exec the task wrapper for this array index (the light
    one with a tasks file, when the node has the program; it hands over to the full one)."""
    jobs = len(group.jobs)
    full = (
        f"exec {shlex.quote(python)} -m {TASK_MODULE} {shlex.quote(os.fspath(manifest))}"
        ' "${SLURM_ARRAY_TASK_ID:-0}"\n'
    )
    head = f"#!/bin/sh\n# repx: stage {group.stage}, {jobs} job(s) in {len(group.tasks)} task(s)\n"
    if light is None:
        return head + full
    argv = " ".join(shlex.quote(a) for a in slurm_light.batch_line(python, light))
    return (
        head
        + f"[ -r {shlex.quote(slurm_light.PROGRAM)} ] &&"
        + f' exec {argv} "${{SLURM_ARRAY_TASK_ID:-0}}"\n'
        + full
    )


def sbatch_options(
    group: PlannedGroup, batch: Path, log: Path, dependency: str | None
) -> list[str]:
    """Every sbatch option of a group (``--parsable`` and the script are added by slurm)."""
    options = [
        f"--job-name=repx-{group.stage}",
        f"--chdir={os.fspath(batch)}",
        f"--output={os.fspath(log)}",
    ]
    if group.array:
        options.append(f"--array={array_spec(list(group.tasks))}")
    if dependency is not None:
        options += [f"--dependency={dependency}", "--kill-on-invalid-dep=yes"]
    options += group.resources.sbatch_args(bundle=group.bundle)
    return options


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
