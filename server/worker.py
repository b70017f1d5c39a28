"""The worker thread: takes prompts off the queue and runs them in the engine.

Events from the engine go to the websocket hub as they happen, routed the way
ComfyUI routes them.  The terminal ones (``execution_success`` / ``_error`` /
``_interrupted`` and ``executing`` with ``node: null``) are held back until the
history row is committed, so a client that hears "done" always finds the
prompt in ``/history``.

The worker does not wait for that commit: it starts the next prompt while the
store's writer commits the last one (the commit is most of a trivial prompt's
time).  The next prompt's events are gated behind the previous announcement,
so clients still hear prompts finish and start in order.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Callable

from engine.events import (
    CustomEvent,
    Event,
    Executed,
    Executing,
    ExecutionCached,
    ExecutionError,
    ExecutionInterrupted,
    ExecutionStart,
    ExecutionSuccess,
    PreviewImage,
    Progress,
)
from engine.interrupt import InterruptFlag

from .hub import Hub
from .prompt_queue import PromptQueue
from .records import HistoryEntry, QueueItem
from .store import Store

log = logging.getLogger("loom.server")

_TERMINAL = (ExecutionSuccess, ExecutionError, ExecutionInterrupted)


@dataclass(frozen=True)
class Running:
    """What runs now: read by websocket reconnects and the compat shim."""

    prompt_id: str
    client_id: str | None
    node: str | None = None
    display_node: str | None = None


def _data(event: Event) -> dict[str, Any]:
    """An event's fields, shallow (``Event.data`` deep-copies through
    ``asdict``, which costs more than the rest of a trivial prompt's routing)."""
    fields = getattr(event, "__dict__", None)
    return dict(fields) if fields is not None else event.data()


class EventRouter:
    """The engine's event sink for one prompt (called in the worker thread).

    Routing follows ComfyUI: node-level events (``executing``, ``progress``,
    ``executed``, previews, custom events) go to the client that queued the
    prompt, or to everyone when it gave no ``client_id``; prompt-level events
    (``execution_start``, ``_cached``, ``_success``, ``_error``) only to that
    client; ``execution_interrupted`` to everyone.
    """

    def __init__(self, hub: Hub, item: QueueItem, on_node: Callable[[Running], None],
                 preview_interval: float = 0.0, after: Future | None = None):
        self.hub = hub
        self.preview_interval = preview_interval
        self._last_preview = float("-inf")
        self.client_id = item.client_id
        self.prompt_id = item.prompt_id
        self.on_node = on_node
        self.held: list[Event] = []
        # Messages waiting for the previous prompt's announcement (see the
        # module docstring); None once that has gone out.
        self._gated: list[tuple[str, dict[str, Any], str | None, bool]] | None = None
        self._gate_lock = threading.Lock()
        if after is not None and not after.done():
            self._gated = []
            after.add_done_callback(lambda _: self._open_gate())

    def _post(self, kind: str, data: dict[str, Any], client_id: str | None, urgent: bool = False) -> None:
        if self._gated is not None:
            with self._gate_lock:
                if self._gated is not None:
                    self._gated.append((kind, data, client_id, urgent))
                    return
        self.hub.post(kind, data, client_id, urgent=urgent)

    def _open_gate(self) -> None:
        with self._gate_lock:
            for kind, data, client_id, urgent in self._gated or ():
                self.hub.post(kind, data, client_id, urgent=urgent)
            self._gated = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, PreviewImage):
            # Throttled at the source: a sampler can produce previews faster
            # than anyone can look at them.
            now = time.monotonic()
            if now - self._last_preview >= self.preview_interval:
                self._last_preview = now
                self.hub.post_preview(event.image_format, event.image, self.client_id)
        elif isinstance(event, _TERMINAL):
            self.held.append(event)
        elif isinstance(event, Executing):
            if event.node is None:
                return  # sent by release(), after the history commit
            self.on_node(Running(self.prompt_id, self.client_id, event.node, event.display_node))
            self._post(event.type, _data(event), self.client_id)
        elif isinstance(event, (ExecutionStart, ExecutionCached)):
            if self.client_id is not None:
                self._post(event.type, _data(event), self.client_id)
        elif isinstance(event, (Progress, Executed)):
            self._post(event.type, _data(event), self.client_id)
        elif isinstance(event, CustomEvent):
            message = event.message()
            self._post(message["type"], message["data"], self.client_id)
        else:  # an event type added to the engine later: pass it on as-is
            message = event.message()
            self._post(message["type"], message["data"], self.client_id)

    def release(self, fallback: Event | None) -> None:
        """Send the held terminal events, then ``executing: null``."""
        events = self.held or ([fallback] if fallback is not None else [])
        for event in events:
            if isinstance(event, ExecutionInterrupted):
                self._post(event.type, _data(event), None)
            elif self.client_id is not None:
                self._post(event.type, _data(event), self.client_id)
        self._post("executing", {"node": None, "display_node": None, "prompt_id": self.prompt_id},
                   self.client_id, urgent=True)


