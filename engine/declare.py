"""Loom's typed node declaration: a decorated function *is* the schema.

    IMAGE = Socket("IMAGE")

    @node(category="image", display_name="Invert Image")
    def ImageInvert(image: IMAGE) -> IMAGE:
        return 1.0 - image

Parameter annotations give the input types (``int``, ``float``, ``str``,
``bool``, a :func:`Socket`, ``typing.Any`` for ``*``; ``X | None`` makes an
input optional).  A parameter's default is either a plain default value or a
widget spec (:class:`Int`, :class:`Float`, :class:`String`, :class:`Boolean`,
:class:`Combo`, :class:`Input`) carrying the options.  A parameter annotated
:class:`~engine.node.NodeContext` receives the running context.  The return
annotation (one type or ``tuple[...]``) gives the outputs.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, NewType, Sequence

from .node import NodeContext, NodeDefinition, ValidationHook, call_with_accepted
from .schema import ANY, MISSING, InputSpec, NodeSchema, OutputSpec


def Socket(type_name: str) -> Any:
    """A socket type usable as an annotation (``IMAGE = Socket("IMAGE")``)."""
    socket = NewType(type_name.replace(",", "_").replace("*", "ANY"), object)
    socket.__loom_socket__ = type_name  # type: ignore[attr-defined]
    return socket


@dataclass(frozen=True)
class _Widget:
    default: Any = MISSING
    tooltip: str | None = None
    force_input: bool = False
    lazy: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    type_name: typing.ClassVar[str | None] = None

    def spec(self, name: str, type_name: str, section: str, env: Any = None) -> InputSpec:
        return InputSpec(
            name=name,
            type=self.type_name or type_name,
            section=section,  # type: ignore[arg-type]
            default=self.default,
            tooltip=self.tooltip,
            force_input=self.force_input,
            lazy=self.lazy,
            extra=dict(self.extra),
            **self._more(env),
        )

    def _more(self, env: Any) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Input(_Widget):
    """Options for a socket input (tooltip, lazy, raw link)."""

    raw_link: bool = False

    def _more(self, env: Any) -> dict[str, Any]:
        return {"raw_link": self.raw_link}


@dataclass(frozen=True)
class Int(_Widget):
    min: int | None = None
    max: int | None = None
    step: int | None = None
    control_after_generate: bool = False
    type_name = "INT"

    def _more(self, env: Any) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "step": self.step,
                "control_after_generate": self.control_after_generate}


@dataclass(frozen=True)
class Float(_Widget):
    min: float | None = None
    max: float | None = None
    step: float | None = None
    round: float | bool | None = None
    type_name = "FLOAT"

    def _more(self, env: Any) -> dict[str, Any]:
        return {"min": self.min, "max": self.max, "step": self.step, "round": self.round}


@dataclass(frozen=True)
class String(_Widget):
    multiline: bool = False
    type_name = "STRING"

    def _more(self, env: Any) -> dict[str, Any]:
        return {"multiline": self.multiline}


@dataclass(frozen=True)
class Boolean(_Widget):
    type_name = "BOOLEAN"


@dataclass(frozen=True, init=False)
class Combo(_Widget):
    """A choice among options; ``options`` may be a callable of the host's
    ``env``, re-read on every schema request (file lists)."""

    options: Sequence[Any] | Callable[[Any], Sequence[Any]] = ()
    model_kind: str | None = None
    type_name = "COMBO"

    def __init__(self, options: Sequence[Any] | Callable[[Any], Sequence[Any]] = (), default: Any = MISSING,
                 model_kind: str | None = None, **kw: Any):
        super().__init__(default=default, **kw)
        object.__setattr__(self, "options", options)
        object.__setattr__(self, "model_kind", model_kind)

    def _more(self, env: Any) -> dict[str, Any]:
        options = self.options(env) if callable(self.options) else self.options
        return {"choices": tuple(options), "model_kind": self.model_kind}


_PY_TYPES = {int: "INT", float: "FLOAT", str: "STRING", bool: "BOOLEAN"}


def _type_name(annotation: Any) -> tuple[str, bool]:
    """(Loom type name, optional?) for a parameter annotation."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        optional = len(members) < len(typing.get_args(annotation))
        if len(members) == 1:
            annotation = members[0]
        else:
            return ",".join(_type_name(m)[0] for m in members), optional
    if annotation is Any or annotation is inspect.Parameter.empty:
        return ANY, optional
    socket = getattr(annotation, "__loom_socket__", None)
    if socket is not None:
        return socket, optional
    if annotation in _PY_TYPES:
        return _PY_TYPES[annotation], optional
    raise TypeError(f"cannot turn annotation {annotation!r} into a node input type")


def _output_types(annotation: Any) -> list[str]:
    if annotation is inspect.Signature.empty or annotation is None or annotation is type(None):
        return []
    if typing.get_origin(annotation) is tuple:
        return [_type_name(arg)[0] for arg in typing.get_args(annotation)]
    return [_type_name(annotation)[0]]


