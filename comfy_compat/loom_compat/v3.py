"""ComfyUI V3 nodes (``comfy_api.latest.io.ComfyNode``) compiled to Loom's one schema.

``v3_adapter`` is the plug-in loader's adapter for packs that export
``comfy_entrypoint``; :class:`V3Node` is the compiled form of each node.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from types import ModuleType
from typing import Any, Coroutine, Mapping

from engine.node import CallResult, ExecutionBlocker, NodeContext, NodeDefinition, ValidationHook
from engine.schema import MISSING, InputSpec, NodeSchema, OutputSpec

_SPEC_FIELDS = ("min", "max", "step", "round")


def _input_spec(declared: Any, name: str | None = None, optional: bool | None = None) -> InputSpec:
    from comfy_api.latest import io

    options = declared.as_dict()
    io_type = declared.get_io_type()
    choices = None
    if isinstance(declared, io.Combo.Input):
        choices = tuple(declared.options)
    default = getattr(declared, "default", None)
    known = {"tooltip", "lazy", "rawLink", "default", "forceInput"}
    return InputSpec(
        name=declared.id if name is None else name,
        type=io_type,
        section="optional" if (declared.optional if optional is None else optional) else "required",
        default=MISSING if default is None else default,
        tooltip=declared.tooltip,
        force_input=bool(getattr(declared, "force_input", False)),
        lazy=bool(declared.lazy),
        raw_link=bool(declared.raw_link),
        multiline=bool(getattr(declared, "multiline", False)),
        choices=choices,
        control_after_generate=bool(getattr(declared, "control_after_generate", False)),
        extra={k: v for k, v in options.items() if k not in known},
        **{name: getattr(declared, name, None) for name in _SPEC_FIELDS},
    )


def compile_schema(cls: type, module: str) -> NodeSchema:
    schema = cls.GET_SCHEMA()
    from .v3_dynamic import flatten_input

    inputs = [_input_spec(item, name, optional)
              for declared in schema.inputs for item, name, optional in flatten_input(declared)]
    inputs += [InputSpec(name=hidden.name, type=hidden.value, section="hidden") for hidden in schema.hidden]
    outputs = tuple(
        OutputSpec(type=o.io_type, name=o.display_name or o.io_type, is_list=bool(o.is_output_list), tooltip=o.tooltip)
        for o in schema.outputs
    )
    return NodeSchema(
        class_type=schema.node_id,
        display_name=schema.display_name or schema.node_id,
        category=schema.category,
        description=schema.description or "",
        inputs=tuple(inputs),
        outputs=outputs,
        output_node=schema.is_output_node,
        deprecated=schema.is_deprecated,
        experimental=schema.is_experimental,
        input_is_list=schema.is_input_list,
        not_idempotent=schema.not_idempotent,
        python_module=module,
    )


def v1_input_types(schema: Any) -> dict[str, Any]:
    """A V3 schema as V1 ``INPUT_TYPES`` (for V3 classes put in ``NODE_CLASS_MAPPINGS``)."""
    spec = compile_schema(type("_", (), {"GET_SCHEMA": staticmethod(lambda: schema)}), "custom_nodes")
    types: dict[str, Any] = {"required": {}}
    for item in spec.inputs:
        types.setdefault(item.section, {})[item.name] = (
            item.type if item.section == "hidden" else tuple(item.wire_format()))
    return types


def _overrides(cls: type, name: str) -> bool:
    from comfy_api.latest import io

    return getattr(cls, name).__func__ is not getattr(io.ComfyNode, name).__func__


def _split_hidden(cls: type, schema: Any, inputs: dict[str, Any]) -> tuple[type, dict[str, Any]]:
    """A per-call copy of the class carrying ``cls.hidden`` (V3 nodes are stateless
    classes, so the copy keeps concurrent calls apart), and the real inputs."""
    from comfy_api.latest import io

    from .v3_dynamic import regroup

    names = {hidden.name for hidden in schema.hidden}
    hidden = {name: inputs[name] for name in names if name in inputs}
    values = regroup(schema.inputs, {k: v for k, v in inputs.items() if k not in names})
    return type(cls.__name__, (cls,), {"hidden": io.HiddenHolder(hidden), "__module__": cls.__module__}), values


def _to_call_result(cls: type, raw: Any, enable_expand: bool) -> CallResult:
    from comfy_api.latest import io

    if raw is None:
        return CallResult(())
    if isinstance(raw, ExecutionBlocker):
        return CallResult((), block_execution=raw.message or "")
    if isinstance(raw, tuple):
        return CallResult(raw)
    if isinstance(raw, Mapping):
        raw = io.NodeOutput.from_dict(dict(raw))
    if not isinstance(raw, io.NodeOutput):
        raise TypeError(f"{cls.__name__}.execute must return io.NodeOutput, a tuple or None, "
                        f"got {type(raw).__name__}")
    if raw.expand is not None and not enable_expand:
        raise TypeError(f"{cls.__name__} returned an expansion but its Schema does not set enable_expand=True")
    ui = raw.ui.as_dict() if isinstance(raw.ui, io._UIOutput) else raw.ui
    return CallResult(tuple(raw.args), ui, raw.expand, raw.block_execution)


class V3Node(NodeDefinition):
    """A V3 ``io.ComfyNode`` class behind Loom's node interface."""

    def __init__(self, cls: type, module: str = "custom_nodes"):
        self.cls = cls
        self.module = module
        spec = cls.GET_SCHEMA()  # declaration errors surface when the pack loads
        self.class_type = spec.node_id
        self._enable_expand = spec.enable_expand
        self._validation = None
        if _overrides(cls, "validate_inputs"):
            params = inspect.signature(cls.validate_inputs).parameters
            self._validation = ValidationHook(
                takes=frozenset(p for p in params if p != "input_types"),
                takes_all=any(p.kind is p.VAR_KEYWORD for p in params.values()),
                wants_input_types="input_types" in params,
                call=cls.validate_inputs,
                takes_hidden=False,
            )

    def schema(self, env: Any = None) -> NodeSchema:
        return compile_schema(self.cls, self.module)

    @property
    def source_module(self) -> str:
        return self.module

    def call(self, instance: Any, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        bound, values = _split_hidden(self.cls, self.cls.GET_SCHEMA(), inputs)
        return bound.execute(**values)

    def normalize(self, raw: Any, output_count: int) -> CallResult:
        return _to_call_result(self.cls, raw, self._enable_expand)

    def fingerprint(self, instance: Any, inputs: dict[str, Any], env: Any = None) -> Any:
        bound, values = _split_hidden(self.cls, self.cls.GET_SCHEMA(), inputs)  # hidden go on cls.hidden
        return _call_accepted(bound.fingerprint_inputs, values)

    @property
    def has_fingerprint(self) -> bool:
        return _overrides(self.cls, "fingerprint_inputs")

    def lazy_inputs_needed(self, instance: Any, inputs: dict[str, Any]) -> Any:
        if not any(spec.lazy for spec in self.schema().inputs):
            return []
        bound, values = _split_hidden(self.cls, self.cls.GET_SCHEMA(), inputs)
        return bound.check_lazy_status(**values)  # a list, or a coroutine the executor awaits

    @property
    def validation(self) -> ValidationHook | None:
        return self._validation


def _call_accepted(fn: Any, inputs: dict[str, Any]) -> Any:
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**inputs)
    return fn(**{k: v for k, v in inputs.items() if k in params})


