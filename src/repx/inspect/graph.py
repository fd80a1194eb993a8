"""The topology of a lab as networkx graphs, at the level of runs, stages or jobs.

Node ids: a run's name (``runs``), ``<run>/<stage>`` (``stages``), a job id (``jobs``).
Edges point from producer to consumer. Data edges carry the names of the outputs that
flow along them; run edges also carry the run dependency kind.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

import networkx as nx

from repx.inspect.status import JobState
from repx.inspect.view import LabView


class Level(StrEnum):
    """How much detail a drawing shows."""

    RUNS = "runs"
    STAGES = "stages"
    JOBS = "jobs"


#: What a set of jobs is, in one word (for colouring stage and run nodes).
SUMMARY_STATES: Final = ("succeeded", "partial", "running", "failed", "blocked", "pending")


def stage_node(run: str, stage: str) -> str:
    """The node id of a stage of a run."""
    return f"{run}/{stage}"


def build_graph(view: LabView, level: Level | str = Level.JOBS) -> nx.DiGraph[str]:
    """The lab's graph at ``level`` (statuses are attached when the lab has run)."""
    match Level(level):
        case Level.RUNS:
            return run_graph(view)
        case Level.STAGES:
            return stage_graph(view)
        case Level.JOBS:
            return job_graph(view)


def job_graph(view: LabView) -> nx.DiGraph[str]:
    """Jobs and the data edges between them.

    Node attributes: ``run`` (first run), ``runs``, ``stage``, ``params``, ``status``.
    Edge attributes: ``inputs`` and ``outputs`` (names), ``gather``, ``run`` (producer's run).
    """
    graph: nx.DiGraph[str] = nx.DiGraph()
    lab = view.lab
    status = view.status
    for run, job_id in view.all_jobs():
        job = lab.jobs[job_id]
        graph.add_node(
            job_id,
            run=run,
            runs=view.runs_of(job_id),
            stage=job.stage,
            params=dict(job.params),
            status=status.state(job_id).value,
        )
    for _, job_id in view.all_jobs():
        for inp in lab.jobs[job_id].inputs:
            if inp.job not in lab.jobs:
                continue
            if graph.has_edge(inp.job, job_id):
                data = graph.edges[inp.job, job_id]
                _add_unique(data["inputs"], inp.name)
                _add_unique(data["outputs"], inp.output)
                data["gather"] = data["gather"] or inp.gather
            else:
                graph.add_edge(
                    inp.job,
                    job_id,
                    inputs=[inp.name],
                    outputs=[inp.output],
                    gather=inp.gather,
                    run=inp.run,
                )
    return graph


def stage_graph(view: LabView) -> nx.DiGraph[str]:
    """Stages of every run and the outputs that flow between them.

    Node attributes: ``run``, ``stage``, ``jobs`` (count), ``status`` (a summary state, see
    :func:`summary_state`), ``counts`` (jobs per state). Edge attributes: ``outputs``,
    ``inputs``, ``gather``, ``cross_run``.
    """
    graph: nx.DiGraph[str] = nx.DiGraph()
    lab = view.lab
    status = view.status
    for run in view.run_names:
        for stage in view.stages(run):
            jobs = view.jobs_of(run, stage)
            counts = status.counts(jobs)
            graph.add_node(
                stage_node(run, stage),
                run=run,
                stage=stage,
                jobs=len(jobs),
                counts={s.value: n for s, n in counts.items()},
                status=summary_state(counts),
            )
    for run in view.run_names:
        for job in lab.runs[run].jobs.values():
            target = stage_node(run, job.stage)
            for inp in job.inputs:
                upstream = lab.jobs.get(inp.job)
                if upstream is None:
                    continue
                source = stage_node(inp.run, upstream.stage)
                if source not in graph or target not in graph:  # broken reference
                    continue
                if graph.has_edge(source, target):
                    data = graph.edges[source, target]
                    _add_unique(data["outputs"], inp.output)
                    _add_unique(data["inputs"], inp.name)
                    data["gather"] = data["gather"] or inp.gather
                else:
                    graph.add_edge(
                        source,
                        target,
                        outputs=[inp.output],
                        inputs=[inp.name],
                        gather=inp.gather,
                        cross_run=inp.run != run,
                    )
    return graph


def run_graph(view: LabView) -> nx.DiGraph[str]:
    """Runs, their dependencies and the outputs that flow between them.

    Node attributes: ``jobs``, ``stages``, ``status``, ``counts``. Edge attributes: ``kind``
    (``hard``/``soft``, or ``None`` for data read without a declared dependency) and
    ``outputs`` (outputs of the source run read by the target run).
    """
    graph: nx.DiGraph[str] = nx.DiGraph()
    lab = view.lab
    status = view.status
    for run in view.run_names:
        counts = status.counts(lab.runs[run].jobs)
        graph.add_node(
            run,
            jobs=len(lab.runs[run].jobs),
            stages=view.stages(run),
            counts={s.value: n for s, n in counts.items()},
            status=summary_state(counts),
        )
    for run in view.run_names:
        for dep, kind in lab.revision.runs[run].depends_on.items():
            if dep in lab.runs:
                graph.add_edge(dep, run, kind=kind, outputs=[])
        for job in lab.runs[run].jobs.values():
            for inp in job.inputs:
                if inp.run == run or inp.run not in lab.runs:
                    continue
                if not graph.has_edge(inp.run, run):
                    graph.add_edge(inp.run, run, kind=None, outputs=[])
                _add_unique(graph.edges[inp.run, run]["outputs"], inp.output)
    return graph


def summary_state(counts: dict[JobState, int]) -> str:
    """One word for a set of jobs: failed, running, blocked, succeeded, partial or pending."""
    total = sum(counts.values())
    if counts.get(JobState.FAILED):
        return "failed"
    if counts.get(JobState.RUNNING):
        return "running"
    if total and counts.get(JobState.SUCCEEDED) == total:
        return "succeeded"
    if counts.get(JobState.SUCCEEDED):
        return "partial"
    if counts.get(JobState.BLOCKED) or counts.get(JobState.CANCELLED):
        return "blocked"
    return "pending"


def _add_unique(items: list[str], item: str) -> None:
    if item not in items:
        items.append(item)
