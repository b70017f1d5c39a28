"""Runs a validated prompt node by node, reusing cached results.

A worklist, not recursion: nodes become ready when their (non-lazy, or
requested-lazy) sources are resolved and run in a deterministic order.  A node
may ask for lazy inputs (``check_lazy_status``), expand into new nodes, block its
consumers (:class:`ExecutionBlocker`), or be a coroutine — coroutine nodes run
as tasks, so independent async nodes overlap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import heapq
import inspect
import time
import traceback
from dataclasses import dataclass, field
from collections.abc import Iterable, Mapping
from typing import Any

from . import events as ev
from .cache import CachedResult, ResultCache, make_cache
from .call_results import CallResults, NodeFailure
from .interrupt import InterruptFlag
from .node import CallResult, ExecutionBlocker, Interrupted, NodeContext, NodeDefinition, Preview, current_context
from .prompt import DynamicPrompt, Link, ListLiteral, NodeCall, display_node_id, real_node_id
from .registry import Registry
from .schema import NodeSchema
from .signature import node_signature
from .validation import ValidationResult, validate_prompt


#: Seconds between two ``progress_state`` messages of a prompt (the last state
#: of a burst is sent when the interval has passed, or when the prompt ends).
PROGRESS_STATE_INTERVAL = 0.05


class PromptValidationError(ValueError):
    """The prompt did not validate; ``.result`` holds ComfyUI's error body."""

    def __init__(self, result: ValidationResult):
        super().__init__(result.error.message if result.error else "invalid prompt")
        self.result = result


@dataclass
class ExecutionOutcome:
    prompt_id: str
    status: str  # "success" | "error" | "interrupted"
    #: Node id → the ``ui`` dict it produced (cached ones included).
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: ``[type, data]`` pairs for the history's ``status.messages``.
    messages: list[list[Any]] = field(default_factory=list)
    error: ev.ExecutionError | None = None
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)

    @property
    def completed(self) -> bool:
        return self.status == "success"


