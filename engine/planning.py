"""Which nodes run, and in what order: ancestors of the outputs, topologically
sorted, cycles found.  Iterative throughout, so a 10,000-node chain is fine."""

from __future__ import annotations

from typing import Iterable, Mapping

import networkx as nx

from .prompt import NodeCall


def natural_key(node_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order ("2" < "10"), then the rest by text."""
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def dependency_graph(calls: Mapping[str, NodeCall]) -> nx.DiGraph:
    """Edges source → consumer for every link whose source is in the prompt."""
    graph = nx.DiGraph()
    graph.add_nodes_from(calls)
    for node_id, call in calls.items():
        for link in call.links().values():
            if link.node in calls:
                graph.add_edge(link.node, node_id)
    return graph


def ancestors_of(graph: nx.DiGraph, targets: Iterable[str]) -> set[str]:
    """The targets and everything they depend on (one sweep for all targets)."""
    seen: set[str] = set()
    stack = [t for t in targets if t in graph]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        stack.extend(pred for pred in graph.predecessors(node) if pred not in seen)
    return seen


def cycles(graph: nx.DiGraph, nodes: Iterable[str]) -> list[list[str]]:
    """The dependency cycles among ``nodes``, each as its sorted node ids."""
    sub = graph.subgraph(nodes)
    found = []
    for component in nx.strongly_connected_components(sub):
        if len(component) > 1 or any(sub.has_edge(n, n) for n in component):
            found.append(sorted(component, key=natural_key))
    return sorted(found, key=lambda c: natural_key(c[0]))


def topological_order(graph: nx.DiGraph, nodes: Iterable[str]) -> list[str]:
    """A deterministic order of an acyclic set of nodes."""
    return list(nx.lexicographical_topological_sort(graph.subgraph(nodes), key=natural_key))