def error_event(prompt_id: str, exc: BaseException, node_id: str = "", node_type: str = "") -> ExecutionError:
    return ExecutionError(
        prompt_id=prompt_id, node_id=node_id, node_type=node_type, executed=[],
        exception_message=str(exc), exception_type=type(exc).__name__,
        traceback=traceback.format_exception(exc), current_inputs={}, current_outputs={},
    )


def _lower_priority() -> None:
    """Let the OS prefer the event loop's thread over this one, so requests
    and websocket pings are answered promptly while a node computes (Linux
    threads have their own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 5)
    except (AttributeError, OSError):
        pass


def describe_invalid(validation: Any) -> str:
    body = validation.response()
    error = body.get("error") or {}
    parts = [str(error.get("message", "invalid prompt"))]
    for node_id, info in (body.get("node_errors") or {}).items():
        for problem in info.get("errors", []):
            parts.append(f"node {node_id}: {problem.get('message', '')} {problem.get('details', '')}".strip())
    return "; ".join(parts)


class Worker:
    """Runs queued prompts one at a time in its own thread."""

    def __init__(
        self,
        *,
        queue: PromptQueue,
        store: Store,
        hub: Hub,
        make_executor: Callable[[], Any],
        validate: Callable[[QueueItem], Any],
        free: Callable[[bool, bool], None] = lambda unload, free: None,
        preview_interval: float = 0.0,
        env: Any = None,
    ):
        self.preview_interval = preview_interval
        self.env = env
        self.queue = queue
        self.store = store
        self.hub = hub
        self.make_executor = make_executor
        self.validate = validate
        self.free_hook = free
        self.interrupt = InterruptFlag()
        self.running: Running | None = None
        self._stopping = False
        self._free_request: tuple[bool, bool] | None = None
        self._thread = threading.Thread(target=self._loop, name="loom-worker", daemon=True)
        self.completed = 0
        #: The last prompt's history commit, whose announcement the next
        #: prompt's events wait for.
        self._announced: Future | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after interrupting the running prompt, which stays queued (it
        runs again at the next start)."""
        self._stopping = True
        self.interrupt.set()
        self.queue.close()
        self._thread.join(timeout)

    def request_interrupt(self, prompt_id: str | None = None) -> bool:
        running = self.running
        if running is None or (prompt_id is not None and running.prompt_id != prompt_id):
            return False
        self.interrupt.set()
        return True

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        self._free_request = (unload_models, free_memory)

    # ------------------------------------------------------------ thread
    def _loop(self) -> None:
        _lower_priority()
        executor = None
        while not self._stopping:
            executor = self._apply_free(executor)
            item = self.queue.take(timeout=0.5)
            if item is None:
                continue
            executor = self._apply_free(executor)  # asked for while we waited
            if executor is None:
                try:
                    executor = self.make_executor()
                except Exception:
                    log.exception("could not create the executor")
                    self._finish(item, None, status="error", outputs={}, messages=[],
                                 error=error_event(item.prompt_id, RuntimeError("the engine failed to start")))
                    continue
            try:
                self._run(item, executor)
            except Exception:  # a bug here must not kill the worker
                log.exception("prompt %s failed in the server", item.prompt_id)
                self.queue.finish(item.prompt_id)
                self.running = None
        if executor is not None:
            executor.close()

    def _apply_free(self, executor: Any) -> Any:
        """Honour a ``/free`` request between prompts; returns the executor
        to use (None when its caches had to go)."""
        if self._free_request is None:
            return executor
        unload, free = self._free_request
        self._free_request = None
        if unload and executor is not None:
            # Cached results hold the models: drop them with the executor.
            executor.close()
            executor = None
        try:
            self.free_hook(unload, free)
        except Exception:
            log.exception("freeing memory failed")
        return executor

    def _run(self, item: QueueItem, executor: Any) -> None:
        self.interrupt.clear()
        self.running = Running(item.prompt_id, item.client_id)
        router = EventRouter(self.hub, item, self._set_running, self.preview_interval, after=self._announced)
        try:
            # Validated when queued; items recovered from disk are validated
            # again, against the nodes loaded now.
            validation = item.validation if item.validation is not None else self.validate(item)
            if not validation.ok:
                self._finish(item, router, status="error", outputs={}, messages=[],
                             error=error_event(item.prompt_id, ValueError(describe_invalid(validation))))
                return
            outcome = executor.execute(
                validation, prompt_id=item.prompt_id, sink=router, interrupt=self.interrupt,
                extra_data=item.extra_data, outputs=item.outputs or None,
            )
        except Exception as exc:
            log.exception("the engine raised running prompt %s", item.prompt_id)
            self._finish(item, router, status="error", outputs={}, messages=[],
                         error=error_event(item.prompt_id, exc))
            return
        if outcome.status == "interrupted" and self._stopping:
            return  # shutting down: leave it queued, it runs again next start
        self._finish(item, router, status=outcome.status, outputs=dict(outcome.outputs or {}),
                     messages=list(outcome.messages or []), error=outcome.error)

    def _set_running(self, running: Running) -> None:
        self.running = running

    def _finish(self, item: QueueItem, router: EventRouter | None, *, status: str,
                outputs: dict[str, Any], messages: list[Any], error: Event | None) -> None:
        self._announced = record_outcome(self.store, self.queue, self.hub, item, router, status=status,
                                         outputs=outputs, messages=messages, error=error,
                                         before_release=self._clear_running, wait=False)
        self.completed += 1

    def _clear_running(self) -> None:
        self.running = None

    def describe(self) -> list[dict[str, Any]]:
        """This worker as ``/system_stats`` lists workers."""
        running = self.running
        return [{"worker": "local", "host": socket.gethostname(), "pid": os.getpid(),
                 "device": getattr(self.env, "device", "auto"), "resident_models": resident_models(self.env),
                 "current_prompt": running.prompt_id if running else None,
                 "completed": self.completed}]