class Executor:
    """Holds the result cache and the V1 node instances between prompts.

    Not thread-safe: one executor per worker thread.
    """

    def __init__(self, registry: Registry, cache: str | ResultCache = "classic"):
        self.registry = registry
        self.cache = make_cache(cache)
        self._instances: dict[tuple[str, str], Any] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def execute(
        self,
        prompt: Mapping[str, Any] | ValidationResult,
        *,
        prompt_id: str,
        sink: ev.EventSink = ev.discard,
        interrupt: InterruptFlag | None = None,
        extra_data: Mapping[str, Any] | None = None,
        outputs: Iterable[str] | None = None,
    ) -> ExecutionOutcome:
        validation = prompt if isinstance(prompt, ValidationResult) else validate_prompt(self.registry, prompt, outputs)
        if not validation.ok:
            raise PromptValidationError(validation)
        flag = interrupt or InterruptFlag()
        flag.clear()
        run = _PromptRun(self, validation, prompt_id, sink, flag, dict(extra_data or {}))
        return run.run()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop async nodes run on, made the first time one needs it: most
        prompts have no async node and should not pay for a loop turn."""
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
        return self._loop

    def instance(self, node_id: str, definition: NodeDefinition) -> Any:
        key = (node_id, definition.class_type)
        if key not in self._instances:
            self._instances[key] = definition.new_instance()
        return self._instances[key]

    def close(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.close()


def _first_blocker(kwargs: Mapping[str, Any], whole_lists: bool) -> ExecutionBlocker | None:
    for value in kwargs.values():
        for item in (value if whole_lists and isinstance(value, list) else (value,)):
            if isinstance(item, ExecutionBlocker):
                return item
    return None


def _as_blocked(raw: Any, output_count: int) -> CallResult | None:
    """ComfyUI's get_output_from_returns: a call that returned a blocker (bare
    or as ``{"result": blocker}``) blocks every output of that call."""
    if isinstance(raw, ExecutionBlocker):
        return CallResult((raw,) * output_count)
    if isinstance(raw, Mapping) and isinstance(raw.get("result"), ExecutionBlocker):
        return CallResult((raw["result"],) * output_count, raw.get("ui"), raw.get("expand"))
    return None


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _format_value(value: Any) -> Any:
    if value is None or isinstance(value, (int, float, bool, str)):
        return value
    return str(value)[:200]


class _PromptRun(CallResults):
    """The state of one prompt's execution."""

    def __init__(self, executor: Executor, validation: ValidationResult, prompt_id: str,
                 sink: ev.EventSink, interrupt: InterruptFlag, extra_data: dict[str, Any]):
        self.executor = executor
        self.registry = executor.registry
        self.cache = executor.cache
        self.prompt_id = prompt_id
        self.sink = sink
        self.interrupt = interrupt
        self.extra_data = extra_data
        self.calls: dict[str, NodeCall] = dict(validation.calls)
        self.validation = validation
        self.outputs_wanted = list(validation.outputs)
        self.order: dict[str, int] = {n: i for i, n in enumerate(validation.order)}
        self.schemas: dict[str, NodeSchema] = {}
        self.signatures: dict[str, str] = {}
        self.results: dict[str, list[list[Any]]] = {}
        self.staged: set[str] = set()
        self.waiting: dict[str, set[str]] = {}
        self.dependents: dict[str, set[str]] = {}
        self.ready: list[tuple[int, str]] = []
        self.queued: set[str] = set()
        self.lazy_requested: dict[str, set[str]] = {}
        #: signature → the node staged to compute it; twins wait for it instead.
        self.computing: dict[str, str] = {}
        self.twin_of: dict[str, str] = {}
        self.expanding: dict[str, tuple[list[CallResult], dict[str, Any] | None]] = {}
        self.tasks: dict[asyncio.Task, str] = {}
        self.outcome = ExecutionOutcome(prompt_id, "success")
        self.current: str | None = None
        self._ui: dict[str, dict[str, Any]] = {}
        #: progress_state registry: only for sinks that ask for it.
        self.wants_states = bool(getattr(sink, "progress_state", False))
        self.states: dict[str, dict[str, Any]] = {}
        self.states_dirty = False
        self.states_sent = float("-inf")

    # Built on first use: only nodes asking for PROMPT / DYNPROMPT need them,
    # and re-serialising a large prompt costs more than a cached run.
    @functools.cached_property
    def wire_prompt(self) -> dict[str, Any]:
        return self.validation.prompt

    @functools.cached_property
    def dynamic_prompt(self) -> DynamicPrompt:
        return DynamicPrompt(self.calls, self.wire_prompt)

    # -- events ---------------------------------------------------------------

    def node_state(self, node_id: str, state: str, value: float | None = None, total: float | None = None) -> None:
        """Track a node for ``progress_state`` (ComfyUI's ProgressRegistry) and
        send the whole registry, as ComfyUI's WebUIProgressHandler does."""
        if not self.wants_states:
            return
        entry = self.states.get(node_id)
        if entry is None:
            entry = self.states[node_id] = {
                "value": 0.0, "max": 1.0, "state": state, "node_id": node_id, "prompt_id": self.prompt_id,
                "display_node_id": self.display_id(node_id),
                "parent_node_id": self.calls[node_id].parent if node_id in self.calls else None,
                "real_node_id": real_node_id(self.calls, node_id),
            }
        entry["state"] = state
        if state == "running" and value is None:
            entry["value"], entry["max"] = 0.0, 1.0
        elif state == "running":
            entry["value"], entry["max"] = value, total
        else:
            entry["value"] = entry["max"]
        self.states_dirty = True
        if time.monotonic() - self.states_sent >= PROGRESS_STATE_INTERVAL:
            self.flush_states()

    def flush_states(self) -> None:
        # Each message holds every started node (ComfyUI's shape), so sending
        # one per node change costs O(n²) on a large prompt (150 MB for 1,000
        # nodes); they are coalesced to one per interval, the last always sent.
        if self.states_dirty:
            self.states_dirty = False
            self.states_sent = time.monotonic()
            self.emit(ev.ProgressState(self.prompt_id, {n: dict(e) for n, e in self.states.items()}))

    def emit(self, event: ev.Event, record: bool = False) -> None:
        if record:
            self.outcome.messages.append([event.type, event.data()])
        self.sink(event)

    def display_id(self, node_id: str) -> str:
        return display_node_id(self.calls, node_id)

    # -- signatures -----------------------------------------------------------

    def schema(self, node_id: str) -> NodeSchema:
        class_type = self.calls[node_id].class_type
        if class_type not in self.schemas:
            schema = self.registry.schema(class_type)
            if schema is None:
                raise NodeFailure(f"Node '{class_type}' not found. The custom node may not be installed.")
            self.schemas[class_type] = schema
        return self.schemas[class_type]

    def definition(self, node_id: str) -> NodeDefinition:
        definition = self.registry.get(self.calls[node_id].class_type)
        assert definition is not None  # schema() checked it
        return definition

    def sign(self, node_ids: Iterable[str]) -> None:
        for node_id in node_ids:
            self.signatures[node_id] = node_signature(
                self.calls[node_id], self.schema(node_id), self.definition(node_id), self.signatures,
                self.registry.env)

    # -- staging --------------------------------------------------------------

    def dependencies(self, node_id: str) -> set[str]:
        schema = self.schema(node_id)
        requested = self.lazy_requested.get(node_id, set())
        deps = set()
        for name, value in self.calls[node_id].inputs.items():
            if isinstance(value, Link):
                spec = schema.input(name)
                if spec is not None and spec.lazy and name not in requested:
                    continue
                deps.add(value.node)
        return deps

    def stage(self, roots: Iterable[str]) -> None:
        stack = list(roots)
        while stack:
            node_id = stack.pop()
            if node_id in self.staged or node_id in self.results:
                continue
            self.staged.add(node_id)
            signature = self.signatures[node_id]
            cached = self.cache.get(signature)
            if cached is not None:
                self.resolve(node_id, cached.outputs, cached.ui, from_cache=True)
                continue
            twin = self.computing.setdefault(signature, node_id)
            if twin != node_id:
                self.twin_of[node_id] = twin
                self.wait_for(node_id, {twin}, stack)
                continue
            self.wait_for(node_id, self.dependencies(node_id), stack)

    def wait_for(self, node_id: str, deps: set[str], stack: list[str] | None = None) -> None:
        unresolved = {d for d in deps if d not in self.results}
        self.waiting[node_id] = unresolved
        # Register every edge before staging anything: staging a source may
        # resolve it at once (a cache hit, a twin's result), which removes it
        # from ``unresolved`` — so never iterate that set while staging.
        for dep in unresolved:
            self.dependents.setdefault(dep, set()).add(node_id)
        fresh = sorted(d for d in unresolved if d not in self.staged)
        if stack is not None:
            stack.extend(fresh)
        else:
            self.stage(fresh)
        if not self.waiting.get(node_id, ()):
            self.make_ready(node_id)

    def make_ready(self, node_id: str) -> None:
        if node_id in self.queued:
            return
        self.queued.add(node_id)
        if node_id not in self.order:
            self.order[node_id] = len(self.order)
        heapq.heappush(self.ready, (self.order[node_id], node_id))

    def resolve(self, node_id: str, outputs: list[list[Any]], ui: dict[str, Any] | None, from_cache: bool = False) -> None:
        self.results[node_id] = outputs
        self.waiting.pop(node_id, None)
        if not from_cache:
            self.cache.put(self.signatures[node_id], CachedResult(outputs, ui))
            self.outcome.executed.append(node_id)
        if ui:
            self._ui[node_id] = ui
            display = self.display_id(node_id)
            self.emit(ev.Executed(node_id, display, ui, self.prompt_id))
        self.node_state(node_id, "finished")
        for consumer in self.dependents.pop(node_id, ()):
            pending = self.waiting.get(consumer)
            if pending is not None:
                pending.discard(node_id)
                if not pending:
                    self.make_ready(consumer)

    # -- running --------------------------------------------------------------

    def run(self) -> ExecutionOutcome:
        self.emit(ev.ExecutionStart(self.prompt_id), record=True)
        try:
            self.sign(self.order)
            cached = [n for n in self.order if self.cache.get(self.signatures[n]) is not None]
            self.outcome.cached = cached
            self.emit(ev.ExecutionCached(cached, self.prompt_id), record=True)
            self.stage(reversed(self.outputs_wanted))
            self.drain()
            self.flush_states()
        except Interrupted:
            self.cancel_tasks()
            self.flush_states()
            self.outcome.status = "interrupted"
            node = self.current
            self.emit(ev.ExecutionInterrupted(
                self.prompt_id, node, self.calls[node].class_type if node else None,
                list(self.outcome.executed)), record=True)
        except Exception as exc:  # a node's failure ends this prompt, never the engine
            self.cancel_tasks()
            self.flush_states()
            self.fail(exc)
        else:
            self.emit(ev.ExecutionSuccess(self.prompt_id), record=True)
        finally:
            self.interrupt.clear()
            self.cache.end_prompt(self.signatures.values())
            self.outcome.outputs = dict(self._ui)
        self.emit(ev.Executing(None, None, self.prompt_id))
        return self.outcome

    def fail(self, exc: BaseException) -> None:
        node = self.current
        class_type = self.calls[node].class_type if node else ""
        inputs: dict[str, Any] = {}
        if node is not None:
            for name, value in self.calls[node].inputs.items():
                if isinstance(value, Link):
                    got = self.results.get(value.node)
                    inputs[name] = [_format_value(v) for v in got[value.slot]] if got and value.slot < len(got) else None
                else:
                    inputs[name] = [_format_value(value)]
        error = ev.ExecutionError(
            prompt_id=self.prompt_id,
            node_id=node or "",
            node_type=class_type,
            executed=list(self.outcome.executed),
            exception_message=str(exc) or type(exc).__name__,
            exception_type=f"{type(exc).__module__}.{type(exc).__qualname__}",
            traceback=traceback.format_exception(exc),
            current_inputs=inputs,
            current_outputs=list(self.results),
        )
        self.outcome.status = "error"
        self.outcome.error = error
        self.emit(error, record=True)

    def cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        if self.tasks:
            self.executor.loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
        self.tasks.clear()

    def drain(self) -> None:
        """Run ready nodes in order; when only async nodes are left running,
        turn the loop until one of them finishes."""
        while True:
            if self.interrupt.is_set():
                raise Interrupted()
            if self.ready:
                _, node_id = heapq.heappop(self.ready)
                self.queued.discard(node_id)
                if node_id in self.results:
                    continue
                self.current = node_id
                self.visit(node_id)
                continue
            if self.tasks:
                # Bounded waits, so an interrupt reaches a long async node too.
                done, _ = self.executor.loop.run_until_complete(
                    asyncio.wait(list(self.tasks), timeout=0.05, return_when=asyncio.FIRST_COMPLETED))
                for task in done:
                    node_id = self.tasks.pop(task)
                    self.current = node_id
                    self.complete(node_id, task.result())
                continue
            break
        missing = [n for n in self.outputs_wanted if n not in self.results]
        if missing:  # a lazy request or expansion that never resolved
            self.current = missing[0]
            raise NodeFailure(f"node(s) {', '.join(missing)} could not be resolved (unsatisfied dependencies)")

    def gather_inputs(self, node_id: str) -> dict[str, list[Any]]:
        values: dict[str, list[Any]] = {}
        schema = self.schema(node_id)
        for name, value in self.calls[node_id].inputs.items():
            if isinstance(value, Link):
                spec = schema.input(name)
                if spec is not None and spec.raw_link:
                    # ComfyUI's rawLink: the node gets the link itself (loop
                    # nodes read their open node's id from it); the source
                    # still runs first.
                    values[name] = [value.wire()]
                    continue
                got = self.results.get(value.node)
                values[name] = got[value.slot] if got is not None else [None]
            elif isinstance(value, ListLiteral):
                values[name] = [value.value]
            else:
                values[name] = [value]
        return values

    def hidden_inputs(self, node_id: str, schema: NodeSchema) -> dict[str, Any]:
        hidden: dict[str, Any] = {}
        for spec in schema.section("hidden"):
            if spec.type == "PROMPT":
                hidden[spec.name] = self.wire_prompt
            elif spec.type == "EXTRA_PNGINFO":
                hidden[spec.name] = self.extra_data.get("extra_pnginfo")
            elif spec.type == "UNIQUE_ID":
                hidden[spec.name] = node_id
            elif spec.type == "DYNPROMPT":
                hidden[spec.name] = self.dynamic_prompt
            else:
                hidden[spec.name] = None
        return hidden

    def report_progress(self, node: str, value: float, total: float, preview: Preview | None) -> None:
        self.node_state(node, "running", value, total)
        self.emit(ev.Progress(value, total, self.prompt_id, node))
        if preview is not None:
            self.emit(ev.PreviewImage(preview.format, preview.data, self.prompt_id, node))

    def send_event(self, event: str, data: Mapping[str, Any]) -> None:
        self.emit(ev.CustomEvent(event, data, self.prompt_id))

    def context(self, node_id: str) -> NodeContext:
        return NodeContext(
            node_id=node_id,
            display_node_id=self.display_id(node_id),
            prompt_id=self.prompt_id,
            prompt=self.wire_prompt,
            extra_data=self.extra_data,
            env=self.registry.env,
            report_progress=self.report_progress,
            is_interrupted=self.interrupt.is_set,
            send_event=self.send_event,
            interrupt=self.interrupt,
        )

    def visit(self, node_id: str) -> None:
        twin = self.twin_of.pop(node_id, None)
        if twin is not None:
            outputs = self.results[twin]
            self.resolve(node_id, outputs, self._ui.get(twin), from_cache=True)
            return
        if node_id in self.expanding:
            self.finish_expansion(node_id)
            return
        schema = self.schema(node_id)
        inputs = self.gather_inputs(node_id)
        # ComfyUI's blocking is per call: a mapped node skips only the calls
        # whose inputs hold a blocker (an element of a list), and their results
        # stay blockers; an INPUT_IS_LIST node is blocked by any element.
        mapped = self.mapped_calls(schema, inputs)
        blocked = [_first_blocker(kwargs, schema.input_is_list) for kwargs in mapped]
        loud = next((b for b in blocked if b is not None and b.message), None)
        if loud is not None and schema.output_node:
            raise NodeFailure(loud.message)
        if mapped and all(b is not None for b in blocked):
            self.resolve(node_id, [list(blocked) for _ in schema.outputs], None)
            return
        self.node_state(node_id, "running")
        self.emit(ev.Executing(node_id, self.display_id(node_id), self.prompt_id))
        definition = self.definition(node_id)
        instance = self.executor.instance(node_id, definition)
        hidden = self.hidden_inputs(node_id, schema)
        if hidden:  # check_lazy_status gets them too (ComfyUI's get_input_data)
            mapped = [{**kwargs, **hidden} for kwargs in mapped]
        runnable = [kwargs for kwargs, b in zip(mapped, blocked) if b is None]
        if self.request_lazy(node_id, schema, definition, instance, runnable):
            return
        ctx = self.context(node_id)
        raw: list[Any] = []
        contexts = []
        for index, kwargs in enumerate(mapped):
            call_ctx = ctx if index == 0 else dataclasses.replace(ctx, call_index=index)
            contexts.append(call_ctx)
            if blocked[index] is not None:
                raw.append(blocked[index])  # stays a blocker in the outputs
                continue
            token = current_context.set(call_ctx)
            try:
                raw.append(definition.call(instance, kwargs, call_ctx))
            finally:
                current_context.reset(token)
        if any(inspect.isawaitable(r) for r in raw):
            self.tasks[self.executor.loop.create_task(self.await_all(raw, contexts))] = node_id
            return
        self.complete(node_id, raw)

    @staticmethod
    async def await_all(raw: list[Any], contexts: list[NodeContext]) -> list[Any]:
        done = []
        for r, ctx in zip(raw, contexts):
            current_context.set(ctx)
            done.append(await r if inspect.isawaitable(r) else r)
        return done

    @staticmethod
    def mapped_calls(schema: NodeSchema, inputs: dict[str, list[Any]]) -> list[dict[str, Any]]:
        """ComfyUI's list semantics: one call per index of the longest input list,
        shorter lists repeating their last element; ``INPUT_IS_LIST`` nodes get
        the lists whole in a single call."""
        if schema.input_is_list:
            return [inputs]
        if not inputs:
            return [{}]
        count = max(len(v) for v in inputs.values())
        if any(len(v) == 0 for v in inputs.values()):
            count = 0
        return [{name: v[min(i, len(v) - 1)] for name, v in inputs.items()} for i in range(count)]

    def request_lazy(self, node_id: str, schema: NodeSchema, definition: NodeDefinition,
                     instance: Any, mapped: list[dict[str, Any]]) -> bool:
        """Ask the node which lazy inputs it needs; stage them and wait if new."""
        if not schema.has_lazy_inputs:
            return False
        call = self.calls[node_id]
        requested = self.lazy_requested.setdefault(node_id, set())
        pending_lazy = [
            name for name, value in call.inputs.items()
            if isinstance(value, Link) and (spec := schema.input(name)) is not None and spec.lazy
            and name not in requested
        ]
        if not pending_lazy:
            return False
        wanted: set[str] = set()
        for kwargs in mapped or [{}]:
            needed = definition.lazy_inputs_needed(instance, kwargs)
            if inspect.isawaitable(needed):  # an async check_lazy_status
                needed = self.executor.loop.run_until_complete(_awaited(needed))
            if isinstance(needed, (list, tuple, set)):
                wanted.update(n for n in needed if isinstance(n, str))
        new = sorted(name for name in wanted if name in pending_lazy)
        if not new:
            return False
        requested.update(new)
        self.wait_for(node_id, self.dependencies(node_id))
        return True

    def complete(self, node_id: str, raw: list[Any]) -> None:
        schema = self.schema(node_id)
        definition = self.definition(node_id)
        count = len(schema.outputs)
        results = [_as_blocked(r, count) or definition.normalize(r, count) for r in raw]
        ui = self.merge_ui(results)
        if any(r.expand for r in results):
            self.expand(node_id, results, ui)
            return
        self.resolve(node_id, self.assemble(schema, results, node_id), ui)