class FunctionNode(NodeDefinition):
    """A node declared with :func:`node`."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        class_type: str,
        display_name: str,
        category: str,
        description: str,
        output_names: Sequence[str] | None,
        output_is_list: Sequence[bool] | None,
        output_node: bool,
        input_is_list: bool,
        deprecated: bool,
        experimental: bool,
        not_idempotent: bool,
        version: str,
        fingerprint: Callable[..., Any] | None,
        validate: Callable[..., Any] | None,
        lazy_check: Callable[..., list[str]] | None,
    ):
        self.fn = fn
        self.class_type = class_type
        self._meta = dict(
            display_name=display_name, category=category, description=description,
            output_node=output_node, input_is_list=input_is_list, deprecated=deprecated,
            experimental=experimental, not_idempotent=not_idempotent, version=version,
        )
        hints = typing.get_type_hints(fn)
        signature = inspect.signature(fn)
        self._ctx_param: str | None = None
        self._params: list[tuple[str, Any, Any]] = []
        for name, param in signature.parameters.items():
            annotation = hints.get(name, inspect.Parameter.empty)
            if annotation is NodeContext:
                self._ctx_param = name
                continue
            self._params.append((name, annotation, param.default))
        out_types = _output_types(hints.get("return", inspect.Signature.empty))
        names = list(output_names) if output_names else list(out_types)
        if len(names) != len(out_types):
            raise TypeError(f"{class_type}: {len(names)} output names for {len(out_types)} outputs")
        is_list = list(output_is_list) if output_is_list else [False] * len(out_types)
        self._outputs = tuple(
            OutputSpec(type=t, name=n, is_list=bool(l)) for t, n, l in zip(out_types, names, is_list)
        )
        self._fingerprint = fingerprint
        self._lazy_check = lazy_check
        self._validation = None
        if validate is not None:
            params = inspect.signature(validate).parameters
            self._validation = ValidationHook(
                takes=frozenset(p for p in params if p not in ("input_types", "env")),
                takes_all=any(p.kind is p.VAR_KEYWORD for p in params.values()),
                wants_input_types="input_types" in params,
                call=validate,
                wants_env="env" in params,
            )
        for name, annotation, _ in self._params:  # fail at declaration, not first use
            _type_name(annotation)
        # Only combos whose options are read from the host change between
        # requests; every other schema is built once.
        self._dynamic = any(isinstance(d, Combo) and callable(d.options) for _, _, d in self._params)
        self._schema: NodeSchema | None = None

    def _input_spec(self, env: Any, name: str, annotation: Any, default: Any) -> InputSpec:
        type_name, optional = _type_name(annotation)
        section = "optional" if optional else "required"
        if isinstance(default, _Widget):
            return default.spec(name, type_name, section, env)
        if default is inspect.Parameter.empty or (optional and default is None):
            return InputSpec(name=name, type=type_name, section=section)
        return InputSpec(name=name, type=type_name, section=section, default=default)

    def schema(self, env: Any = None) -> NodeSchema:
        if self._schema is not None:
            return self._schema
        schema = self._build_schema(env)
        if not self._dynamic:
            self._schema = schema
        return schema

    def _build_schema(self, env: Any) -> NodeSchema:
        return NodeSchema(
            class_type=self.class_type,
            inputs=tuple(self._input_spec(env, *param) for param in self._params),
            outputs=self._outputs,
            python_module=self.source_module,
            **self._meta,
        )

    @property
    def source_module(self) -> str:
        module = self.fn.__module__ or "nodes"
        return module if module.startswith(("nodes", "custom_nodes")) else f"custom_nodes.{module}"

    def call(self, instance: Any, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        if self._ctx_param is not None:
            inputs = {**inputs, self._ctx_param: ctx}
        return self.fn(**inputs)

    def fingerprint(self, instance: Any, inputs: dict[str, Any], env: Any = None) -> Any:
        if self._fingerprint is None:
            return None
        return call_with_accepted(self._fingerprint, {**inputs, "env": env})

    @property
    def has_fingerprint(self) -> bool:
        return self._fingerprint is not None

    def lazy_inputs_needed(self, instance: Any, inputs: dict[str, Any]) -> Any:
        # A list, or a coroutine (async checks) the executor awaits.
        return [] if self._lazy_check is None else call_with_accepted(self._lazy_check, inputs)

    @property
    def validation(self) -> ValidationHook | None:
        return self._validation


def node(
    class_type: str | None = None,
    *,
    display_name: str | None = None,
    category: str = "loom",
    description: str | None = None,
    output_names: Sequence[str] | None = None,
    output_is_list: Sequence[bool] | None = None,
    output_node: bool = False,
    input_is_list: bool = False,
    deprecated: bool = False,
    experimental: bool = False,
    not_idempotent: bool = False,
    version: str = "1",
    fingerprint: Callable[..., Any] | None = None,
    validate: Callable[..., Any] | None = None,
    lazy_check: Callable[..., list[str]] | None = None,
) -> Callable[[Callable[..., Any]], FunctionNode]:
    """Declare a node from a function; see the module docstring."""

    def wrap(fn: Callable[..., Any]) -> FunctionNode:
        name = class_type or fn.__name__
        return FunctionNode(
            fn,
            class_type=name,
            display_name=display_name or name,
            category=category,
            description=description if description is not None else inspect.cleandoc(fn.__doc__ or ""),
            output_names=output_names,
            output_is_list=output_is_list,
            output_node=output_node,
            input_is_list=input_is_list,
            deprecated=deprecated,
            experimental=experimental,
            not_idempotent=not_idempotent,
            version=version,
            fingerprint=fingerprint,
            validate=validate,
            lazy_check=lazy_check,
        )

    return wrap


def collect_nodes(namespace: Iterable[Any]) -> list[NodeDefinition]:
    """The node definitions among a module's attributes, in declaration order."""
    return [value for value in namespace if isinstance(value, NodeDefinition)]
