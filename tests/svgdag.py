"""Read back the graph drawn in a ``repx viz`` SVG (graphviz output), for tests.

Nodes are the ``<title>`` of ``g.node`` groups, clusters those of ``g.cluster`` groups;
edges carry the ids repx gives them: ``data:<source>-><target>`` or ``run:<source>-><target>``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

SVG = "{http://www.w3.org/2000/svg}"


@dataclass(frozen=True)
class SvgGraph:
    """Nodes, edges, clusters and node fill colours found in an SVG."""

    nodes: set[str]
    data_edges: set[tuple[str, str]]
    run_edges: set[tuple[str, str]]
    clusters: set[str]
    fills: dict[str, str]
    texts: dict[str, list[str]]


def parse_svg(data: bytes | str) -> SvgGraph:
    """Parse graphviz SVG output (raises on malformed XML)."""
    root = ET.fromstring(data)
    nodes: set[str] = set()
    data_edges: set[tuple[str, str]] = set()
    run_edges: set[tuple[str, str]] = set()
    clusters: set[str] = set()
    fills: dict[str, str] = {}
    texts: dict[str, list[str]] = {}
    for group in root.iter(f"{SVG}g"):
        kind = group.get("class")
        title = group.findtext(f"{SVG}title") or ""
        if kind == "node":
            nodes.add(title)
            shape = next(
                (e for e in group.iter() if e.tag in (f"{SVG}path", f"{SVG}polygon")), None
            )
            fills[title] = shape.get("fill", "") if shape is not None else ""
            texts[title] = [t.text or "" for t in group.iter(f"{SVG}text")]
        elif kind == "cluster":
            clusters.add(title)
        elif kind == "edge":
            edge_id = group.get("id", "")
            prefix, _, rest = edge_id.partition(":")
            source, _, target = rest.partition("->")
            {"data": data_edges, "run": run_edges}[prefix].add((source, target))
            texts[edge_id] = [t.text or "" for t in group.iter(f"{SVG}text")]
    return SvgGraph(nodes, data_edges, run_edges, clusters, fills, texts)
