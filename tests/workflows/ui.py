"""Reading and adjusting UI-format workflows in tests, by node type or title and widget name."""

from __future__ import annotations

import copy
from typing import Any, Mapping

from engine.schema import NodeSchema
from engine.workflow_format import NOTE_TYPES, has_control_widget, widget_inputs


def nodes_of(workflow: Mapping[str, Any], match: str) -> list[dict[str, Any]]:
    """The nodes whose type or title is ``match``."""
    return [n for n in workflow["nodes"] if match in (n["type"], n.get("title"))]


def node(workflow: Mapping[str, Any], match: str) -> dict[str, Any]:
    found = nodes_of(workflow, match)
    assert len(found) == 1, f"expected one node '{match}', found {len(found)}"
    return found[0]


def widget_index(schema: NodeSchema, name: str) -> int:
    """Where a widget's value sits in ``widgets_values`` (control values take a slot too)."""
    index = 0
    for spec in widget_inputs(schema):
        if spec.name == name:
            return index
        index += 2 if has_control_widget(spec) else 1
    raise KeyError(f"{schema.class_type} has no widget {name!r}")


def widget(workflow: Mapping[str, Any], schemas, match: str, name: str) -> Any:
    found = node(workflow, match)
    return found["widgets_values"][widget_index(schemas(found["type"]), name)]


def with_widgets(workflow: Mapping[str, Any], schemas, changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """A copy of ``workflow`` with widget values changed: ``{type or title: {widget: value}}``,
    applied to every node that matches."""
    changed = copy.deepcopy(workflow)
    for match, values in changes.items():
        targets = nodes_of(changed, match)
        assert targets, f"no node '{match}' in the workflow"
        for target in targets:
            schema = schemas(target["type"])
            for name, value in values.items():
                target["widgets_values"][widget_index(schema, name)] = value
    return changed


def runnable_nodes(workflow: Mapping[str, Any]) -> dict[str, str]:
    """Node id → class type of every node that becomes part of the API prompt."""
    return {str(n["id"]): n["type"] for n in workflow["nodes"]
            if n["type"] not in NOTE_TYPES and n.get("mode", 0) == 0}
