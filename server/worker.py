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
    """An event's fields, read straight from the instance: the same shallow dict as
    ``Event.data``, without its walk over ``fields()`` on this per-message path."""
    fields = getattr(event, "__dict__", None)
    return dict(fields) if fields is not None else event.data()


class EventRouter:
    """The engine's event sink for one prompt (called in the worker thread).

    Routing follows ComfyUI (execution.py, main.py, server.py's send_sync):
    every message of a prompt goes to the client that queued it, and to no
    other.  For a prompt queued without a ``client_id``, ComfyUI sends
    ``executing``, ``executed`` and the prompt-level events (``execution_start``,
    ``_cached``, ``_success``, ``_error``, the final ``executing: null``) to no
    one, while ``progress``, ``progress_state``, previews, custom events and
    ``execution_interrupted`` go to everyone (``send_sync`` with no sid).
    """

    #: Ask the engine for ComfyUI's ``progress_state`` messages.
    progress_state = True

    def __init__(self, hub: Hub, item: QueueItem, on_node: Callable[[Running], None],
                 preview_interval: float = 0.0, after: Future | None = None):
        self.hub = hub
        self.preview_interval = preview_interval
        self._last_preview = float("-inf")
        self.client_id = item.client_id
        self.prompt_id = item.prompt_id
        self.on_node = on_node
        self.held: list[Event] = []
        #: Set when this prompt's thread was abandoned: nothing more goes out.
        self.muted = False
        # Messages waiting for the previous prompt's announcement (see the
        # module docstring); None once that has gone out.
        self._gated: list[tuple[str, dict[str, Any], str | None, bool]] | None = None
        self._gate_lock = threading.Lock()
        if after is not None and not after.done():
            self._gated = []
            after.add_done_callback(lambda _: self._open_gate())

    def _post(self, kind: str, data: dict[str, Any], client_id: str | None, urgent: bool = False) -> None:
        if self.muted:
            return
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
        if self.muted:
            return
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
            if self.client_id is not None:
                self._post(event.type, _data(event), self.client_id)
        elif isinstance(event, (ExecutionStart, ExecutionCached, Executed)):
            if self.client_id is not None:
                self._post(event.type, _data(event), self.client_id)
        elif isinstance(event, Progress):
            self._post(event.type, _data(event), self.client_id)
        else:  # a node's CustomEvent, or an event type added to the engine later: pass it on as-is
            message = event.message()
            self._post(message["type"], message["data"], self.client_id)

    def release(self, fallback: Event | None, replace: bool = False) -> None:
        """Send the held terminal events (or, with ``replace``, ``fallback``
        instead of them), then ``executing: null``."""
        events = self.held if self.held and not replace else ([fallback] if fallback is not None else [])
        for event in events:
            if isinstance(event, ExecutionInterrupted) or self.client_id is not None:
                self._post(event.type, _data(event), self.client_id)
        if self.client_id is not None:
            self._post("executing", {"node": None, "display_node": None, "prompt_id": self.prompt_id},
                       self.client_id, urgent=True)


class HistoryNotSaved(RuntimeError):
    """A finished prompt's history row could not be committed."""


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
    """A prompt that no longer validates (recovered from disk, checked again) as one line."""
    from .run import format_validation

    return format_validation(validation.response(), validation.prompt, one_line=True)


class _Abandoned(BaseException):
    """Raised, best effort, in a worker thread that was given up on (its node
    ignored /interrupt past the grace period), so a pure-Python loop stops
    burning a core; a thread blocked in C never sees it and stays parked."""


@dataclass(eq=False)
class _Lane:
    """One worker thread and the executor (and result cache) it owns.

    A lane whose node hangs is abandoned, never reused: Python cannot kill a
    thread, so the worker starts a new lane with a fresh executor and the old
    thread is left to finish (or not) on its own, with nothing to report to."""

    number: int
    thread: threading.Thread | None = None
    executor: Any = None
    abandoned: bool = False


@dataclass(eq=False)
class _Run:
    """One start of one prompt on one lane; ``claimed`` by whoever records
    its outcome first: the lane when the prompt returns, or the watchdog when
    it gives up on it."""

    item: QueueItem
    lane: _Lane
    router: EventRouter
    interrupt: InterruptFlag
    claimed: bool = False
    watchdog: threading.Timer | None = None