def resident_models(env: Any) -> list[str]:
    """The checkpoint files the env's model manager holds (never creating it)."""
    if env is None or not getattr(env, "models_loaded", False):
        return []
    return sorted({model.source for model in env.models.loaded_models()})


def record_outcome(store: Store, queue: PromptQueue, hub: Hub, item: QueueItem, router: EventRouter | None,
                   *, status: str, outputs: dict[str, Any], messages: list[Any], error: Event | None,
                   before_release: Callable[[], None] = lambda: None, wait: bool = True) -> Future:
    """Move a finished prompt to history, then tell the clients: the terminal
    events go out only after the history row is committed.

    With ``wait=False`` this returns at once and the announcement happens in
    the store's writer thread when the commit lands; the returned future
    resolves after it."""
    if status == "error" and error is not None and not any(
            isinstance(m, (list, tuple)) and m and m[0] == "execution_error" for m in messages):
        messages.append(["execution_error", error.data()])
    entry = HistoryEntry(item=item, outputs=outputs,
                         status_str="success" if status == "success" else "error",
                         completed=status == "success", messages=messages)
    if router is None:
        router = EventRouter(hub, item, lambda running: None)
    if error is not None:
        fallback: Event | None = error
    elif status == "success":
        fallback = ExecutionSuccess(prompt_id=item.prompt_id)
    else:
        fallback = ExecutionInterrupted(prompt_id=item.prompt_id, node_id=None,
                                        node_type=None, executed=[])
    announced: Future = Future()

    def announce(committed: Any) -> None:
        try:
            if committed.exception() is not None:
                log.error("could not record prompt %s in history: %s", item.prompt_id, committed.exception())
            # Leaves the queue only now: a client polling /queue then /history
            # never finds the prompt in neither.
            queue.finish(item.prompt_id)
            router.release(fallback)
        finally:
            announced.set_result(None)

    committed = store.complete(entry)
    before_release()
    if wait:
        try:
            committed.result()
        except Exception:
            pass  # logged by announce
        announce(committed)
    else:
        committed.add_done_callback(announce)
    return announced
