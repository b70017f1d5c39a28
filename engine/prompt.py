"""The API-format prompt as typed data.

``{"<id>": {"class_type": ..., "inputs": {name: literal | ["<src id>", slot]}}}``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Link:
    """An input fed by output ``slot`` of node ``node``."""

    node: str
    slot: int

    def wire(self) -> list[Any]:
        return [self.node, self.slot]


@dataclass
class NodeCall:
    id: str
    class_type: str
    inputs: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    #: For nodes created by expansion: the node that created them (shown in the
    #: editor instead of the hidden inner node).
    parent: str | None = None

    def links(self) -> dict[str, Link]:
        return {name: value for name, value in self.inputs.items() if isinstance(value, Link)}


def is_link(value: Any) -> bool:
    return (
        type(value) in (list, tuple)
        and len(value) == 2
        and isinstance(value[0], (str, int))
        and not isinstance(value[0], bool)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
    )


def parse_input(value: Any) -> Any:
    """A raw input value: a :class:`Link`, or the literal (``__value__`` unwrapped
    into a :class:`ListLiteral`)."""
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool:
        return value  # the common case, decided without the ABC machinery
    if is_link(value):
        return Link(str(value[0]), int(value[1]))
    if isinstance(value, dict) and "__value__" in value:
        return ListLiteral(value["__value__"])
    return value


@dataclass(frozen=True)
class ListLiteral:
    """A constant that is a list (``{"__value__": [...]}``) rather than a link."""

    value: Any


def parse_node(node_id: str, raw: Mapping[str, Any]) -> NodeCall:
    meta = raw.get("_meta")
    title = meta.get("title") if isinstance(meta, dict) else None
    inputs = raw.get("inputs") or {}
    return NodeCall(
        id=str(node_id),
        class_type=str(raw["class_type"]),
        inputs={str(name): parse_input(value) for name, value in inputs.items()},
        title=title if isinstance(title, str) else None,
    )


def unparse(calls: Mapping[str, NodeCall]) -> dict[str, Any]:
    """Back to the wire format (for history, PNG metadata, PROMPT hidden input)."""
    out: dict[str, Any] = {}
    for node_id, call in calls.items():
        inputs = {}
        for name, value in call.inputs.items():
            if isinstance(value, Link):
                inputs[name] = value.wire()
            elif isinstance(value, ListLiteral):
                inputs[name] = {"__value__": value.value}
            else:
                inputs[name] = value
        out[node_id] = {"class_type": call.class_type, "inputs": inputs}
        if call.title is not None:
            out[node_id]["_meta"] = {"title": call.title}
    return out