class Worker:
    """Runs queued prompts one at a time in its own thread.

    Poison prompts: the prompt about to run is noted on disk first
    (``Store.mark_running``); the next start-up counts a death against the
    prompt the last process died running, and one that has killed the
    process ``max_attempts`` times is recorded as failed instead of run.  A node raising ``SystemExit`` or
    ``KeyboardInterrupt`` fails its prompt.  A node that ignores ``/interrupt``
    for ``interrupt_grace`` seconds ends its prompt as interrupted and the
    worker carries on in a new thread (see :class:`_Lane`)."""

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
        max_attempts: int = 3,
        interrupt_grace: float = 30.0,
    ):
        self.preview_interval = preview_interval
        self.env = env
        self.queue = queue
        self.store = store
        self.hub = hub
        self.make_executor = make_executor
        self.validate = validate
        self.free_hook = free
        self.max_attempts = max_attempts
        self.interrupt_grace = interrupt_grace
        self.running: Running | None = None
        self._stopping = False
        self._free_request: tuple[bool, bool] | None = None
        self._lock = threading.Lock()
        self._lanes = 0
        self._lane = self._new_lane()
        self._run_now: _Run | None = None
        self.completed = 0
        #: Threads given up on (their node ignored /interrupt); still alive or not.
        self.abandoned: list[threading.Thread] = []
        #: The last prompt's history commit, whose announcement the next
        #: prompt's events wait for.
        self._announced: Future | None = None

    def _new_lane(self) -> _Lane:
        self._lanes += 1
        lane = _Lane(self._lanes)
        lane.thread = threading.Thread(target=self._loop, args=(lane,), name=f"loom-worker-{lane.number}",
                                       daemon=True)
        return lane

    def start(self) -> None:
        self._lane.thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after interrupting the running prompt, which stays queued (it
        runs again at the next start)."""
        self._stopping = True
        run = self._run_now
        if run is not None:
            run.interrupt.set()
            if run.watchdog is not None:
                run.watchdog.cancel()
        self.queue.close()
        self._lane.thread.join(timeout)

    def request_interrupt(self, prompt_id: str | None = None) -> bool:
        run = self._run_now
        running = self.running
        if run is None or running is None or (prompt_id is not None and running.prompt_id != prompt_id):
            return False
        run.interrupt.set()
        with self._lock:
            if run.watchdog is None and not run.claimed and self.interrupt_grace > 0:
                run.watchdog = threading.Timer(self.interrupt_grace, self._give_up, (run,))
                run.watchdog.daemon = True
                run.watchdog.start()
        return True

    def request_free(self, unload_models: bool, free_memory: bool) -> None:
        self._free_request = (unload_models, free_memory)

    # ------------------------------------------------------------ thread
    def _loop(self, lane: _Lane) -> None:
        _lower_priority()
        try:
            while not self._stopping and not lane.abandoned:
                self._apply_free(lane)
                item = self.queue.take(timeout=0.5)
                if item is None:
                    continue
                if lane.abandoned:  # cannot happen (only the live lane takes), but never run twice
                    self.queue.give_back(item)
                    break
                self._apply_free(lane)  # asked for while we waited
                if lane.executor is None:
                    try:
                        lane.executor = self.make_executor()
                    except Exception:
                        log.exception("could not create the executor")
                        self._finish(item, None, status="error", outputs={}, messages=[],
                                     error=error_event(item.prompt_id, RuntimeError("the engine failed to start")))
                        continue
                try:
                    self._run(item, lane)
                except Exception:  # a bug here must not kill the worker
                    log.exception("prompt %s failed in the server", item.prompt_id)
                    self.queue.finish(item.prompt_id)
                    self.running = None
        except _Abandoned:
            pass
        finally:
            if lane.executor is not None:
                try:
                    lane.executor.close()
                except BaseException:  # an abandoned lane cleans up as it can
                    log.exception("closing the executor failed")
                lane.executor = None

    def _apply_free(self, lane: _Lane) -> None:
        """Honour a ``/free`` request between prompts (dropping the lane's
        executor when its caches must go)."""
        if self._free_request is None:
            return
        unload, free = self._free_request
        self._free_request = None
        if unload and lane.executor is not None:
            # Cached results hold the models: drop them with the executor.
            lane.executor.close()
            lane.executor = None
        try:
            self.free_hook(unload, free)
        except Exception:
            log.exception("freeing memory failed")

    def _run(self, item: QueueItem, lane: _Lane) -> None:
        self.running = Running(item.prompt_id, item.client_id)
        router = EventRouter(self.hub, item, self._set_running, self.preview_interval, after=self._announced)
        run = _Run(item, lane, router, InterruptFlag())
        if item.attempts >= self.max_attempts:
            log.error("prompt %s killed the server process %d times; recorded as failed and not run again",
                      item.prompt_id, item.attempts)
            self._finish(item, router, status="error", outputs={}, messages=[], error=error_event(
                item.prompt_id, RuntimeError(
                    f"the server process died {item.attempts} times while running this prompt (a node may"
                    f" call os._exit, crash or kill the process); it is recorded as failed and not run again"
                    f" (the limit is --max-prompt-attempts {self.max_attempts})")))
            return
        try:
            # Noted before the first node runs: a node that kills the process
            # cannot escape the count (made at the next start-up).
            self.store.mark_running(item.prompt_id)
        except OSError as exc:
            self._store_failed(item, exc)
            return
        self._run_now = run
        try:
            # Validated when queued; items recovered from disk are validated
            # again, against the nodes loaded now.
            validation = item.validation if item.validation is not None else self.validate(item)
            if not validation.ok:
                self._finish_run(run, status="error", outputs={}, messages=[],
                                 error=error_event(item.prompt_id, ValueError(describe_invalid(validation))))
                return
            outcome = lane.executor.execute(
                validation, prompt_id=item.prompt_id, sink=router, interrupt=run.interrupt,
                extra_data=item.extra_data, outputs=item.outputs or None,
            )
        except _Abandoned:
            raise
        except Exception as exc:
            log.exception("the engine raised running prompt %s", item.prompt_id)
            self._finish_run(run, status="error", outputs={}, messages=[],
                             error=error_event(item.prompt_id, exc))
            return
        except BaseException as exc:  # SystemExit, KeyboardInterrupt from a node
            lane.executor = None  # stopped half-way through: its state is not to be trusted
            self._finish_run(run, status="error", outputs={}, messages=[], error=self._exit_error(item, exc))
            return
        if outcome.status == "interrupted" and self._stopping:
            with self._lock:
                run.claimed = True
            # Shutting down: leave it queued, it runs again next start, and
            # this start does not count against it.
            self.store.clear_running()
            return
        self._finish_run(run, status=outcome.status, outputs=dict(outcome.outputs or {}),
                         messages=list(outcome.messages or []), error=outcome.error)

    def _exit_error(self, item: QueueItem, exc: BaseException) -> ExecutionError:
        running = self.running
        node_id = running.node if running is not None and running.node else ""
        node_type = str((item.prompt.get(node_id) or {}).get("class_type", "")) if node_id else ""
        where = f"node {node_id} ({node_type})" if node_id else "a node"
        log.error("%s raised %s in prompt %s; the prompt failed and the worker carries on",
                  where, type(exc).__name__, item.prompt_id)
        message = (f"{where} raised {type(exc).__name__}{f' ({exc})' if str(exc) else ''}: nodes must not"
                   f" exit the process; this prompt failed")
        event = error_event(item.prompt_id, RuntimeError(message), node_id, node_type)
        return ExecutionError(**{**_data(event), "exception_type": type(exc).__name__})

    def _give_up(self, run: _Run) -> None:
        """The watchdog: the running node ignored /interrupt for the grace
        period.  Record the prompt as interrupted, abandon its thread and
        carry on in a new one."""
        with self._lock:
            if run.claimed or self._stopping:
                return
            run.claimed = True
            lane = run.lane
            lane.abandoned = True
        item = run.item
        running = self.running
        node_id = running.node if running is not None and running.prompt_id == item.prompt_id else None
        node_type = (item.prompt.get(node_id) or {}).get("class_type") if node_id else None
        log.error("prompt %s: node %s (%s) ignored the interrupt for %.1f s; its thread is abandoned and the"
                  " worker carries on in a new one", item.prompt_id, node_id, node_type, self.interrupt_grace)
        run.router.muted = True  # whatever the stuck thread still emits goes nowhere
        event = ExecutionInterrupted(prompt_id=item.prompt_id, node_id=node_id, node_type=node_type, executed=[])
        note = {**_data(event), "details": f"the node ignored the interrupt for {self.interrupt_grace:g} s;"
                                           " its thread was abandoned and the queue moved on"}
        router = EventRouter(self.hub, item, lambda running: None, after=self._announced)
        self._finish(item, router, status="interrupted", outputs={}, messages=[["execution_interrupted", note]],
                     error=None)
        if self._run_now is run:
            self._run_now = None
        thread = lane.thread
        self.abandoned.append(thread)
        _raise_in(thread)
        self._lane = self._new_lane()
        self._lane.thread.start()

    def _store_failed(self, item: QueueItem, exc: BaseException) -> None:
        """The queue database could not be written (a full disk): the prompt
        goes back to the queue, which pauses until someone resumes it."""
        log.error("cannot start prompt %s: %s; the queue is paused (resume it when fixed)", item.prompt_id, exc)
        self.running = None
        self.queue.set_paused(True)  # first: the worker must not take it straight back
        self.queue.give_back(item)
        self.hub.post("loom_queue_paused", {"reason": str(exc), "prompt_id": item.prompt_id}, None)

    def _set_running(self, running: Running) -> None:
        self.running = running

    def _finish_run(self, run: _Run, **outcome: Any) -> None:
        """Record a run's outcome unless the watchdog already has."""
        with self._lock:
            if run.claimed:
                return
            run.claimed = True
            if run.watchdog is not None:
                run.watchdog.cancel()
        if self._run_now is run:
            self._run_now = None
        self._finish(run.item, run.router, **outcome)

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
                 "completed": self.completed, "abandoned_threads": sum(t.is_alive() for t in self.abandoned)}]


