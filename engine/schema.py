"""The one node schema.

Both declaration styles (ComfyUI's V1 class interface and Loom's typed
``@node`` functions) compile to :class:`NodeSchema`.  ``/object_info``,
validation and the editor all read this object; nothing else describes a node.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

InputSection = Literal["required", "optional", "hidden"]

#: Types whose values are literals typed into widgets (the rest are sockets).
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})

#: The wildcard type: a socket of this type accepts and feeds any other.
ANY = "*"


class _Missing:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


@dataclass(frozen=True)
class InputSpec:
    """One input of a node, with the widget options ComfyUI clients understand."""

    name: str
    type: str
    section: InputSection = "required"
    default: Any = MISSING
    min: float | None = None
    max: float | None = None
    step: float | None = None
    round: float | bool | None = None
    multiline: bool = False
    tooltip: str | None = None
    force_input: bool = False
    choices: tuple[Any, ...] | None = None
    control_after_generate: bool = False
    lazy: bool = False
    raw_link: bool = False
    #: The model folder kind ("checkpoints", "loras"...) a combo lists, so a
    #: missing file can be reported with the folder it belongs in.
    model_kind: str | None = None
    #: Options Loom does not interpret but passes through to clients
    #: (``image_upload``, ``dynamicPrompts``, ``placeholder``...).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.force_input

    def options(self) -> dict[str, Any]:
        """The options dict in ComfyUI's ``/object_info`` shape."""
        opts: dict[str, Any] = dict(self.extra)
        if self.default is not MISSING:
            opts["default"] = self.default
        for key in ("min", "max", "step", "round", "tooltip"):
            value = getattr(self, key)
            if value is not None:
                opts[key] = value
        if self.multiline:
            opts["multiline"] = True
        if self.force_input:
            opts["forceInput"] = True
        if self.control_after_generate:
            opts["control_after_generate"] = True
        if self.lazy:
            opts["lazy"] = True
        if self.raw_link:
            opts["rawLink"] = True
        return opts

    def wire_format(self) -> list[Any] | str:
        """ComfyUI's ``[type, options]`` pair (``[choices, options]`` for combos)."""
        if self.section == "hidden":
            return self.type
        head: Any = list(self.choices) if self.type == "COMBO" and self.choices is not None else self.type
        opts = self.options()
        return [head, opts] if opts else [head]


@dataclass(frozen=True)
class OutputSpec:
    type: str
    name: str
    is_list: bool = False
    tooltip: str | None = None


@dataclass(frozen=True)
class NodeSchema:
    class_type: str
    display_name: str
    category: str = "loom"
    description: str = ""
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    output_node: bool = False
    deprecated: bool = False
    experimental: bool = False
    input_is_list: bool = False
    not_idempotent: bool = False
    python_module: str = "nodes"
    #: Bumped by a node's author when its behaviour changes, so old cache
    #: entries stop matching.
    version: str = "1"

    # Looked up for every node of every prompt: computed once per schema.
    @functools.cached_property
    def _by_name(self) -> dict[str, InputSpec]:
        found: dict[str, InputSpec] = {}
        for spec in self.inputs:
            found.setdefault(spec.name, spec)
        return found

    @functools.cached_property
    def _sections(self) -> dict[str, tuple[InputSpec, ...]]:
        sections: dict[str, list[InputSpec]] = {}
        for spec in self.inputs:
            sections.setdefault(spec.section, []).append(spec)
        return {name: tuple(specs) for name, specs in sections.items()}

    @functools.cached_property
    def has_lazy_inputs(self) -> bool:
        return any(spec.lazy for spec in self.inputs)

    def input(self, name: str) -> InputSpec | None:
        return self._by_name.get(name)

    def section(self, section: InputSection) -> tuple[InputSpec, ...]:
        return self._sections.get(section, ())


def types_compatible(output_type: str, input_type: str) -> bool:
    """Whether a link from an output of ``output_type`` may feed ``input_type``.

    ``*`` matches everything, and so does an empty type (the editor's LiteGraph
    reads an untyped slot as any); either side may be a comma-separated union, which
    matches when the two unions share a member.  COMBO inputs accept any
    STRING-ish or COMBO socket, as in ComfyUI, because primitives feed them.
    tests/fixtures/type_compatibility.json is the table this and the editor follow.
    """
    if output_type == input_type or output_type in (ANY, "") or input_type in (ANY, ""):
        return True
    outs = {part.strip() for part in str(output_type).split(",")}
    ins = {part.strip() for part in str(input_type).split(",")}
    if ANY in outs or ANY in ins:
        return True
    if "COMBO" in ins and outs & {"COMBO", "STRING"}:
        return True
    return bool(outs & ins)