def execute_as_v1(cls: type, inputs: dict[str, Any]) -> Any:
    """Run a V3 class through the V1 path: ComfyUI's ``{"result", "ui", "expand"}`` dict."""
    schema = cls.GET_SCHEMA()
    bound, values = _split_hidden(cls, schema, inputs)
    raw = bound.execute(**values)

    def as_v1(done: Any) -> Any:
        result = _to_call_result(cls, done, schema.enable_expand)
        values_out = result.values
        if result.block_execution is not None:
            values_out = tuple(ExecutionBlocker(result.block_execution) for _ in schema.outputs)
        return {"result": values_out, "ui": result.ui, "expand": result.expand}

    if inspect.isawaitable(raw):
        async def finish() -> Any:
            return as_v1(await raw)
        return finish()
    return as_v1(raw)


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a pack's coroutine to completion, also when called under a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker, name="loom-v3-entrypoint")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def v3_adapter(module: ModuleType, name: str) -> list[NodeDefinition]:
    """The plug-in loader's adapter: a pack's ``comfy_entrypoint()`` → its nodes."""
    entrypoint = getattr(module, "comfy_entrypoint", None)
    if entrypoint is None:
        return []

    async def load() -> list[type]:
        extension = entrypoint()
        if inspect.isawaitable(extension):
            extension = await extension
        await extension.on_load()
        return list(await extension.get_node_list())

    from engine.plugins import SkippedNode

    compiled: list[Any] = []
    for cls in _run(load()):
        try:
            compiled.append(V3Node(cls, module=f"custom_nodes.{name}"))
        except Exception as exc:  # one bad class never drops its pack
            compiled.append(SkippedNode(getattr(cls, "__name__", repr(cls)), f"{type(exc).__name__}: {exc}"))
    return compiled