def _raise_in(thread: threading.Thread | None) -> None:
    """Ask an abandoned thread to stop (see :class:`_Abandoned`)."""
    if thread is None or thread.ident is None or not thread.is_alive():
        return
    try:
        import ctypes

        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(_Abandoned))
    except Exception:  # not CPython: the thread stays parked
        pass


def resident_models(env: Any) -> list[str]:
    """The checkpoint files the env's model manager holds (never creating it)."""
    if env is None or not getattr(env, "models_loaded", False):
        return []
    return sorted({model.source for model in env.models.loaded_models()})


def log_outcome(messages: list[Any], error: Event | None) -> None:
    """The terminal lines ComfyUI prints for a finished prompt: a failed node's message and
    traceback, then how long the prompt took."""
    if error is not None:
        data = error.data()
        log.error("!!! Exception during processing !!! %s", data.get("exception_message", ""))
        trace = data.get("traceback") or []
        if trace:
            log.error("%s", "".join(trace).rstrip())
    started = next((m[1].get("timestamp") for m in messages
                    if isinstance(m, (list, tuple)) and len(m) == 2 and m[0] == "execution_start"
                    and isinstance(m[1], dict)), None)
    if isinstance(started, (int, float)):
        log.info("Prompt executed in %.2f seconds", max(0.0, time.time() - started / 1000))


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
    log_outcome(messages, error)
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
            failure = committed.exception()
            if failure is not None:
                # Never "execution_success" for a prompt /history does not
                # have: the client hears why, the prompt stays queued (on disk
                # it still is: the transaction rolled back) and the queue
                # pauses, so it is not run again and again into a full disk.
                log.error("could not record prompt %s in history: %s; it stays queued and the queue is paused",
                          item.prompt_id, failure)
                queue.set_paused(True)  # first: the worker must not take it straight back
                queue.give_back(item)
                router.release(error_event(item.prompt_id, HistoryNotSaved(
                    f"the prompt ran, but its result could not be recorded: {failure}. It stays queued and runs"
                    " again when the queue is resumed (POST /queue {\"resume\": true})")), replace=True)
                return
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
