"""``/prompt``, ``/queue``, ``/history``, ``/interrupt``, ``/free``: the queue API."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import random
import uuid
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .jsonio import json_response
from .http_errors import ApiError, expect, read_json_object
from .records import DuplicatePrompt
from .store_errors import DamagedStore, DiskFull

if TYPE_CHECKING:
    from .app import LoomServer

_JSON = "application/json"
#: Prompts with more nodes than this are validated in a thread.
_VALIDATE_IN_THREAD = 2000

log = logging.getLogger("loom.server")


def _duplicate(prompt_id: str) -> ApiError:
    return ApiError(409, "duplicate_prompt_id", f"prompt '{prompt_id}' is already queued, running or in history;"
                    " send a new prompt_id (or none, and the server picks one)")


async def committed(work: Any) -> Any:
    """Await a store write or read (a Future, or a coroutine that awaits one); a full
    disk is a 507 and a damaged database a 503, each saying what to do, never a 500."""
    try:
        return await (asyncio.wrap_future(work) if isinstance(work, concurrent.futures.Future) else work)
    except DiskFull as exc:
        raise ApiError(507, "disk_full", f"disk full: {exc}") from None
    except DamagedStore as exc:
        raise ApiError(503, "damaged_queue_database", str(exc)) from None


def history_operation(data: dict[str, Any]) -> tuple[bool, list[str]]:
    """POST /history's body: (clear everything, the ids to delete); 400 naming what is wrong."""
    if not {"clear", "delete"} & data.keys():
        raise ApiError(400, "invalid_body", "expected 'clear' or 'delete'")
    ids: list[str] = []
    if data.get("delete") is not None:
        ids = [str(expect(i, str, "delete[]")) for i in expect(data["delete"], list, "delete")]
    return data.get("clear") is not None and expect(data["clear"], bool, "clear"), ids


async def interrupt_target(request: web.Request, limit: int) -> str | None:
    """POST /interrupt's optional ``prompt_id`` (ComfyUI's: interrupt only that prompt)."""
    if not request.can_read_body:
        return None
    data = await read_json_object(request, limit)
    return None if data.get("prompt_id") is None else expect(data["prompt_id"], str, "prompt_id")


def _no_prompt(message: str, details: str = "") -> ApiError:
    return ApiError(400, "no_prompt", message, details, node_errors={})


def _optional_int(request: web.Request, name: str, minimum: int = 0) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"'{name}' must be an integer, got {raw[:40]!r}") from None
    if not minimum <= value <= 2**31:
        raise ApiError(400, "invalid_query", f"'{name}' must be between {minimum} and {2**31}, got {raw[:40]}")
    return value


class QueueRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server
        # uuid4() reads os.urandom per call (a system call, and under load a
        # GIL hand-over); ids need to be unique, not secret.
        self._ids = random.Random(os.urandom(32))

    def register(self, add) -> None:
        add("POST", "/prompt", self.post_prompt)
        add("GET", "/prompt", self.get_prompt)
        add("GET", "/queue", self.get_queue)
        add("POST", "/queue", self.post_queue)
        add("GET", "/history", self.get_history)
        add("GET", "/history/{prompt_id}", self.get_history_entry)
        add("POST", "/history", self.post_history)
        add("POST", "/interrupt", self.post_interrupt)
        add("POST", "/free", self.post_free)

    # ---------------------------------------------------------------- prompt
    def _prompt_from(self, data: dict[str, Any]) -> dict[str, Any]:
        if "prompt" in data:
            prompt = data["prompt"]
        elif "workflow" in data:
            prompt = self.server.convert_workflow(data["workflow"])
        else:
            raise _no_prompt("No prompt provided", "the body needs 'prompt' (API format) or 'workflow' (UI format)")
        if not isinstance(prompt, dict):
            raise _no_prompt("Invalid prompt: expected an object of nodes by id",
                             f"'prompt' is {type(prompt).__name__}")
        return prompt

    async def post_prompt(self, request: web.Request) -> web.Response:
        server = self.server
        log.info("got prompt")  # the terminal line ComfyUI users watch for
        data = await read_json_object(request, server.options.json_limit)
        on_prompt = getattr(server, "on_prompt", None)  # ComfyUI packs' add_on_prompt_handler
        if on_prompt is not None:
            data = on_prompt(data)
        prompt = self._prompt_from(data)
        extra_data = data.get("extra_data", {})
        if extra_data is None:
            extra_data = {}
        expect(extra_data, dict, "extra_data")
        extra_data = dict(extra_data)
        client_id = data.get("client_id")
        if client_id is not None:
            extra_data["client_id"] = str(expect(client_id, str, "client_id"))
        admit = getattr(server, "admit_prompt", None)  # server.job_service: create_time, owner, webhook
        if admit is not None:
            admit(request, extra_data, prompt)
        prompt_id = data.get("prompt_id")
        if prompt_id is None:
            prompt_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        else:
            expect(prompt_id, str, "prompt_id")
            if not prompt_id or len(prompt_id) > 200:
                raise ApiError(400, "invalid_field", "'prompt_id' must be a non-empty string of at most 200 characters")
            if prompt_id in server.queue:  # a cheap early answer; the store decides atomically below
                raise _duplicate(prompt_id)
        targets = data.get("partial_execution_targets")
        if targets is not None:
            expect(targets, list, "partial_execution_targets")
            targets = [str(t) for t in targets]

        if len(prompt) > _VALIDATE_IN_THREAD:
            # Seconds for a 100k-node prompt: off the event loop, so other
            # requests and websockets are still served meanwhile.
            validation = await asyncio.to_thread(server.validate, prompt, targets)
        else:
            validation = server.validate(prompt, targets)
        if not validation.ok:
            return json_response(validation.response(), status=400)

        number = None
        if "number" in data and data["number"] is not None:
            try:
                number = float(expect(data["number"], (int, float), "number"))
            except OverflowError:  # an integer of hundreds of digits
                raise ApiError(400, "invalid_field", "'number' is too large; it must be a finite number") from None
            if number != number or number in (float("inf"), float("-inf")):
                raise ApiError(400, "invalid_field", "'number' must be a finite number")
        try:
            item = await committed(server.enqueue(validation, prompt_id=prompt_id, extra_data=extra_data,
                                                  number=number, front=bool(data.get("front"))))
        except DuplicatePrompt:
            raise _duplicate(prompt_id) from None
        return json_response({"prompt_id": prompt_id, "number": item.number,
                              "node_errors": validation.node_errors})

    async def get_prompt(self, request: web.Request) -> web.Response:
        return json_response(self.server.queue_info())

    # ----------------------------------------------------------------- queue
    async def get_queue(self, request: web.Request) -> web.Response:
        running, pending = self.server.queue.snapshot()
        return json_response({"queue_running": [i.wire() for i in running],
                                  "queue_pending": [i.wire() for i in pending]})

    async def post_queue(self, request: web.Request) -> web.Response:
        server = self.server
        data = await read_json_object(request, server.options.json_limit)
        known = {"clear", "delete", "pause", "resume", "move"}
        if not known & data.keys():
            raise ApiError(400, "invalid_body", f"expected one of {', '.join(sorted(known))}")
        result: dict[str, Any] = {}
        if data.get("clear") is not None and expect(data["clear"], bool, "clear"):
            removed = server.queue.clear()
            if removed:  # exactly those: a prompt queued meanwhile stays
                await committed(server.store.delete_pending(removed))
            result["deleted"] = removed
        if data.get("delete") is not None:
            ids = [str(expect(i, str, "delete[]")) for i in expect(data["delete"], list, "delete")]
            removed = server.queue.remove(set(ids))
            if removed:
                await committed(server.store.delete_pending(removed))
            result["deleted"] = result.get("deleted", []) + removed
        if data.get("move") is not None:
            move = expect(data["move"], dict, "move")
            prompt_id = expect(move.get("prompt_id"), str, "move.prompt_id")
            position = expect(move.get("position"), int, "move.position")
            changed = server.queue.move_item(prompt_id, position)
            if changed is None:
                raise ApiError(404, "not_pending", f"prompt '{prompt_id}' is not pending; only pending prompts can move")
            number = changed[prompt_id]
            for moved_id, moved_number in changed.items():  # all of them when the queue was renumbered
                await committed(server.store.set_number(moved_id, moved_number))
            result["moved"] = {"prompt_id": prompt_id, "number": number}
        if data.get("pause") is not None and expect(data["pause"], bool, "pause"):
            await server.set_paused(True)
        if data.get("resume") is not None and expect(data["resume"], bool, "resume"):
            await server.set_paused(False)
        result["paused"] = server.queue.paused
        return json_response(result)

    # --------------------------------------------------------------- history
    async def get_history(self, request: web.Request) -> web.Response:
        # ComfyUI's window: offset counts from the oldest entry; without one,
        # max_items means the newest max_items (server.py's offset = -1).
        max_items = _optional_int(request, "max_items")
        offset = _optional_int(request, "offset", minimum=-(2**31))
        text = await committed(self.server.store.history_window_json(max_items, -1 if offset is None else offset))
        return web.Response(text=text, content_type=_JSON)

    async def get_history_entry(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        text = await committed(self.server.store.history_entry_json(prompt_id))
        return web.Response(text=text, content_type=_JSON)

    async def post_history(self, request: web.Request) -> web.Response:
        store = self.server.store
        clear, ids = history_operation(await read_json_object(request, self.server.options.json_limit))
        if clear:
            await committed(store.clear_history())
        if ids:
            await committed(store.delete_history(ids))
        return json_response({})

    # ------------------------------------------------------------- control
    async def post_interrupt(self, request: web.Request) -> web.Response:
        prompt_id = await interrupt_target(request, self.server.options.json_limit)
        interrupted = self.server.worker.request_interrupt(prompt_id)
        return json_response({"interrupted": interrupted})

    async def post_free(self, request: web.Request) -> web.Response:
        data = await read_json_object(request, self.server.options.json_limit)
        unload = bool(expect(data.get("unload_models", False), bool, "unload_models"))
        free = bool(expect(data.get("free_memory", False), bool, "free_memory"))
        if unload or free:
            self.server.worker.request_free(unload, free)
        return json_response({"unload_models": unload, "free_memory": free})
