"""ComfyUI's UI workflow format → the API prompt the engine runs.

The editor saves what the canvas shows (nodes with positional widget values,
links, reroutes, notes, subgraphs); the engine runs an API prompt
(``{id: {"class_type", "inputs"}}``).  This module is the one place that turns
the first into the second, for version 0.4 and version 1 files as ComfyUI
writes them.  ``web/lib/workflow_to_api.js`` is its twin for the browser; both
are tested on the fixtures in ``tests/workflow_format/fixtures``.

Pure: no torch, no I/O.  Schemas come from the caller (a registry, or
``/object_info`` through :func:`schemas_from_object_info`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Union

from .comfy_v1 import input_spec
from .schema import ANY, MISSING, InputSpec, NodeSchema, OutputSpec, types_compatible

log = logging.getLogger("loom.workflow")

SchemaSource = Union[Mapping[str, NodeSchema], Callable[[str], "NodeSchema | None"]]

#: Node modes as litegraph stores them.
MODE_MUTED = 2
MODE_BYPASSED = 4

#: Editor-only node types: they shape the canvas but never run.
NOTE_TYPES = frozenset({"Note", "MarkdownNote"})
REROUTE_TYPE = "Reroute"
PRIMITIVE_TYPE = "PrimitiveNode"

#: Type prefixes of ComfyUI's legacy group nodes (``extra.groupNodes``), before and
#: after frontend 1.2.63.  Loom does not expand them; subgraphs replaced them.
GROUP_NODE_PREFIXES = ("workflow>", "workflow/")

#: Ids of a subgraph's own input and output nodes inside its definition.
SUBGRAPH_INPUT_ID = -10
SUBGRAPH_OUTPUT_ID = -20

#: Values the seed control widget stores (old workflows stored a boolean).
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize", "increment-wrap"})

#: INT inputs that get a control widget even when their schema doesn't ask.
SEED_NAMES = frozenset({"seed", "noise_seed"})


class WorkflowConversionError(ValueError):
    """A UI workflow that cannot become an API prompt, naming the node at fault."""

    def __init__(self, message: str, node_id: str | None = None, class_type: str | None = None):
        super().__init__(message)
        self.node_id = node_id
        self.class_type = class_type


# --------------------------------------------------------------------------- schemas


def has_control_widget(spec: InputSpec) -> bool:
    """Whether the editor puts a control_after_generate widget after this input."""
    if spec.type == "INT":
        return bool(spec.control_after_generate) or spec.name in SEED_NAMES
    return spec.type == "COMBO" and bool(spec.control_after_generate)


def widget_inputs(schema: NodeSchema) -> list[InputSpec]:
    """The inputs drawn as widgets, in the order their values are stored."""
    return [s for s in schema.inputs if s.section != "hidden" and s.is_widget]


def schemas_from_object_info(info: Mapping[str, Any]) -> dict[str, NodeSchema]:
    """Rebuild :class:`NodeSchema` objects from a ComfyUI ``/object_info`` body."""
    return {class_type: _schema_from_entry(class_type, entry) for class_type, entry in info.items()}


def _schema_from_entry(class_type: str, entry: Mapping[str, Any]) -> NodeSchema:
    inputs: list[InputSpec] = []
    sections = entry.get("input") or {}
    order = entry.get("input_order") or {}
    for section in ("required", "optional", "hidden"):
        specs = sections.get(section) or {}
        names = [n for n in order.get(section, []) if n in specs]
        names += [n for n in specs if n not in names]
        for name in names:
            inputs.append(input_spec(name, specs[name], section))
    types = list(entry.get("output") or [])
    names = list(entry.get("output_name") or types)
    is_list = list(entry.get("output_is_list") or [False] * len(types))
    outputs = tuple(
        OutputSpec(
            type=_type_name(t),
            name=str(names[i]) if i < len(names) else _type_name(t),
            is_list=bool(is_list[i]) if i < len(is_list) else False,
        )
        for i, t in enumerate(types)
    )
    return NodeSchema(
        class_type=class_type,
        display_name=str(entry.get("display_name") or entry.get("name") or class_type),
        category=str(entry.get("category") or ""),
        description=str(entry.get("description") or ""),
        inputs=tuple(inputs),
        outputs=outputs,
        output_node=bool(entry.get("output_node")),
        python_module=str(entry.get("python_module") or "nodes"),
    )


def _type_name(wire_type: Any) -> str:
    return "COMBO" if isinstance(wire_type, list) else str(wire_type)


# --------------------------------------------------------------------------- parsing


def load_workflow_text(text: str) -> dict:
    """Parse workflow JSON as ComfyUI writes it (bare NaN / Infinity included)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowConversionError(f"the workflow is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WorkflowConversionError("the workflow must be a JSON object")
    return data


@dataclass(frozen=True)
class _Link:
    id: Any
    origin_id: Any
    origin_slot: int
    target_id: Any
    target_slot: int
    type: str


def _links_of(raw: Any) -> dict[str, _Link]:
    items: Iterable[Any] = raw.values() if isinstance(raw, dict) else (raw or [])
    links: dict[str, _Link] = {}
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) >= 5:
            link = _Link(item[0], item[1], int(item[2]), item[3], int(item[4]),
                         str(item[5]) if len(item) > 5 else ANY)
        elif isinstance(item, dict) and "id" in item:
            link = _Link(item["id"], item.get("origin_id"), int(item.get("origin_slot", 0)),
                         item.get("target_id"), int(item.get("target_slot", 0)),
                         str(item.get("type", ANY)))
        else:
            continue  # ComfyUI leaves nulls behind for deleted links
        links[str(link.id)] = link
    return links


