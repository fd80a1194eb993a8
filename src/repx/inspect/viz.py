"""Draw a lab's topology with graphviz: runs as clusters, stages (or jobs) as nodes.

The drawing is made from the networkx graphs of :mod:`repx.inspect.graph`. DOT ids are
the graph's node ids, so an SVG's ``<title>`` elements name runs, ``<run>/<stage>`` or
job ids; edges get an ``id`` of ``data:<source>-><target>`` (outputs flowing) or
``run:<source>-><target>`` (a run dependency), clusters ``cluster_<run>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Final

from repx.errors import ProgramNotFoundError, RepxError
from repx.inspect.graph import Level, job_graph, run_graph, stage_graph, stage_node
from repx.inspect.params import format_value, sorted_values
from repx.inspect.view import LabView

if TYPE_CHECKING:
    import graphviz
    import networkx as nx
    from pydantic import JsonValue


class VizFormat(StrEnum):
    """Output formats of ``repx viz``."""

    SVG = "svg"
    PNG = "png"
    PDF = "pdf"
    DOT = "dot"


#: Fill colour of a node per (summary) state; white while nothing has run.
STATE_COLOURS: Final = {
    "succeeded": "#b8e0b0",
    "partial": "#e3f2dd",
    "running": "#ffe08a",
    "failed": "#f4a6a0",
    "blocked": "#d9d9d9",
    "cancelled": "#d9d9d9",
    "queued": "#ffffff",
    "pending": "#ffffff",
    "waiting": "#ffffff",
}
#: Values of a parameter listed in a node label before eliding the rest.
_MAX_VALUES: Final = 4
#: Edge labels are left out of job-level drawings with more edges than this.
_MAX_LABELLED_EDGES: Final = 500
_FONT: Final = "Helvetica"


class VizError(RepxError):
    """graphviz failed to lay out or render the drawing."""

    exit_code = 1


@dataclass(frozen=True)
class VizOptions:
    """What to draw."""

    level: Level = Level.STAGES
    show_params: bool = False


def make_dot(view: LabView, options: VizOptions) -> graphviz.Digraph:
    """The drawing of ``view`` as a graphviz graph (not laid out yet)."""
    import graphviz  # noqa: PLC0415 (only viz needs it)

    dot = graphviz.Digraph(name="lab", strict=False)
    dot.attr(
        rankdir="LR",
        compound="true",
        fontname=_FONT,
        label=_label([lab_title(view)]),
        labelloc="t",
        fontsize="12",
    )
    dot.attr("node", shape="box", style="rounded,filled", fillcolor="white", fontname=_FONT)
    dot.attr("edge", fontname=_FONT, fontsize="10")
    coloured = view.status.executed
    match options.level:
        case Level.RUNS:
            _draw_runs(dot, view, run_graph(view), coloured)
        case Level.STAGES:
            _draw_stages(dot, view, stage_graph(view), coloured, options.show_params)
        case Level.JOBS:
            _draw_jobs(dot, view, job_graph(view), coloured, options.show_params)
    if coloured:
        _draw_legend(dot, view)
    return dot


def lab_title(view: LabView) -> str:
    """``<name> · lab <id> · version <v>``: the experiment's name comes from the lab's
    store path (``…-repx-lab-<name>``), when it has one."""
    name = view.lab.root.name.partition("-repx-lab-")[2]
    meta = view.lab.meta
    parts = [name] if name else []
    parts += [f"lab {meta.lab_id}", f"version {meta.lab_version}"]
    return " · ".join(parts)


#: Order of states in counts and in the legend.
STATE_ORDER: Final = tuple(STATE_COLOURS)


def counts_text(counts: dict[str, int]) -> str:
    """``4 succeeded, 1 failed``: the non-zero counts, in :data:`STATE_ORDER`."""
    return ", ".join(f"{counts[s]} {s}" for s in STATE_ORDER if counts.get(s))


def _draw_legend(dot: graphviz.Digraph, view: LabView) -> None:
    """One box per state present, with its colour and how many jobs are in it."""
    totals: dict[str, int] = {}
    for job_state, count in view.status.counts(view.lab.jobs).items():
        if count:
            totals[job_state.value] = count
    with dot.subgraph(name="cluster_legend") as legend:
        legend.attr(label=_label(["legend (jobs)"]), style="rounded", color="#bbbbbb")
        previous = None
        for state in STATE_ORDER:
            if not totals.get(state):
                continue
            node = f"legend:{state}"
            legend.node(
                node,
                _label([f"{state}: {totals[state]}"]),
                fillcolor=STATE_COLOURS[state],
                fontsize="10",
            )
            if previous is not None:  # stack the entries
                legend.edge(previous, node, style="invis")
            previous = node


def render(view: LabView, options: VizOptions, fmt: VizFormat) -> bytes:
    """The drawing in ``fmt`` (``dot``: the DOT source, no layout)."""
    import graphviz  # noqa: PLC0415

    dot = make_dot(view, options)
    if fmt is VizFormat.DOT:
        source: str = dot.source
        return source.encode()
    try:
        data = dot.pipe(format=fmt.value, quiet=True)
    except graphviz.ExecutableNotFound:
        raise ProgramNotFoundError("dot") from None
    except graphviz.CalledProcessError as exc:
        stderr = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise VizError(f"graphviz could not render the drawing ({fmt.value})", stderr) from None
    return bytes(data)


# -- levels -----------------------------------------------------------------------------


def _draw_runs(
    dot: graphviz.Digraph, view: LabView, graph: nx.DiGraph[str], coloured: bool
) -> None:
    for run, data in graph.nodes(data=True):
        lines = [run, f"{data['jobs']} jobs · {len(data['stages'])} stages"]
        if coloured and (text := counts_text(data["counts"])):
            lines.append(text)
        dot.node(run, _label(lines), **_fill(data["status"], coloured, data["counts"]))
    for source, target, data in graph.edges(data=True):
        words = [data["kind"]] if data["kind"] else []
        words += data["outputs"]
        attrs = {"style": "dashed"} if data["kind"] == "soft" else {}
        kind = "run" if data["kind"] else "data"
        dot.edge(
            source,
            target,
            label=_label([", ".join(words)]),
            id=f"{kind}:{source}->{target}",
            **attrs,
        )


def _draw_stages(
    dot: graphviz.Digraph, view: LabView, graph: nx.DiGraph[str], coloured: bool, show_params: bool
) -> None:
    lab = view.lab
    for run in view.run_names:
        with dot.subgraph(name=f"cluster_{run}") as cluster:
            cluster.attr(label=_label([run]), style="rounded", color="#888888", fontname=_FONT)
            for stage in view.stages(run):
                node = stage_node(run, stage)
                data = graph.nodes[node]
                lines = [stage, _jobs_text(data["jobs"])]
                jobs = view.jobs_of(run, stage)
                layout = lab.jobs[jobs[0]].scatter_gather if jobs else None
                if layout is not None:  # a scatter-gather stage: its pieces in order
                    lines.append(" → ".join(["scatter", *layout.step_order, "gather"]))
                if coloured and (text := counts_text(data["counts"])):
                    lines.append(text)
                if show_params:
                    lines += _param_lines(lab.jobs[j].params for j in view.jobs_of(run, stage))
                cluster.node(node, _label(lines), **_fill(data["status"], coloured, data["counts"]))
    for source, target, data in graph.edges(data=True):
        text = ", ".join(data["outputs"]) + (" (gather)" if data["gather"] else "")
        attrs = {"style": "bold"} if data["cross_run"] else {}
        dot.edge(source, target, label=_label([text]), id=f"data:{source}->{target}", **attrs)
    _draw_run_dependencies(dot, view)


def _draw_run_dependencies(dot: graphviz.Digraph, view: LabView) -> None:
    """Run dependencies as dashed edges between clusters (last stage -> first stage)."""
    for run in view.run_names:
        stages = view.stages(run)
        for dep, kind in view.lab.revision.runs[run].depends_on.items():
            if dep not in view.lab.runs or not stages or not view.stages(dep):
                continue
            source = stage_node(dep, view.stages(dep)[-1])
            target = stage_node(run, stages[0])
            dot.edge(
                source,
                target,
                label=_label([kind]),
                id=f"run:{dep}->{run}",
                ltail=f"cluster_{dep}",
                lhead=f"cluster_{run}",
                style="dashed",
                color="#888888",
                fontcolor="#888888",
            )


def _draw_jobs(
    dot: graphviz.Digraph, view: LabView, graph: nx.DiGraph[str], coloured: bool, show_params: bool
) -> None:
    by_run: dict[str, list[str]] = {}
    for job, data in graph.nodes(data=True):
        by_run.setdefault(data["run"], []).append(job)
    for index, run in enumerate(view.run_names):
        with dot.subgraph(name=f"cluster_{run}") as cluster:
            cluster.attr(label=_label([run]), style="rounded", color="#888888", fontname=_FONT)
            for stage in view.stages(run):
                jobs = [j for j in view.jobs_of(run, stage) if graph.nodes[j]["run"] == run]
                if not jobs:
                    continue
                with cluster.subgraph(name=f"cluster_{run}/{stage}#{index}") as box:
                    box.attr(label=_label([stage]), style="dotted", color="#aaaaaa")
                    for job in jobs:
                        data = graph.nodes[job]
                        lines = [view.short_id(job)]
                        branches = view.status.branches(job, view.lab.jobs[job].scatter_gather)
                        if branches is not None:
                            lines.append(str(branches))
                        if show_params:
                            lines += [f"{k}={format_value(v)}" for k, v in data["params"].items()]
                        box.node(job, _label(lines), **_fill(data["status"], coloured, None))
    labelled = graph.number_of_edges() <= _MAX_LABELLED_EDGES
    for source, target, data in graph.edges(data=True):
        attrs = {"label": _label([", ".join(data["outputs"])])} if labelled else {}
        dot.edge(source, target, id=f"data:{source}->{target}", **attrs)


# -- helpers ----------------------------------------------------------------------------


def _jobs_text(count: int) -> str:
    return f"{count} job" if count == 1 else f"{count} jobs"


def _param_lines(all_params: Iterable[dict[str, JsonValue]]) -> list[str]:
    """``name: v1, v2, …`` for each parameter the jobs of a stage take."""
    values: dict[str, list[JsonValue]] = {}
    for params in all_params:
        for name, value in params.items():
            values.setdefault(name, []).append(value)
    lines = []
    for name, seen in values.items():
        distinct = sorted_values(seen)
        shown = ", ".join(format_value(v) for v in distinct[:_MAX_VALUES])
        more = f", … ({len(distinct)})" if len(distinct) > _MAX_VALUES else ""
        lines.append(f"{name}: {shown}{more}")
    return lines


def _fill(state: str, coloured: bool, counts: dict[str, int] | None) -> dict[str, str]:
    if not coloured:
        return {}
    attrs = {"fillcolor": STATE_COLOURS.get(state, "white")}
    if counts is not None:
        attrs["tooltip"] = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or state
    else:
        attrs["tooltip"] = state
    return attrs


def _label(lines: Iterable[str]) -> str:
    """A DOT label: backslashes kept literal, one line per item."""
    import graphviz  # noqa: PLC0415

    text = "\\n".join(line.replace("\\", "\\\\") for line in lines)
    label: str = graphviz.nohtml(text)
    return label
