"""The request side of ``--users``: a middleware that authenticates every
request by its user token, and serves the queue and history routes scoped to
a non-admin user (the routes themselves stay unaware of users: an admin's
request goes to them unchanged).

A token is accepted as ``Authorization: Bearer <token>``, the ``loom_token``
cookie, or ``?token=`` (which sets the cookie, so the editor opened with it
keeps working), as with ``--auth-token``.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

import orjson
from aiohttp import web

from . import job_index, jobs
from .http_errors import ApiError, expect, read_json_object
from .jsonio import json_response
from .routes_queue import committed, history_operation, interrupt_target
from .security import TOKEN_COOKIE
from .users import User, UserTable

if TYPE_CHECKING:
    from .app import LoomServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The authenticated user of a request.
REQUEST_KEY = web.RequestKey("loom_user", User)
_HISTORY_ID = web.RequestKey("loom_history_id", str)

#: Server-wide operations only an admin may run.
_ADMIN_ONLY = [("POST", re.compile(r"^/free$")), ("POST", re.compile(r"^/models/download$")),
               ("POST", re.compile(r"^/models/downloads/[^/]+/cancel$"))]
_HISTORY_ENTRY = re.compile(r"^/history/(?P<id>[^/]+)$")


def _admin_only(what: str) -> ApiError:
    return ApiError(403, "admin_only", f"{what} is for admins; this user's role is 'user'")


class UserScope:
    def __init__(self, server: "LoomServer", table: UserTable):
        self.server = server
        self.table = table

    # ------------------------------------------------------------ who asks
    def scope(self, request: web.Request, owner: bool = False) -> str | None:
        """The user whose jobs a request may see (None: all, an admin); with
        ``owner``, the user a new prompt belongs to (admins' too)."""
        user: User | None = request.get(REQUEST_KEY)
        if user is None:
            return None
        return user.name if owner or not user.admin else None

    @staticmethod
    def client_id(name: str, client_id: str | None) -> str:
        """A user's websocket id, in the user's own namespace: another user
        who picks the same ``clientId`` gets a different socket, so never
        this user's events.  A prompt without one gets ``"<name>:"``, which no
        socket has: its progress and previews go to no one, not to everyone."""
        prefix = f"{name}:"
        if client_id is None:
            return prefix
        return client_id if client_id.startswith(prefix) else prefix + client_id

    def _authenticate(self, request: web.Request) -> tuple[User, bool]:
        header = request.headers.get("Authorization", "")
        offered: list[tuple[str, bool]] = []
        if header.lower().startswith("bearer "):
            offered.append((header[7:].strip(), False))
        cookie = request.cookies.get(TOKEN_COOKIE)
        if cookie:
            offered.append((cookie, False))
        query = request.query.get("token")
        if query:
            offered.append((query, query != cookie))
        for token, from_query in offered:
            user = self.table.authenticate(token)
            if user is not None:
                return user, from_query
        raise ApiError(401, "unauthorized", "this server has users: send your token as 'Authorization: Bearer"
                       " <token>' or open the page with ?token=<token> (an admin creates one with 'loom users add')")

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "OPTIONS":  # CORS preflight carries no credentials
            return await handler(request)
        user, set_cookie = self._authenticate(request)
        request[REQUEST_KEY] = user
        if not user.admin and request.path in ("/ws", "/api/ws"):
            request = request.clone(rel_url=request.rel_url.update_query(
                clientId=self.client_id(user.name, request.query.get("clientId") or uuid.uuid4().hex)))
        scoped = None if user.admin else self._scoped(request)
        response = await (scoped(request) if scoped is not None else handler(request))
        if set_cookie and not response.prepared:
            response.set_cookie(TOKEN_COOKIE, request.query["token"], httponly=True, samesite="Strict", path="/")
        return response

    def _scoped(self, request: web.Request) -> Handler | None:
        path = request.path
        if path.startswith("/api/"):
            path = path[4:]
        method = request.method
        for verb, pattern in _ADMIN_ONLY:
            if method == verb and pattern.match(path):
                raise _admin_only(f"{method} {path}")
        if method == "GET":
            if path == "/queue":
                return self.get_queue
            if path == "/history":
                return self.get_history
            match = _HISTORY_ENTRY.match(path)
            if match:
                request[_HISTORY_ID] = match.group("id")
                return self.get_history_entry
            if path == "/view":
                self._check_view(request)
        elif method == "POST":
            if path == "/queue":
                return self.post_queue
            if path == "/history":
                return self.post_history
            if path == "/interrupt":
                return self.post_interrupt
        return None

    # ------------------------------------------------------------- helpers
    def _name(self, request: web.Request) -> str:
        return request[REQUEST_KEY].name

    def _own(self, items: list[Any], name: str) -> list[Any]:
        return [item for item in items if jobs.owner_of(item.extra_data) == name]

    def _check_view(self, request: web.Request) -> None:
        """Outputs of other users are not there for this one (404, as missing)."""
        kind = request.query.get("type") or "output"
        if kind != "output":
            return
        name = self._name(request)
        subfolder = (request.query.get("subfolder") or "").replace("\\", "/").strip("/")
        filename = request.query.get("filename") or ""
        full = f"{subfolder}/{filename}" if subfolder else filename
        if not full.startswith(name + "/") or ".." in full.split("/"):
            raise ApiError(404, "not_found", "no such file")

    # -------------------------------------------------------- scoped routes
    async def get_queue(self, request: web.Request) -> web.Response:
        running, pending = self.server.queue.snapshot()
        name = self._name(request)
        return json_response({"queue_running": [i.wire() for i in self._own(running, name)],
                              "queue_pending": [i.wire() for i in self._own(pending, name)]})

    async def get_history(self, request: web.Request) -> web.Response:
        def number(key: str, low: int) -> int | None:
            raw = request.query.get(key)
            if raw in (None, ""):
                return None
            try:
                value = int(raw)
            except ValueError:
                raise ApiError(400, "invalid_query", f"'{key}' must be an integer, got {raw[:40]!r}") from None
            if not low <= value <= 2**31:
                raise ApiError(400, "invalid_query", f"'{key}' must be between {low} and {2**31}")
            return value

        max_items = number("max_items", 0)
        offset = number("offset", -(2**31))
        offset = -1 if offset is None else offset
        name = self._name(request)

        def read(c: Any) -> list[tuple[str, str]]:
            start = offset
            if start < 0 and max_items is not None:
                start = c.execute("SELECT COALESCE(SUM(n), 0) FROM job_counts WHERE owner = ?", (name,)
                                  ).fetchone()[0] - max_items
            return c.execute("SELECT h.prompt_id, h.entry FROM job_index j JOIN history h ON h.prompt_id ="
                             " j.prompt_id WHERE j.owner = ? ORDER BY j.seq LIMIT ? OFFSET ?",
                             (name, -1 if max_items is None else max_items, max(start, 0))).fetchall()

        rows = await committed(self.server.store._read(read))
        return web.Response(text=_history_text(rows), content_type="application/json")

    async def get_history_entry(self, request: web.Request) -> web.Response:
        prompt_id = request[_HISTORY_ID]
        name = self._name(request)
        row = await committed(self.server.store._read(lambda c: job_index.job_row(c, prompt_id)))
        rows = [(prompt_id, row[0])] if row is not None and row[1] == name else []
        return web.Response(text=_history_text(rows), content_type="application/json")

    async def post_queue(self, request: web.Request) -> web.Response:
        server = self.server
        name = self._name(request)
        data = await read_json_object(request, server.options.json_limit)
        known = {"clear", "delete", "pause", "resume", "move"}
        if not known & data.keys():
            raise ApiError(400, "invalid_body", f"expected one of {', '.join(sorted(known))}")
        for key in ("pause", "resume"):
            if data.get(key) is not None and expect(data[key], bool, key):
                raise _admin_only(f"'{key}' (the whole queue)")
        result: dict[str, Any] = {}
        _, pending = server.queue.snapshot()
        mine = {item.prompt_id for item in self._own(pending, name)}
        wanted: set[str] = set()
        if data.get("clear") is not None and expect(data["clear"], bool, "clear"):
            wanted |= mine
        if data.get("delete") is not None:
            ids = [str(expect(i, str, "delete[]")) for i in expect(data["delete"], list, "delete")]
            wanted |= mine & set(ids)
        if "clear" in data or "delete" in data:
            removed = server.queue.remove(wanted) if wanted else []
            if removed:
                await committed(server.store.delete_pending(removed))
            result["deleted"] = removed
        if data.get("move") is not None:
            move = expect(data["move"], dict, "move")
            prompt_id = expect(move.get("prompt_id"), str, "move.prompt_id")
            position = expect(move.get("position"), int, "move.position")
            changed = server.queue.move_item(prompt_id, position) if prompt_id in mine else None
            if changed is None:
                raise ApiError(404, "not_pending", f"prompt '{prompt_id}' is not pending; only pending prompts can move")
            for moved_id, moved_number in changed.items():
                await committed(server.store.set_number(moved_id, moved_number))
            result["moved"] = {"prompt_id": prompt_id, "number": changed[prompt_id]}
        result["paused"] = server.queue.paused
        return json_response(result)

    async def post_history(self, request: web.Request) -> web.Response:
        store = self.server.store
        name = self._name(request)
        clear, ids = history_operation(await read_json_object(request, self.server.options.json_limit))

        def own(c: Any) -> list[str]:
            if clear:
                return [r[0] for r in c.execute("SELECT prompt_id FROM job_index WHERE owner = ?", (name,))]
            return [pid for pid, owner in job_index.owners(c, ids).items() if owner == name]

        mine = await committed(store._read(own))
        if mine:
            await committed(store.delete_history(mine))
        return json_response({})

    async def post_interrupt(self, request: web.Request) -> web.Response:
        prompt_id = await interrupt_target(request, self.server.options.json_limit)
        running, _ = self.server.queue.snapshot()
        mine = [item.prompt_id for item in self._own(running, self._name(request))]
        target = prompt_id if prompt_id is not None else (mine[0] if mine else None)
        interrupted = target in mine and bool(self.server.worker.request_interrupt(target))
        return json_response({"interrupted": interrupted})


def _history_text(rows: list[tuple[str, str]]) -> str:
    parts = []
    for prompt_id, entry in rows:
        try:
            ok = isinstance(orjson.loads(entry), dict)
        except orjson.JSONDecodeError:
            ok = False
        if ok:
            parts.append(f"{orjson.dumps(prompt_id).decode()}:{entry}")
    return "{" + ",".join(parts) + "}"
