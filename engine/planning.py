"""Which nodes run, and in what order: ancestors of the outputs, topologically
sorted, cycles found.

Iterative throughout, so a 10,000-node chain is fine.  Plain dicts do the hot
path (Kahn's algorithm); networkx names the nodes of a cycle only when there is
one — its graph views cost more than the whole plan on a 1,000-node prompt.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Iterable, Mapping

import networkx as nx

from .prompt import NodeCall


def natural_key(node_id: str) -> tuple[int, int, str]:
    """Numeric ids in numeric order ("2" < "10"), then the rest by text."""
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


@dataclass(frozen=True)
class DependencyGraph:
    #: node id → the ids of the nodes its inputs link to (present in the prompt).
    sources: Mapping[str, tuple[str, ...]]

    @classmethod
    def of(cls, calls: Mapping[str, NodeCall]) -> "DependencyGraph":
        return cls({
            node_id: tuple(link.node for link in call.links().values() if link.node in calls)
            for node_id, call in calls.items()
        })

    def ancestors(self, targets: Iterable[str]) -> set[str]:
        """The targets and everything they depend on (one sweep for all)."""
        seen: set[str] = set()
        stack = [t for t in targets if t in self.sources]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            stack.extend(s for s in self.sources[node] if s not in seen)
        return seen

    def order(self, nodes: Iterable[str]) -> tuple[list[str], set[str]]:
        """A deterministic topological order of ``nodes``, and the nodes left out
        because they are on (or downstream of) a cycle."""
        nodes = set(nodes)
        pending = {n: 0 for n in nodes}
        consumers: dict[str, list[str]] = {n: [] for n in nodes}
        for node in nodes:
            for source in self.sources[node]:
                if source in nodes:
                    pending[node] += 1
                    consumers[source].append(node)
        heap = [(natural_key(n), n) for n, count in pending.items() if count == 0]
        heapq.heapify(heap)
        order = []
        while heap:
            _, node = heapq.heappop(heap)
            order.append(node)
            for consumer in consumers[node]:
                pending[consumer] -= 1
                if pending[consumer] == 0:
                    heapq.heappush(heap, (natural_key(consumer), consumer))
        return order, nodes.difference(order)

    def cycles(self, nodes: Iterable[str]) -> list[list[str]]:
        """The dependency cycles among ``nodes``, each as its sorted node ids."""
        graph = nx.DiGraph()
        nodes = set(nodes)
        graph.add_nodes_from(nodes)
        graph.add_edges_from((s, n) for n in nodes for s in self.sources[n] if s in nodes)
        found = [
            sorted(component, key=natural_key)
            for component in nx.strongly_connected_components(graph)
            if len(component) > 1 or any(graph.has_edge(n, n) for n in component)
        ]
        return sorted(found, key=lambda c: natural_key(c[0]))