def _collect_subgraphs(workflow: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found: dict[str, Mapping[str, Any]] = {}
    pending = [workflow]
    while pending:
        holder = pending.pop()
        for sub in ((holder.get("definitions") or {}).get("subgraphs") or []):
            if isinstance(sub, dict) and sub.get("id") is not None and str(sub["id"]) not in found:
                found[str(sub["id"])] = sub
                pending.append(sub)
    return found


# --------------------------------------------------------------------------- conversion


@dataclass
class _Scope:
    """One graph level: the root, or one subgraph instance's definition."""

    nodes: dict[str, Mapping[str, Any]]
    links: dict[str, _Link]
    path: tuple[str, ...] = ()
    parent: "_Scope | None" = None
    instance: Mapping[str, Any] | None = None

    def exec_id(self, node_id: Any) -> str:
        return ":".join((*self.path, str(node_id)))


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Source:
    node_id: str
    slot: int


class _Removed:
    """The input's source was muted away, so the input is dropped."""


_REMOVED = _Removed()


class _Converter:
    def __init__(self, workflow: Mapping[str, Any], schemas: SchemaSource):
        if not isinstance(workflow, Mapping):
            raise WorkflowConversionError("the workflow must be a JSON object")
        if "nodes" not in workflow:
            raise WorkflowConversionError(
                "this is not a UI workflow (it has no 'nodes' list); "
                "an API prompt can be queued as it is")
        self.lookup = schemas if callable(schemas) else schemas.get
        self.subgraphs = _collect_subgraphs(workflow)
        self.prompt: dict[str, dict[str, Any]] = {}

    def schema(self, node: Mapping[str, Any]) -> NodeSchema | None:
        return self.lookup(str(node.get("type")))

    # -- flattening

    def scope_of(self, nodes: Any, links: Any, **kw: Any) -> _Scope:
        by_id: dict[str, Mapping[str, Any]] = {}
        for node in nodes or []:
            if not isinstance(node, Mapping) or node.get("id") is None:
                raise WorkflowConversionError(f"a node has no id: {str(node)[:80]}")
            by_id[str(node["id"])] = node
        return _Scope(by_id, _links_of(links), **kw)

    def run(self, workflow: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        root = self.scope_of(workflow.get("nodes"), workflow.get("links"))
        self.check_types(root)
        self.emit_scope(root)
        # A link whose source vanished (muted) takes its input with it, as in ComfyUI.
        for entry in self.prompt.values():
            for name, value in list(entry["inputs"].items()):
                if isinstance(value, list) and len(value) == 2 and value[0] not in self.prompt:
                    del entry["inputs"][name]
        return self.prompt

    def check_types(self, scope: _Scope) -> None:
        unknown = [
            (nid, node.get("type")) for nid, node in scope.nodes.items()
            if not self.is_editor_only(node) and str(node.get("type")) not in self.subgraphs
            and self.schema(node) is None and node.get("mode") != MODE_MUTED
        ]
        groups = [(nid, t) for nid, t in unknown if str(t).startswith(GROUP_NODE_PREFIXES)]
        if groups:
            nid, ctype = groups[0]
            raise WorkflowConversionError(
                f"node #{scope.exec_id(nid)} '{ctype}' is a ComfyUI group node, which Loom does not run; "
                "ungroup it in ComfyUI (or convert it to a subgraph) and save the workflow again",
                node_id=scope.exec_id(nid), class_type=str(ctype))
        if unknown:
            names = ", ".join(f"#{scope.exec_id(nid)} '{t}'" for nid, t in unknown)
            nid, ctype = unknown[0]
            raise WorkflowConversionError(
                f"this server has no node type for {names}; install the node pack that provides "
                f"{'it' if len(unknown) == 1 else 'them'} or remove {'it' if len(unknown) == 1 else 'them'}",
                node_id=scope.exec_id(nid), class_type=str(ctype))

    @staticmethod
    def is_editor_only(node: Mapping[str, Any]) -> bool:
        return str(node.get("type")) in NOTE_TYPES | {REROUTE_TYPE, PRIMITIVE_TYPE}

    def child_scope(self, scope: _Scope, instance: Mapping[str, Any]) -> _Scope:
        definition = self.subgraphs[str(instance["type"])]
        path = (*scope.path, str(instance["id"]))
        if len(path) > 32:
            raise WorkflowConversionError(
                f"subgraph '{definition.get('name', instance['type'])}' contains itself",
                node_id=":".join(path[:-1]), class_type=str(instance.get("type")))
        child = self.scope_of(definition.get("nodes"), definition.get("links"),
                              path=path, parent=scope, instance=instance)
        self.check_types(child)
        return child

    def emit_scope(self, scope: _Scope) -> None:
        for nid, node in scope.nodes.items():
            mode = node.get("mode", 0)
            if mode in (MODE_MUTED, MODE_BYPASSED) or self.is_editor_only(node):
                continue
            if str(node.get("type")) in self.subgraphs:
                self.emit_scope(self.child_scope(scope, node))
                continue
            self.emit_node(scope, node)

    def emit_node(self, scope: _Scope, node: Mapping[str, Any]) -> None:
        schema = self.schema(node)
        assert schema is not None  # check_types ran
        exec_id = scope.exec_id(node["id"])
        inputs: dict[str, Any] = {}
        for name, value in self.widget_values(node, schema, exec_id).items():
            inputs[name] = _wire_value(value)
        for slot in node.get("inputs") or []:
            if not isinstance(slot, Mapping) or slot.get("link") is None:
                continue
            resolved = self.resolve_input(scope, node, slot, set())
            if resolved is None:
                continue
            name = str(slot.get("name"))
            if isinstance(resolved, _Literal):
                inputs[name] = _wire_value(resolved.value)
            elif isinstance(resolved, _Source):
                inputs[name] = [resolved.node_id, resolved.slot]
            else:
                inputs[name] = ["__removed__", 0]  # swept by run()
        self.prompt[exec_id] = {
            "inputs": inputs,
            "class_type": schema.class_type,
            "_meta": {"title": str(node.get("title") or schema.display_name)},
        }

    # -- widget values

    def widget_values(self, node: Mapping[str, Any], schema: NodeSchema, exec_id: str) -> dict[str, Any]:
        specs = widget_inputs(schema)
        named = node.get("widgets_values_named")
        raw = node.get("widgets_values")
        if isinstance(raw, Mapping):  # some packs store values by name
            named = {**raw, **(named or {})}
            raw = None
        values: dict[str, Any] = {}
        positional = list(raw) if isinstance(raw, list) else []
        if raw is not None and not isinstance(raw, list):
            raise WorkflowConversionError(
                f"node #{exec_id} ({schema.class_type}): widgets_values must be a list, not {type(raw).__name__}",
                node_id=exec_id, class_type=schema.class_type)
        positional = _drop_legacy_force_inputs(schema, positional)
        index = 0
        from_list: set[str] = set()
        for spec in specs:
            if index < len(positional):
                values[spec.name] = positional[index]
                from_list.add(spec.name)
                index += 1
                if has_control_widget(spec) and index < len(positional) and _is_control(positional[index]):
                    index += 1
            elif spec.default is not MISSING:
                values[spec.name] = spec.default
        if isinstance(named, Mapping):
            # ComfyUI reads the list; Loom's names only fill what the list lacks, or replace it
            # when it no longer lines up with the node's widgets (the node gained or lost some).
            list_fits = index == len(positional) and len(from_list) == len(specs)
            for spec in specs:
                if spec.name not in named:
                    continue
                if list_fits and spec.name in from_list:
                    if named[spec.name] != values[spec.name]:
                        log.warning(
                            "%s", f"node #{exec_id} ({schema.class_type}): widgets_values gives {spec.name} = "
                            f"{values[spec.name]!r} but widgets_values_named says {named[spec.name]!r}; "
                            "using widgets_values, as ComfyUI does")
                    continue
                values[spec.name] = named[spec.name]
        for spec in specs:
            value = values.get(spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                # NaN/Infinity sneak into files from broken widgets; the default is the sane reading.
                if spec.default is not MISSING:
                    values[spec.name] = spec.default
                else:
                    values.pop(spec.name)
        return values

    # -- link resolution (a link may pass through reroutes, bypassed nodes,
    #    primitives and subgraph boundaries before reaching a real output)

    def resolve_input(self, scope: _Scope, node: Mapping[str, Any], slot: Mapping[str, Any],
                      visited: set[str]) -> Any:
        link = scope.links.get(str(slot.get("link")))
        if link is None:
            return None  # dangling link id: ComfyUI drops these on load
        want = str(slot.get("type") or ANY)
        if str(link.origin_id) == str(SUBGRAPH_INPUT_ID) and scope.parent is not None:
            return self.resolve_subgraph_input(scope, link.origin_slot, visited)
        origin = scope.nodes.get(str(link.origin_id))
        if origin is None:
            return None
        return self.resolve_output(scope, origin, link.origin_slot, want, visited)

    def resolve_subgraph_input(self, scope: _Scope, index: int, visited: set[str]) -> Any:
        instance, parent = scope.instance, scope.parent
        assert instance is not None and parent is not None
        slots = list(instance.get("inputs") or [])
        if index >= len(slots):
            return None
        slot = slots[index]
        if slot.get("link") is not None:
            return self.resolve_input(parent, instance, slot, visited)
        # An unlinked subgraph input shows a widget on the instance; its value
        # sits in the instance's widgets_values (see instance_value_positions).
        raw = instance.get("widgets_values")
        if slot.get("widget") and isinstance(raw, list):
            definition = self.subgraphs[str(instance["type"])]
            positions = instance_value_positions(
                slots, raw, lambda i: self.promoted_target(definition, i))
            if index in positions:
                return _Literal(raw[positions[index]])
        return None

    def promoted_target(self, definition: Mapping[str, Any], index: int, depth: int = 0) -> InputSpec | None:
        """The inner widget that subgraph input ``index`` feeds (ComfyUI's promoted
        widget), following nested instances down to a real node; None if none."""
        if depth > 32:
            return None
        nodes = {str(n["id"]): n for n in definition.get("nodes") or []
                 if isinstance(n, Mapping) and n.get("id") is not None}
        for link in _links_of(definition.get("links")).values():
            if str(link.origin_id) != str(SUBGRAPH_INPUT_ID) or link.origin_slot != index:
                continue
            node = nodes.get(str(link.target_id))
            slots = [s for s in (node.get("inputs") or []) if isinstance(s, Mapping)] if node else []
            slot = next((s for s in slots if str(s.get("link")) == str(link.id)), None)
            if slot is None and 0 <= link.target_slot < len(slots):
                slot = slots[link.target_slot]
            if slot is None:
                continue
            inner = self.subgraphs.get(str(node.get("type")))
            if inner is not None:
                found = self.promoted_target(inner, slots.index(slot), depth + 1)
                if found is not None:
                    return found
                continue
            name = str((slot.get("widget") or {}).get("name") or slot.get("name"))
            schema = self.schema(node)
            spec = next((s for s in widget_inputs(schema) if s.name == name), None) if schema else None
            if spec is not None:
                return spec
        return None

    def resolve_output(self, scope: _Scope, node: Mapping[str, Any], slot: int, want: str,
                       visited: set[str]) -> Any:
        key = f"{scope.exec_id(node['id'])}[O]{slot}"
        if key in visited:
            raise WorkflowConversionError(
                f"node #{scope.exec_id(node['id'])} ({node.get('type')}) is part of a loop of "
                "reroutes or bypassed nodes", node_id=scope.exec_id(node["id"]),
                class_type=str(node.get("type")))
        visited.add(key)
        node_type = str(node.get("type"))
        mode = node.get("mode", 0)
        if mode == MODE_BYPASSED:
            index = self.bypass_input(node, slot, want)
            if index < 0:
                return None
            return self.resolve_input(scope, node, node["inputs"][index], visited)
        if node_type in self.subgraphs:
            if mode == MODE_MUTED:
                return _REMOVED
            return self.resolve_subgraph_output(scope, node, slot, want, visited)
        if node_type == REROUTE_TYPE:
            slots = node.get("inputs") or []
            return self.resolve_input(scope, node, slots[0], visited) if slots else None
        if node_type == PRIMITIVE_TYPE:
            raw = node.get("widgets_values")
            return _Literal(raw[0]) if isinstance(raw, list) and raw else None
        if node_type in NOTE_TYPES:
            return None
        if mode == MODE_MUTED:
            return _REMOVED
        return _Source(scope.exec_id(node["id"]), slot)

    def resolve_subgraph_output(self, scope: _Scope, instance: Mapping[str, Any], slot: int,
                                want: str, visited: set[str]) -> Any:
        child = self.child_scope(scope, instance)
        for link in child.links.values():
            if str(link.target_id) == str(SUBGRAPH_OUTPUT_ID) and link.target_slot == slot:
                if str(link.origin_id) == str(SUBGRAPH_INPUT_ID):
                    return self.resolve_subgraph_input(child, link.origin_slot, visited)
                origin = child.nodes.get(str(link.origin_id))
                return None if origin is None else self.resolve_output(child, origin, link.origin_slot, want, visited)
        return None

    def bypass_input(self, node: Mapping[str, Any], slot: int, want: str) -> int:
        """The input a bypassed node passes to output ``slot``: same index if the
        types fit, else the first input of exactly the wanted type, else the
        first compatible one (ComfyUI's order); -1 when none fits."""
        inputs = [s for s in (node.get("inputs") or [])]
        types = [str(s.get("type") or ANY) for s in inputs]
        outputs = node.get("outputs") or []
        out_type = str(outputs[slot].get("type") or ANY) if slot < len(outputs) else ANY
        if not inputs:
            return -1
        if want in (ANY, ""):
            return slot if slot < len(inputs) else 0
        if slot < len(inputs) and types_compatible(types[slot], out_type) and types_compatible(types[slot], want):
            return slot
        if want in types:
            return types.index(want)
        for i, t in enumerate(types):
            if types_compatible(t, out_type) and types_compatible(t, want):
                return i
        return -1


def instance_value_positions(slots: list[Any], raw: list[Any],
                             target_of: Callable[[int], "InputSpec | None"]) -> dict[int, int]:
    """Where each widget input of a subgraph instance finds its value in the
    instance's widgets_values: slot index → value index.  One value per slot
    that has a widget, in slot order; older files also kept a
    control_after_generate value after a seed, recognised by the count."""
    widget_slots = [i for i, s in enumerate(slots) if isinstance(s, Mapping) and s.get("widget")]
    legacy = len(raw) > len(widget_slots)
    positions: dict[int, int] = {}
    at = 0
    for index in widget_slots:
        if at < len(raw):
            positions[index] = at
        at += 1
        if legacy and at < len(raw) and _is_control(raw[at]):
            spec = target_of(index)
            if spec is not None and has_control_widget(spec):
                at += 1
    return positions


def _is_control(value: Any) -> bool:
    return isinstance(value, bool) or (isinstance(value, str) and value in CONTROL_VALUES)


def _drop_legacy_force_inputs(schema: NodeSchema, values: list[Any]) -> list[Any]:
    """Old files stored a value for forceInput inputs too; drop those slots when
    the count says the file is from then."""
    forced = [s for s in schema.inputs if s.section != "hidden" and s.force_input
              and s.type in {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}]
    if not forced:
        return values
    legacy = [s for s in schema.inputs if s.section != "hidden"
              and (s.is_widget or s in forced)]
    width = sum(2 if has_control_widget(s) else 1 for s in legacy)
    if width != len(values):
        return values
    kept: list[Any] = []
    index = 0
    for spec in legacy:
        step = 2 if has_control_widget(spec) else 1
        if spec not in forced:
            kept.extend(values[index:index + step])
        index += step
    return kept


def _wire_value(value: Any) -> Any:
    """Arrays mean links in the API format, so list values travel wrapped."""
    if isinstance(value, list):
        return {"__value__": value}
    return value


def ui_to_api(workflow: Mapping[str, Any], schemas: SchemaSource) -> dict[str, dict[str, Any]]:
    """Convert a UI-format workflow (version 0.4 or 1) to an API prompt.

    ``schemas`` maps class types to :class:`NodeSchema` (a mapping, or a
    function returning ``None`` for unknown types).  Raises
    :class:`WorkflowConversionError` naming the node when conversion fails.
    """
    return _Converter(workflow, schemas).run(workflow)


def is_ui_workflow(data: Any) -> bool:
    """UI workflows have a node list; API prompts are a mapping of node ids."""
    return isinstance(data, Mapping) and isinstance(data.get("nodes"), list)
