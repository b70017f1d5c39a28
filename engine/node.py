"""What the executor needs from a node, whichever style declared it.

A :class:`NodeDefinition` is the compiled form of a node class: its schema plus
the handful of hooks ComfyUI defines (``IS_CHANGED``, ``VALIDATE_INPUTS``,
``check_lazy_status``) and the call itself.  Both declaration styles produce one.
"""

from __future__ import annotations

import contextvars
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .schema import NodeSchema


class Interrupted(Exception):
    """Raised inside a node when the user interrupts the prompt."""


class ExecutionBlocker:
    """An output value that stops every node consuming it from running.

    With a message, a blocked *output* node reports it as an error; without one
    the branch is skipped silently (ComfyUI's semantics).
    """

    def __init__(self, message: str | None = None):
        self.message = message

    def __repr__(self) -> str:
        return f"ExecutionBlocker({self.message!r})"


@dataclass
class NodeOutput:
    """What a typed node returns when it has more to say than its values."""

    values: tuple[Any, ...] = ()
    ui: Mapping[str, Any] | None = None
    expand: Mapping[str, Any] | None = None
    block_execution: str | None = None

    def __init__(self, *values: Any, ui=None, expand=None, block_execution=None):
        self.values = values
        self.ui = ui
        self.expand = expand
        self.block_execution = block_execution


@dataclass(frozen=True)
class Preview:
    """A live preview image: encoded bytes plus ComfyUI's image-type code."""

    format: str  # "JPEG" or "PNG"
    data: bytes
    max_size: int | None = None


@dataclass
class NodeContext:
    """Everything a running node may reach besides its inputs.

    Passed down by the engine (never a global).  ``env`` is whatever the host
    handed the executor (paths, model manager...); the engine never looks in it.
    """

    node_id: str
    display_node_id: str
    prompt_id: str
    prompt: Mapping[str, Any]
    extra_data: Mapping[str, Any]
    env: Any
    report_progress: Callable[[str, float, float, Preview | None], None]
    is_interrupted: Callable[[], bool]
    send_event: Callable[[str, Mapping[str, Any]], None] = lambda event, data: None
    #: The prompt's interrupt flag, for nodes that stop the prompt themselves
    #: (ComfyUI's ``interrupt_current_processing``).
    interrupt: Any = None
    #: Which of the node's mapped calls (list inputs) this is: ComfyUI's
    #: ``GraphBuilder`` prefixes expansion ids with it.
    call_index: int = 0

    @property
    def extra_pnginfo(self) -> Mapping[str, Any] | None:
        return self.extra_data.get("extra_pnginfo")

    def check_interrupted(self) -> None:
        if self.is_interrupted():
            raise Interrupted()

    def progress(self, value: float, total: float, preview: Preview | None = None) -> None:
        """Report progress (and optionally a preview); raises if interrupted."""
        self.check_interrupted()
        self.report_progress(self.node_id, value, total, preview)


def call_with_accepted(fn: Callable[..., Any], inputs: Mapping[str, Any]) -> Any:
    """Call a hook with only the keyword arguments it declares (``IS_CHANGED``
    and friends usually take a subset of the node's inputs)."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**inputs)
    return fn(**{k: v for k, v in inputs.items() if k in params})


#: The context of the node running in this thread/task, for compatibility
#: shims (``comfy.utils.ProgressBar``) that have no way to receive one.
current_context: contextvars.ContextVar[NodeContext | None] = contextvars.ContextVar(
    "loom_current_node_context", default=None
)


@dataclass(frozen=True)
class ValidationHook:
    """A node's own input validation (ComfyUI's ``VALIDATE_INPUTS``).

    ``takes`` names the inputs the hook receives; for those, the built-in
    min/max/choices checks are skipped.  ``wants_input_types`` turns off the
    type check for links.
    """

    takes: frozenset[str]
    takes_all: bool
    wants_input_types: bool
    call: Callable[..., Any]
    #: Loom's typed hooks may declare ``env`` to reach the host (its folders).
    wants_env: bool = False
    #: V1 hooks receive the hidden inputs among their keyword arguments (as
    #: ComfyUI's get_input_data gives them); V3 ones read them from ``cls.hidden``.
    takes_hidden: bool = True


class NodeDefinition(ABC):
    class_type: str

    @abstractmethod
    def schema(self, env: Any = None) -> NodeSchema:
        """The node's schema now: combo choices may change between calls and may
        depend on the host's ``env`` (its model folders)."""

    def new_instance(self) -> Any:
        """State kept per node id across runs (V1 nodes are class instances)."""
        return None

    @abstractmethod
    def call(self, instance: Any, inputs: dict[str, Any], ctx: NodeContext) -> Any:
        """Run once; may return an awaitable."""

    def fingerprint(self, instance: Any, inputs: dict[str, Any], env: Any = None) -> Any:
        """ComfyUI's ``IS_CHANGED``: part of the cache key.  NaN means 'always'.
        ``env`` is the host's (a file-reading fingerprint needs its folders)."""
        return None

    @property
    def has_fingerprint(self) -> bool:
        return False

    def lazy_inputs_needed(self, instance: Any, inputs: dict[str, Any]) -> Any:
        """ComfyUI's ``check_lazy_status``: which lazy inputs must be evaluated
        (a list of names, or an awaitable of one)."""
        return []

    @property
    def validation(self) -> ValidationHook | None:
        return None

    @property
    def source_module(self) -> str:
        return "nodes"

    def normalize(self, raw: Any, output_count: int) -> "CallResult":
        """Turn what :meth:`call` returned into values (+ ui, expansion).

        Loom's style: a single value for one output, a tuple for several, or a
        :class:`NodeOutput`.
        """
        if isinstance(raw, NodeOutput):
            return CallResult(tuple(raw.values), raw.ui, raw.expand, raw.block_execution)
        if raw is None:
            return CallResult(())
        if output_count == 1:
            return CallResult((raw,))
        if not isinstance(raw, tuple):
            raise TypeError(f"{self.class_type} must return a tuple of {output_count} values, got {type(raw).__name__}")
        return CallResult(raw)


@dataclass
class CallResult:
    """One call of a node, normalised from either declaration style."""

    values: tuple[Any, ...]
    ui: Mapping[str, Any] | None = None
    expand: Mapping[str, Any] | None = None
    block_execution: str | None = None

