"""The job graph: selected jobs, their data edges and run-dependency barriers (networkx).

Nodes are job ids and *barrier* nodes (``run:<name>:ok`` / ``run:<name>:done``) that stand
for "every job of run <name> succeeded" (a hard run dependency) or "... finished, whatever
the outcome" (soft). A barrier has an edge from each job of its run and an edge to each
job of a dependent run, so run dependencies cost O(jobs), not O(jobs²) edges.

Edge kinds say what the target needs from the source:

- ``data`` / ``hard``: the source succeeded;
- ``soft``: the source finished (succeeded, failed, or was blocked).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import networkx as nx

from repx.errors import LabError
from repx.lab.loader import LoadedLab
from repx.run.selection import Selection, lab_order

BARRIER_PREFIX: Final = "run:"


class EdgeKind(StrEnum):
    """What a node needs from one of its predecessors."""

    DATA = "data"
    HARD = "hard"
    SOFT = "soft"

    @property
    def needs_success(self) -> bool:
        """True when the source must succeed (not merely finish)."""
        return self is not EdgeKind.SOFT


def is_barrier(node: str) -> bool:
    """True for run-dependency barrier nodes (job ids never contain ':')."""
    return node.startswith(BARRIER_PREFIX)


def barrier_id(run: str, kind: str) -> str:
    """The barrier node of a dependency of ``kind`` ('hard'/'soft') on ``run``."""
    return f"{BARRIER_PREFIX}{run}:{'ok' if kind == 'hard' else 'done'}"


@dataclass(frozen=True)
class JobGraph:
    """A validated DAG and a topological order of its nodes (lab order among equals)."""

    graph: nx.DiGraph[str]
    order: tuple[str, ...]

    @classmethod
    def empty(cls) -> JobGraph:
        """The plan when nothing is left to run."""
        return cls(nx.DiGraph(), ())

    @property
    def jobs(self) -> list[str]:
        """Job nodes in topological order (barriers left out)."""
        return [n for n in self.order if not is_barrier(n)]

    def predecessors(self, node: str) -> Iterable[tuple[str, EdgeKind]]:
        """Predecessors of ``node`` with the kind of each edge."""
        for pred, attrs in self.graph.pred[node].items():
            yield pred, attrs["kind"]

    def successors(self, node: str) -> Iterable[tuple[str, EdgeKind]]:
        """Successors of ``node`` with the kind of each edge."""
        for succ, attrs in self.graph.succ[node].items():
            yield succ, attrs["kind"]

    def prune(self, done: Callable[[str], bool], targets: Collection[str]) -> JobGraph:
        """The sub-graph of what must run to complete ``targets``, given what is ``done``.

        A node is kept when it is not done and it is a target or a kept node needs it. A
        barrier is done when all its jobs are. Upstream jobs of done jobs are not rerun even
        if their own outputs were deleted.
        """
        target_set = set(targets)
        state: dict[str, bool] = {}  # node -> done
        for node in self.order:
            if is_barrier(node):
                state[node] = all(state[p] for p in self.graph.pred[node])
            else:
                state[node] = done(node)
        keep: set[str] = set()
        for node in reversed(self.order):
            if state[node]:
                continue
            if node in target_set or any(s in keep for s in self.graph.succ[node]):
                keep.add(node)
        sub = self.graph.subgraph(keep).copy()
        return JobGraph(sub, tuple(n for n in self.order if n in keep))


def build_graph(lab: LoadedLab, selection: Selection) -> JobGraph:
    """Build and validate the DAG of ``selection`` (a cycle is a :class:`LabError`)."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    jobs = set(selection.jobs)
    graph.add_nodes_from(selection.jobs)
    upstream = lab.upstream  # the job index's: no record read
    graph.add_edges_from(
        (up, job, {"kind": EdgeKind.DATA}) for job in selection.jobs for up in upstream[job]
    )
    for run in sorted(selection.runs):
        members = [j for j in lab.runs[run].jobs if j in jobs]
        for dep, kind in sorted(lab.revision.runs[run].depends_on.items()):
            barrier = barrier_id(dep, kind)
            dep_jobs = lab.runs[dep].jobs
            if barrier not in graph:
                member_kind = EdgeKind.HARD if kind == "hard" else EdgeKind.SOFT
                graph.add_node(barrier)
                graph.add_edges_from((j, barrier, {"kind": member_kind}) for j in dep_jobs)
            # A job listed in both runs is part of the dependency itself: it cannot wait for it.
            graph.add_edges_from(
                (barrier, j, {"kind": EdgeKind.HARD}) for j in members if j not in dep_jobs
            )
    position = lab_order(lab)
    try:
        # Barriers sort first among ready nodes: they complete instantly.
        order = tuple(
            nx.lexicographical_topological_sort(
                graph, key=lambda n: -1 if is_barrier(n) else position[n]
            )
        )
    except nx.NetworkXUnfeasible:
        raise _cycle_error(graph) from None
    return JobGraph(graph, order)


def _cycle_error(graph: nx.DiGraph[str]) -> LabError:
    cycle = nx.find_cycle(graph)
    names = [edge[0] for edge in cycle] + [cycle[0][0]]
    return LabError("the selected jobs form a dependency cycle", " -> ".join(names))
