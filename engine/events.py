"""Execution events, as typed messages.

The executor reports to a sink the caller provides (``Callable[[Event], None]``);
the server turns each into ComfyUI's websocket JSON with :meth:`Event.message`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import Any, Callable, ClassVar, Mapping


#: Each event class's field names, in order.
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Event:
    type: ClassVar[str] = "event"

    def data(self) -> dict[str, Any]:
        # Shallow on purpose: events are built fresh for each message and a deep
        # copy of a 1,000-node cached list costs more than running the prompt.
        names = _FIELD_NAMES.get(type(self))
        if names is None:  # dataclasses.fields() walks every field each call: once per class
            names = _FIELD_NAMES[type(self)] = tuple(f.name for f in fields(self))
        return {name: getattr(self, name) for name in names}

    def message(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data()}


@dataclass(frozen=True)
class ExecutionStart(Event):
    type: ClassVar[str] = "execution_start"
    prompt_id: str
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class ExecutionCached(Event):
    type: ClassVar[str] = "execution_cached"
    nodes: list[str]
    prompt_id: str
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class Executing(Event):
    """A node started; ``node=None`` marks the end of the prompt."""

    type: ClassVar[str] = "executing"
    node: str | None
    display_node: str | None
    prompt_id: str


@dataclass(frozen=True)
class Progress(Event):
    type: ClassVar[str] = "progress"
    value: float
    max: float
    prompt_id: str
    node: str | None


@dataclass(frozen=True)
class ProgressState(Event):
    """ComfyUI's ``progress_state``: every node of the prompt that has started,
    with its state (``running`` / ``finished``), progress and ids.  Sent when
    a node starts, reports progress and finishes (cached ones too), only to
    sinks that ask for it (``progress_state = True``): it grows with the prompt."""

    type: ClassVar[str] = "progress_state"
    prompt_id: str
    nodes: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class PreviewImage(Event):
    """A live preview; sent as a binary websocket frame, not JSON."""

    type: ClassVar[str] = "preview"
    image_format: str  # "JPEG" | "PNG"
    image: bytes
    prompt_id: str
    node: str | None


@dataclass(frozen=True)
class Executed(Event):
    type: ClassVar[str] = "executed"
    node: str
    display_node: str
    output: Mapping[str, Any] | None
    prompt_id: str


@dataclass(frozen=True)
class ExecutionSuccess(Event):
    type: ClassVar[str] = "execution_success"
    prompt_id: str
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class ExecutionError(Event):
    type: ClassVar[str] = "execution_error"
    prompt_id: str
    node_id: str
    node_type: str
    executed: list[str]
    exception_message: str
    exception_type: str
    traceback: list[str]
    current_inputs: Mapping[str, Any]
    current_outputs: list[str]
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class ExecutionInterrupted(Event):
    type: ClassVar[str] = "execution_interrupted"
    prompt_id: str
    node_id: str | None
    node_type: str | None
    executed: list[str]
    timestamp: int = field(default_factory=_now_ms)


@dataclass(frozen=True)
class CustomEvent(Event):
    """A node's own websocket message (``PromptServer.send_sync``)."""

    type: ClassVar[str] = "custom"
    event: str
    payload: Mapping[str, Any]
    prompt_id: str

    def message(self) -> dict[str, Any]:
        return {"type": self.event, "data": dict(self.payload)}


EventSink = Callable[[Event], None]


def discard(event: Event) -> None:
    """A sink that drops everything (tests, benchmarks)."""
