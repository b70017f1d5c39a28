"""ComfyUI's V1 node classes (``INPUT_TYPES``, ``RETURN_TYPES``, ``FUNCTION``...)
compiled to Loom's one schema, unchanged."""

from __future__ import annotations

import inspect
from typing import Any, Mapping

from .node import CallResult, NodeContext, NodeDefinition, ValidationHook, call_with_accepted
from .schema import MISSING, InputSpec, NodeSchema, OutputSpec

#: Options Loom interprets; everything else is passed through to clients.
_KNOWN_OPTIONS = {
    "default", "min", "max", "step", "round", "multiline", "tooltip", "forceInput",
    "control_after_generate", "lazy", "rawLink", "options",
}


def input_spec(name: str, declared: Any, section: str) -> InputSpec:
    """One input as declared in ``INPUT_TYPES`` — which is also its ``/object_info`` wire form."""
    if section == "hidden":
        return InputSpec(name=name, type=str(declared), section="hidden")
    if isinstance(declared, str):
        declared = (declared,)
    if not isinstance(declared, (tuple, list)) or not declared:
        raise TypeError(f"input '{name}' must be declared as (TYPE, {{options}}), got {declared!r}")
    head = declared[0]
    options: Mapping[str, Any] = declared[1] if len(declared) > 1 and isinstance(declared[1], Mapping) else {}
    choices = None
    if isinstance(head, (list, tuple)):
        type_name, choices = "COMBO", tuple(head)
    else:
        type_name = str(head)
        if type_name == "COMBO":
            choices = tuple(options.get("options", ()))
    return InputSpec(
        name=name,
        type=type_name,
        section=section,  # type: ignore[arg-type]
        default=options.get("default", MISSING),
        min=options.get("min"),
        max=options.get("max"),
        step=options.get("step"),
        round=options.get("round"),
        multiline=bool(options.get("multiline", False)),
        tooltip=options.get("tooltip"),
        force_input=bool(options.get("forceInput", False)),
        choices=choices,
        control_after_generate=bool(options.get("control_after_generate", False)),
        lazy=bool(options.get("lazy", False)),
        raw_link=bool(options.get("rawLink", False)),
        extra={k: v for k, v in options.items() if k not in _KNOWN_OPTIONS},
    )


def _validation_hook(cls: type) -> ValidationHook | None:
    fn = getattr(cls, "VALIDATE_INPUTS", None)
    if fn is None:
        return None
    params = inspect.signature(fn).parameters
    names = [p for p in params if p not in ("self", "s", "cls", "input_types")]
    return ValidationHook(
        takes=frozenset(names),
        takes_all=any(p.kind is p.VAR_KEYWORD for p in params.values()),
        wants_input_types="input_types" in params,
        call=fn,
    )


class V1Node(NodeDefinition):
    """A ComfyUI V1 class behind Loom's node interface."""

    def __init__(self, cls: type, class_type: str, display_name: str | None = None, module: str = "custom_nodes"):
        for attr in ("INPUT_TYPES", "RETURN_TYPES", "FUNCTION"):
            if not hasattr(cls, attr):
                raise TypeError(f"node class '{class_type}' has no {attr}")
        self.cls = cls
        self.class_type = class_type
        self.display_name = display_name or class_type
        self.module = module
        self._validation = _validation_hook(cls)
        self.schema()  # surface declaration errors when the plug-in loads

    def schema(self, env: Any = None) -> NodeSchema:
        cls = self.cls
        declared = cls.INPUT_TYPES() or {}
        inputs = [
            input_spec(name, spec, section)
            for section in ("required", "optional", "hidden")
            for name, spec in (declared.get(section) or {}).items()
        ]
        return_types = tuple(cls.RETURN_TYPES or ())
        names = tuple(getattr(cls, "RETURN_NAMES", None) or ())
        is_list = tuple(getattr(cls, "OUTPUT_IS_LIST", None) or ())
        tooltips = tuple(getattr(cls, "OUTPUT_TOOLTIPS", None) or ())
        outputs = tuple(
            OutputSpec(
                type="COMBO" if isinstance(t, (list, tuple)) else str(t),
                name=names[i] if i < len(names) else ("COMBO" if isinstance(t, (list, tuple)) else str(t)),
                is_list=bool(is_list[i]) if i < len(is_list) else False,
                tooltip=tooltips[i] if i < len(tooltips) else None,
            )
            for i, t in enumerate(return_types)
        )
        return NodeSchema(
            class_type=self.class_type,
            display_name=self.display_name,
            category=getattr(cls, "CATEGORY", "sd"),
            description=getattr(cls, "DESCRIPTION", "") or "",
            inputs=tuple(inputs),
            outputs=outputs,
            output_node=bool(getattr(cls, "OUTPUT_NODE", False)),
            deprecated=bool(getattr(cls, "DEPRECATED", False)),
            experimental=bool(getattr(cls, "EXPERIMENTAL", False)),
            input_is_list=bool(getattr(cls, "INPUT_IS_LIST", False)),
            not_idempotent=bool(getattr(cls, "NOT_IDEMPOTENT", False)),
            python_module=self.module,
        )

    @property
    def source_module(self) -> str:
        return self.module

    def new_instance(self) -> Any:
        return self.cls()

    def call(self, instance: Any, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        return getattr(instance, self.cls.FUNCTION)(**inputs)

    def fingerprint(self, instance: Any, inputs: dict[str, Any], env: Any = None) -> Any:
        fn = getattr(self.cls, "IS_CHANGED", None)
        return None if fn is None else call_with_accepted(fn, inputs)

    @property
    def has_fingerprint(self) -> bool:
        return hasattr(self.cls, "IS_CHANGED")

    def lazy_inputs_needed(self, instance: Any, inputs: dict[str, Any]) -> Any:
        fn = getattr(instance, "check_lazy_status", None)
        if fn is None:
            return []
        return fn(**inputs)  # a list, or a coroutine the executor awaits

    @property
    def validation(self) -> ValidationHook | None:
        return self._validation

    def normalize(self, raw: Any, output_count: int) -> CallResult:
        if isinstance(raw, Mapping) and ({"ui", "result", "expand"} & raw.keys()):
            result = raw.get("result")
            return CallResult(tuple(result) if result is not None else (), raw.get("ui"), raw.get("expand"))
        if raw is None:
            return CallResult(())
        if isinstance(raw, (tuple, list)):
            return CallResult(tuple(raw))
        # V3-style objects and plain single values: be lenient like ComfyUI.
        return CallResult((raw,))


def compile_v1(cls: type, class_type: str, display_name: str | None = None, module: str = "custom_nodes") -> V1Node:
    return V1Node(cls, class_type, display_name, module)
