"""``GraphBuilder``: build the sub-graph a node expands into.

A node returns ``{"result": (...), "expand": graph.finalize()}``.  As in
ComfyUI, node ids get the prefix ``{node id}.{call index}.{graph index}.``: the
running node and call come from the engine's current context (ComfyUI's
executor calls ``set_default_prefix`` before each call), the graph index counts
the builders made in that call.  The engine keeps those ids, so a later
expansion (the next iteration of a loop) can link to them.
"""

from __future__ import annotations

from typing import Any

from engine.node import ExecutionBlocker
from engine.prompt import is_link as _is_link


def is_link(obj: Any) -> bool:
    """Whether a value is a link ``[node_id, output_index]``."""
    return _is_link(obj)


class Node:
    def __init__(self, id: str, class_type: str, inputs: dict[str, Any]):
        self.id = id
        self.class_type = class_type
        self.inputs = inputs
        self.override_display_id: str | None = None

    def out(self, index: int) -> list[Any]:
        return [self.id, index]

    def set_input(self, key: str, value: Any) -> None:
        if value is None:
            self.inputs.pop(key, None)
        else:
            self.inputs[key] = value

    def get_input(self, key: str) -> Any:
        return self.inputs.get(key)

    def set_override_display_id(self, override_display_id: str) -> None:
        self.override_display_id = override_display_id

    def serialize(self) -> dict[str, Any]:
        serialized: dict[str, Any] = {"class_type": self.class_type, "inputs": self.inputs}
        if self.override_display_id is not None:
            serialized["override_display_id"] = self.override_display_id
        return serialized


class GraphBuilder:
    _default_prefix_root = ""
    _default_prefix_call_index = 0
    _default_prefix_graph_index = 0

    def __init__(self, prefix: str | None = None):
        self.prefix = self.alloc_prefix() if prefix is None else prefix
        self.nodes: dict[str, Node] = {}
        self.id_gen = 1

    @classmethod
    def set_default_prefix(cls, prefix_root: str, call_index: int, graph_index: int = 0) -> None:
        cls._default_prefix_root = prefix_root
        cls._default_prefix_call_index = call_index
        cls._default_prefix_graph_index = graph_index

    @classmethod
    def alloc_prefix(cls, root: str | None = None, call_index: int | None = None,
                     graph_index: int | None = None) -> str:
        cls._follow_running_node()
        root = cls._default_prefix_root if root is None else root
        call_index = cls._default_prefix_call_index if call_index is None else call_index
        if graph_index is None:
            graph_index = cls._default_prefix_graph_index
        cls._default_prefix_graph_index += 1
        return f"{root}.{call_index}.{graph_index}."

    _followed: tuple[str, int, int] | None = None

    @classmethod
    def _follow_running_node(cls) -> None:
        """Start a fresh default prefix for each node call, as ComfyUI's executor
        does with ``set_default_prefix(unique_id, call_index, 0)``."""
        from engine.node import current_context

        ctx = current_context.get()
        if ctx is None:
            return
        key = (ctx.node_id, ctx.call_index, id(ctx))
        if key != GraphBuilder._followed:
            GraphBuilder._followed = key
            cls.set_default_prefix(ctx.node_id, ctx.call_index, 0)

    def node(self, class_type: str, id: str | None = None, **kwargs: Any) -> Node:
        if id is None:
            id = str(self.id_gen)
            self.id_gen += 1
        id = self.prefix + str(id)
        if id in self.nodes:
            return self.nodes[id]
        node = Node(id, class_type, kwargs)
        self.nodes[id] = node
        return node

    def lookup_node(self, id: str) -> Node | None:
        return self.nodes.get(self.prefix + str(id))

    def finalize(self) -> dict[str, Any]:
        return {node_id: node.serialize() for node_id, node in self.nodes.items()}

    def replace_node_output(self, node_id: str, index: int, new_value: Any) -> None:
        node_id = self.prefix + str(node_id)
        for node in self.nodes.values():
            for key, value in list(node.inputs.items()):
                if is_link(value) and value[0] == node_id and value[1] == index:
                    node.set_input(key, new_value)

    def remove_node(self, id: str) -> None:
        self.nodes.pop(self.prefix + str(id), None)


__all__ = ["GraphBuilder", "Node", "is_link", "ExecutionBlocker"]
