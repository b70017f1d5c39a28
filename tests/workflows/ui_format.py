"""A workflow described as columns of nodes and links (:class:`Workflow`), turned into
ComfyUI's UI-format JSON by :func:`build`: ids, sockets and widget order from Loom's own
node schemas, positions and sizes by the editor's layout rules (web/lib/layout.js), and
:func:`dumps` writes it the way the shipped files read."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from typing import Any


# -- the editor's layout rules (web/lib/layout.js) -----------------------------------------

TITLE_H, SLOT_H, WIDGET_H, WIDGET_GAP, PAD, MIN_W, IMAGE_MIN_H = 30, 22, 24, 4, 8, 230, 200
#: A multiline text box fills its node's spare height and shows one line per TEXT_LINE_H;
#: its text is inset TEXT_INSET from the node's sides.  CHAR_W is a generous average glyph
#: width of the editor's 12 px font (DejaVu Sans, Chromium's Linux default, averages
#: ~6.2 px), so a note sized here shows in full whichever font the browser picks.
TEXT_LINE_H, TEXT_INSET, CHAR_W = 15, 2 * PAD + 8 + 16, 7
COLUMN_GAP, ROW_GAP, LEFT, TOP = 80, 40, 40, 80


@dataclass
class Node:
    """One node as the workflow describes it; ids, sockets and sizes are filled in."""

    key: str
    type: str
    widgets: dict[str, Any] = field(default_factory=dict)
    title: str | None = None
    width: int = 0
    extra_height: int = 0
    models: list[dict[str, str]] | None = None
    color: str | None = None
    bgcolor: str | None = None
    #: Widget inputs fed by a link instead (ComfyUI's "converted widget" sockets).
    linked_widgets: tuple[str, ...] = ()


@dataclass
class Workflow:
    file: str
    title: str
    note: str
    columns: list[list[Node]]
    #: (source node key, output name, target node key, input name)
    links: list[tuple[str, str, str, str]]
    note_width: int = 420


NOTE_COLORS = dict(color="#432", bgcolor="#653")


def wrapped_lines(text: str, width: int) -> int:
    """How many lines `text` wraps to in a text box on a node `width` wide, wrapping at
    spaces as the editor does (web/lib/text_wrap.js)."""
    per_line = (width - TEXT_INSET) // CHAR_W
    count = 0
    for paragraph in text.split("\n"):
        count += 1
        used = 0
        for word in paragraph.split(" "):
            if used and used + 1 + len(word) > per_line:
                count += 1
                used = len(word)
            else:
                used += (1 if used else 0) + len(word)
    return count


def note(text: str, width: int = 420) -> Node:
    # One spare line of room: the first line sits half a line below the box top.
    box_h = (wrapped_lines(text, width) + 1) * TEXT_LINE_H
    return Node("note", "Note", {"text": text}, title="About this workflow", width=width,
                extra_height=max(0, box_h - 3 * WIDGET_H), **NOTE_COLORS)


# -- building the UI-format JSON ---------------------------------------------------------------


def _registry():
    from engine.registry import Registry
    from nodes import builtin_nodes
    from nodes.runtime import LoomEnv

    registry = Registry(env=LoomEnv.at(tempfile.mkdtemp(prefix="loom-workflows-")))
    registry.add_all(builtin_nodes(), "builtin")
    return registry


def _widget_values(node: Node, schema) -> list[Any]:
    from engine.schema import MISSING
    from engine.workflow_format import has_control_widget, widget_inputs

    if schema is None:  # a Note
        return [node.widgets["text"]]
    specs = widget_inputs(schema)
    known = {s.name for s in specs} | {"control_after_generate"}
    unknown = set(node.widgets) - known
    if unknown:
        raise ValueError(f"{node.key}: {node.type} has no widget {sorted(unknown)}")
    values: list[Any] = []
    for spec in specs:
        if spec.name in node.widgets:
            values.append(node.widgets[spec.name])
        elif spec.default is not MISSING:
            values.append(spec.default)
        else:
            raise ValueError(f"{node.key}: {node.type}.{spec.name} has no default; give a value")
        if has_control_widget(spec):
            values.append(node.widgets.get("control_after_generate", "fixed"))
    return values


def _body_size(node: Node, schema, sockets_in: int, sockets_out: int) -> list[int]:
    from engine.workflow_format import has_control_widget, widget_inputs

    rows = max(sockets_in, sockets_out)
    height = rows * SLOT_H + PAD
    specs = [] if schema is None else [s for s in widget_inputs(schema) if s.name not in node.linked_widgets]
    if schema is None:
        height += WIDGET_H * 3 + WIDGET_GAP
    for spec in specs:
        tall = spec.type == "STRING" and spec.multiline
        height += (WIDGET_H * 3 if tall else WIDGET_H) + WIDGET_GAP
        if has_control_widget(spec):
            height += WIDGET_H + WIDGET_GAP
        if spec.extra.get("image_upload"):
            height += WIDGET_H + WIDGET_GAP
    if schema is not None and schema.output_node and "Image" in node.type:
        height += IMAGE_MIN_H
    return [max(MIN_W, node.width), max(height + PAD, SLOT_H + PAD) + node.extra_height]


def build(workflow: Workflow, registry) -> dict[str, Any]:
    # The note, whose text starts with the title, heads the first column.
    columns = [[note(workflow.note, workflow.note_width), *workflow.columns[0]], *workflow.columns[1:]]
    all_nodes = [n for column in columns for n in column]
    ids = {n.key: i + 1 for i, n in enumerate(all_nodes)}
    if len(ids) != len(all_nodes):
        raise ValueError(f"{workflow.file}: two nodes share a key")
    schemas = {n.key: (None if n.type == "Note" else registry.schema(n.type)) for n in all_nodes}
    for n in all_nodes:
        if n.type != "Note" and schemas[n.key] is None:
            raise ValueError(f"{workflow.file}: Loom has no node {n.type}")

    def sockets_in(n: Node):
        schema = schemas[n.key]
        if schema is None:
            return []
        slots = [{"name": s.name, "type": s.type, "link": None}
                 for s in schema.inputs if s.section != "hidden" and not s.is_widget]
        for name in n.linked_widgets:
            spec = next(s for s in schema.inputs if s.name == name)
            slots.append({"name": name, "type": spec.type, "widget": {"name": name}, "link": None})
        return slots

    def sockets_out(n: Node):
        schema = schemas[n.key]
        if schema is None:
            return []
        return [{"name": o.name, "type": o.type, "links": [], "slot_index": i} for i, o in enumerate(schema.outputs)]

    inputs = {n.key: sockets_in(n) for n in all_nodes}
    outputs = {n.key: sockets_out(n) for n in all_nodes}
    links = []
    for link_id, (src, out_name, dst, in_name) in enumerate(workflow.links, start=1):
        out_slots, in_slots = outputs[src], inputs[dst]
        out_index = next((i for i, o in enumerate(out_slots) if o["name"] == out_name), None)
        in_index = next((i for i, s in enumerate(in_slots) if s["name"] == in_name), None)
        if out_index is None or in_index is None:
            raise ValueError(f"{workflow.file}: no socket for link {src}.{out_name} -> {dst}.{in_name}")
        if in_slots[in_index]["link"] is not None:
            raise ValueError(f"{workflow.file}: {dst}.{in_name} is linked twice")
        link_type = out_slots[out_index]["type"]
        in_slots[in_index]["link"] = link_id
        out_slots[out_index]["links"].append(link_id)
        links.append([link_id, ids[src], out_index, ids[dst], in_index, link_type])
    for n in all_nodes:
        schema = schemas[n.key]
        if schema is None:
            continue
        required = [s.name for s in schema.inputs if s.section == "required" and not s.is_widget]
        unlinked = [s["name"] for s in inputs[n.key] if s["link"] is None and s["name"] in required]
        if unlinked:
            raise ValueError(f"{workflow.file}: {n.key} ({n.type}) has unlinked inputs {unlinked}")

    order = _execution_order(all_nodes, ids, links)
    nodes_json = []
    x = LEFT
    for column in columns:
        y = TOP
        width = 0
        for n in column:
            size = _body_size(n, schemas[n.key], len(inputs[n.key]), len(outputs[n.key]))
            entry: dict[str, Any] = {"id": ids[n.key], "type": n.type, "pos": [x, y], "size": size, "flags": {},
                                     "order": order[n.key], "mode": 0, "inputs": inputs[n.key],
                                     "outputs": outputs[n.key]}
            if n.title:
                entry["title"] = n.title
            properties: dict[str, Any] = {"Node name for S&R": n.type}
            if n.type == "Note":
                properties = {"text": ""}
            if n.models:
                properties["models"] = [dict(m) for m in n.models]
            entry["properties"] = properties
            entry["widgets_values"] = _widget_values(n, schemas[n.key])
            if n.color:
                entry["color"], entry["bgcolor"] = n.color, n.bgcolor
            nodes_json.append(entry)
            y += size[1] + TITLE_H + ROW_GAP
            width = max(width, size[0])
        x += width + COLUMN_GAP
    nodes_json.sort(key=lambda e: e["id"])
    return {
        "last_node_id": max(ids.values()),
        "last_link_id": len(links),
        "nodes": nodes_json,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {"title": workflow.title},
        "version": 0.4,
    }


def _execution_order(nodes: list[Node], ids: dict[str, int], links: list[list]) -> dict[str, int]:
    by_id = {ids[n.key]: n.key for n in nodes}
    parents: dict[int, set[int]] = {i: set() for i in by_id}
    for _, src, _, dst, _, _ in links:
        parents[dst].add(src)
    order: dict[str, int] = {}
    done: set[int] = set()
    while len(done) < len(by_id):
        ready = sorted(i for i in by_id if i not in done and parents[i] <= done)
        if not ready:
            raise ValueError("the links form a cycle")
        for i in ready:
            order[by_id[i]] = len(order)
            done.add(i)
    return order


def dumps(value: Any, indent: str = "") -> str:
    """JSON indented like ComfyUI's files, but with lists of plain values (positions,
    sizes, links, widget values) kept on one line, so a file reads node by node."""
    inner = indent + "  "
    if isinstance(value, dict) and value:
        items = [f"{inner}{json.dumps(k)}: {dumps(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(inner + dumps(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value, ensure_ascii=False)
