"""ComfyUI V3's dynamic input kinds (``io.MultiType``, ``io.MatchType``,
``io.Autogrow``, ``io.DynamicCombo``), declared the way packs write them.

Loom's schema is static, so each compiles to plain inputs
(:func:`flatten_input`): a multi-type socket to a comma-joined type, a
match-type socket to its allowed types, an autogrow to its numbered inputs
``<id>.<name>`` (the first ``min`` required), a dynamic combo to the combo plus
every option's inputs as optional ``<id>.<input>``.  Before ``execute`` runs,
:func:`regroup` gives the node what ComfyUI gives it: a dict per autogrow or
dynamic-combo input.
"""

from __future__ import annotations

import copy
from typing import Any, Iterable

from comfy_api.latest.io import AnyType, ComfyTypeI, ComfyTypeIO, Input, Output, WidgetInput, comfytype


def _io_type(kind: Any) -> str:
    kind = kind if isinstance(kind, type) else type(kind)
    return str(getattr(kind, "io_type", "*"))


def _joined(kinds: Iterable[Any]) -> str:
    names = list(dict.fromkeys(_io_type(k) for k in kinds))
    return "*" if not names or "*" in names else ",".join(names)


@comfytype("COMFY_MULTITYPED_V3")
class MultiType(ComfyTypeI):
    class Input(Input):
        """A socket accepting several types; ``id`` may be an input whose widget it keeps."""

        def __init__(self, id: Any, types: list[Any], display_name: str | None = None, optional: bool = False,
                     tooltip: str | None = None, lazy: bool | None = None, extra_dict: dict | None = None,
                     raw_link: bool | None = None, **more: Any):
            self.input_override = None
            if isinstance(id, Input):
                self.input_override = copy.copy(id)
                optional = optional or bool(id.optional)
                tooltip = tooltip if tooltip is not None else id.tooltip
                display_name = display_name if display_name is not None else id.display_name
                id = id.id
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **more)
            self.types = list(types)

        def get_io_type(self) -> str:
            kinds = ([self.input_override.get_io_type()] if self.input_override is not None else [])
            names = list(dict.fromkeys(kinds + [_io_type(k) for k in self.types]))
            return "*" if "*" in names else ",".join(names)

        def as_dict(self) -> dict[str, Any]:
            base = self.input_override.as_dict() if self.input_override is not None else {}
            return base | super().as_dict()


@comfytype("COMFY_MATCHTYPE_V3")
class MatchType(ComfyTypeIO):
    class Template:
        def __init__(self, template_id: str, allowed_types: Any = AnyType):
            self.template_id = template_id
            self.allowed_types = list(allowed_types) if isinstance(allowed_types, (list, tuple)) else [allowed_types]

        @property
        def io_type(self) -> str:
            return _joined(self.allowed_types)

    class Input(Input):
        def __init__(self, id: str, template: "MatchType.Template", display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, raw_link: bool | None = None, **more: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, raw_link, **more)
            self.template = template

        def get_io_type(self) -> str:
            return self.template.io_type

    class Output(Output):
        def __init__(self, template: "MatchType.Template", id: str | None = None, display_name: str | None = None,
                     tooltip: str | None = None, is_output_list: bool = False, **more: Any):
            super().__init__(id, display_name or (None if id else "MATCHTYPE"), tooltip, is_output_list, **more)
            self.template = template

        @property
        def io_type(self) -> str:
            return self.template.io_type

        def get_io_type(self) -> str:
            return self.template.io_type


@comfytype("COMFY_AUTOGROW_V3")
class Autogrow(ComfyTypeI):
    class _Template:
        names: list[str] = []
        min = 1

        def __init__(self, input: Input):
            self.input = copy.copy(input)
            if isinstance(self.input, WidgetInput):
                self.input.force_input = True  # grown inputs are sockets

    class TemplatePrefix(_Template):
        def __init__(self, input: Input, prefix: str, min: int = 1, max: int = 10):
            super().__init__(input)
            if not (0 <= min and 1 <= max <= 100):
                raise ValueError(f"Autogrow.TemplatePrefix: need 0 <= min and 1 <= max <= 100, got {min}, {max}")
            self.prefix, self.min, self.max = prefix, min, max
            self.names = [f"{prefix}{i}" for i in range(max)]

    class TemplateNames(_Template):
        def __init__(self, input: Input, names: list[str], min: int = 1):
            super().__init__(input)
            self.names, self.min = list(names)[:100], min

    class Input(Input):
        def __init__(self, id: str, template: "Autogrow._Template", display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, **more: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, **more)
            self.template = template


@comfytype("COMFY_DYNAMICCOMBO_V3")
class DynamicCombo(ComfyTypeI):
    class Option:
        def __init__(self, key: str, inputs: list[Input]):
            self.key = key
            self.inputs = list(inputs)

    class Input(Input):
        def __init__(self, id: str, options: list["DynamicCombo.Option"], display_name: str | None = None,
                     optional: bool = False, tooltip: str | None = None, lazy: bool | None = None,
                     extra_dict: dict | None = None, **more: Any):
            super().__init__(id, display_name, optional, tooltip, lazy, extra_dict, **more)
            self.options = list(options)


def flatten_input(declared: Input) -> list[tuple[Input, str, bool]]:
    """``(input, name, optional)`` for each plain input a declared one stands for."""
    if isinstance(declared, Autogrow.Input):
        template = declared.template
        required = not (declared.optional or template.input.optional)
        return [(template.input, f"{declared.id}.{name}", not (required and index < template.min))
                for index, name in enumerate(template.names)]
    if isinstance(declared, DynamicCombo.Input):
        from comfy_api.latest.io import Combo

        combo = Combo.Input(declared.id, options=[o.key for o in declared.options],
                            display_name=declared.display_name, optional=declared.optional,
                            tooltip=declared.tooltip, default=declared.options[0].key if declared.options else None)
        flat = [(combo, declared.id, bool(declared.optional))]
        seen: set[str] = set()
        for option in declared.options:
            for inner in option.inputs:
                for item, name, _ in flatten_input(inner):
                    full = f"{declared.id}.{name}"
                    if full not in seen:  # options sharing an input share one socket
                        seen.add(full)
                        flat.append((item, full, True))  # only the chosen option's inputs are needed
        return flat
    return [(declared, declared.id, bool(declared.optional))]


def regroup(declared_inputs: Iterable[Input], values: dict[str, Any]) -> dict[str, Any]:
    """The inputs as ComfyUI hands them to ``execute``: ``{id: {name: value}}`` for
    an autogrow, ``{id: {id: key, input: value...}}`` for a dynamic combo."""
    values = dict(values)
    for declared in declared_inputs:
        if isinstance(declared, Autogrow.Input):
            prefix = f"{declared.id}."
            grown = {name: values.pop(prefix + name) for name in declared.template.names if prefix + name in values}
            values[declared.id] = grown
        elif isinstance(declared, DynamicCombo.Input):
            key = values.get(declared.id)
            chosen = next((o for o in declared.options if o.key == key), None)
            prefix = f"{declared.id}."
            group: dict[str, Any] = {declared.id: key}
            if chosen is not None:
                inner = regroup(chosen.inputs, {k[len(prefix):]: v for k, v in values.items() if k.startswith(prefix)})
                names = {i.id for i in chosen.inputs}
                group.update({k: v for k, v in inner.items() if k in names})
            for name in [k for k in values if k.startswith(prefix)]:
                values.pop(name)
            values[declared.id] = group
    return values


def is_dynamic(declared: Input) -> bool:
    return isinstance(declared, (Autogrow.Input, DynamicCombo.Input))
