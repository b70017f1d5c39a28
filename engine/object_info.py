"""``/object_info``: ComfyUI's description of every node, generated from the schema."""

from __future__ import annotations

from typing import Any

from .registry import Registry
from .schema import NodeSchema


def node_info(schema: NodeSchema) -> dict[str, Any]:
    sections: dict[str, dict[str, Any]] = {"required": {}}
    for spec in schema.inputs:
        sections.setdefault(spec.section, {})[spec.name] = spec.wire_format()
    info: dict[str, Any] = {
        "input": sections,
        "input_order": {
            section: [spec.name for spec in schema.inputs if spec.section == section]
            for section in sections
        },
        "output": [o.type for o in schema.outputs],
        "output_is_list": [o.is_list for o in schema.outputs],
        "output_name": [o.name for o in schema.outputs],
        "name": schema.class_type,
        "display_name": schema.display_name,
        "description": schema.description,
        "python_module": schema.python_module,
        "category": schema.category,
        "output_node": schema.output_node,
    }
    tooltips = [o.tooltip for o in schema.outputs]
    if any(tooltips):
        info["output_tooltips"] = tooltips
    if schema.deprecated:
        info["deprecated"] = True
    if schema.experimental:
        info["experimental"] = True
    return info


def object_info(registry: Registry) -> dict[str, Any]:
    return {definition.class_type: node_info(definition.schema(registry.env)) for definition in registry}


def object_info_for(registry: Registry, class_type: str) -> dict[str, Any] | None:
    schema = registry.schema(class_type)
    return None if schema is None else {class_type: node_info(schema)}
