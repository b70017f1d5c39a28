"""The API-format prompt as typed data.

``{"<id>": {"class_type": ..., "inputs": {name: literal | ["<src id>", slot]}}}``
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple


class Link(NamedTuple):
    """An input fed by output ``slot`` of node ``node``.  A NamedTuple, not a
    frozen dataclass: prompts hold thousands and those are slow to build."""

    node: str
    slot: int

    def wire(self) -> list[Any]:
        return [self.node, self.slot]


@dataclass(slots=True)
class NodeCall:
    id: str
    class_type: str
    inputs: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    #: For nodes created by expansion: the node that created them (shown in the
    #: editor instead of the hidden inner node).
    parent: str | None = None
    #: An expansion node's ``override_display_id``: the node it is shown as
    #: (a loop's copy of a body node is shown as that body node).
    display: str | None = None

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


class DynamicPrompt:
    """ComfyUI's live view of the running prompt (the hidden ``DYNPROMPT`` input):
    the prompt's nodes plus those added by expansion, in the wire format.

    Flow-control packs read it to copy the body of a loop into a new expansion.
    """

    def __init__(self, calls: Mapping[str, NodeCall], original: Mapping[str, Any]):
        self._calls = calls
        self._original = original

    def has_node(self, node_id: str) -> bool:
        return str(node_id) in self._calls

    def get_node(self, node_id: str) -> dict[str, Any]:
        call = self._calls.get(str(node_id))
        if call is None:
            raise KeyError(f"node '{node_id}' is not in the prompt")
        return unparse({call.id: call})[call.id]

    def get_real_node_id(self, node_id: str) -> str:
        """The prompt node an expansion node descends from (ComfyUI walks the
        ephemeral parents up to the submitted prompt)."""
        return real_node_id(self._calls, str(node_id))

    def get_parent_node_id(self, node_id: str) -> str | None:
        call = self._calls.get(str(node_id))
        return None if call is None else call.parent

    def get_display_node_id(self, node_id: str) -> str:
        return display_node_id(self._calls, str(node_id))

    def all_node_ids(self) -> set[str]:
        return set(self._calls)

    def get_original_prompt(self) -> Mapping[str, Any]:
        return self._original


def real_node_id(calls: Mapping[str, NodeCall], node_id: str) -> str:
    call = calls.get(node_id)
    while call is not None and call.parent is not None:
        node_id = call.parent
        call = calls.get(node_id)
    return node_id


def display_node_id(calls: Mapping[str, NodeCall], node_id: str) -> str:
    """ComfyUI's rule: an expansion node is shown as its ``override_display_id``
    or else its parent, repeatedly, until a node of the submitted prompt."""
    seen = set()
    call = calls.get(node_id)
    while call is not None and call.parent is not None and node_id not in seen:
        seen.add(node_id)
        node_id = call.display if call.display is not None else call.parent
        call = calls.get(node_id)
    return node_id
