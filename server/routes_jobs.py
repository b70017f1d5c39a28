"""``/api/jobs``: ComfyUI's jobs API over Loom's queue and history.

- ``GET /api/jobs``: every job, filtered (``status``, ``workflow_id``), sorted
  (``sort_by`` created_at | execution_duration, ``sort_order``) and paged
  (``limit``, ``offset``; ``pagination.has_more``).  Finished jobs are paged
  in SQLite through ``job_index`` (see ``server.job_index``); queued ones come
  from memory and are merged in (``server.jobs.merge_page``).
- ``GET /api/jobs/{id}``: one job with its outputs; ``?wait=SECONDS`` holds
  the request until the job ends (at most :data:`MAX_WAIT` seconds), so a
  script needs no websocket to wait for a result.
- ``POST /api/jobs/{id}/cancel`` and ``POST /api/jobs/cancel``
  (``{"job_ids": [...]}``): interrupt a running job, drop a pending one;
  idempotent, a finished or unknown id answers ``{"cancelled": false}``.

With users (``--users``) a user sees and cancels only their own jobs; another
user's id answers exactly as an unknown one (404, or ``cancelled: false``),
so ids do not leak.  Admins see all.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Callable

import orjson
from aiohttp import web

from . import job_index, jobs
from .http_errors import ApiError, expect, read_json_object
from .jsonio import json_response
from .routes_queue import committed

if TYPE_CHECKING:
    from .app import LoomServer

#: Longest ``?wait=`` honoured, in seconds (a longer one is cut to this).
MAX_WAIT = 60.0
#: Most ids one batch cancel takes.
MAX_BATCH = 10000


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, "job_not_found", f"no job has the id {job_id[:200]!r}")


class JobEvents:
    """Wakes coroutines when the queue changes (a job started or ended),
    from whatever thread changed it; a coroutine that waits re-checks what it
    waits for, so a missed or extra wake-up costs nothing but a check."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self._event = asyncio.Event()
        self._listeners = 0
        self._scheduled = False

    def attach(self, queue: Any) -> None:
        """Chain onto the queue's change callback (which feeds the websocket status)."""
        before: Callable[[], None] = queue._on_change

        def changed() -> None:
            before()
            self.poke()

        queue._on_change = changed

    def poke(self) -> None:
        # Only with someone waiting: the queue changes thousands of times a
        # second under load, and a loop callback per change is not free.
        if self._listeners and not self._scheduled:
            self._scheduled = True
            try:
                self.loop.call_soon_threadsafe(self._fire)
            except RuntimeError:  # the loop is closed (shutdown)
                pass

    def _fire(self) -> None:
        self._scheduled = False
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> None:
        """Until the next change, or ``timeout`` seconds."""
        self._listeners += 1
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._listeners -= 1


class JobRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server

    def register(self, add) -> None:
        add("GET", "/jobs", self.list_jobs)
        add("POST", "/jobs/cancel", self.cancel_batch)
        add("GET", "/jobs/{job_id}", self.get_job)
        add("POST", "/jobs/{job_id}/cancel", self.cancel_one)

    # ------------------------------------------------------------- helpers
    def _viewer(self, request: web.Request) -> str | None:
        """The user whose jobs this request may see; None: all of them."""
        users = getattr(self.server, "users", None)
        if users is None:
            return None
        return users.scope(request)

    def _read(self, fn: Callable[[Any], Any]) -> Any:
        return committed(self.server.store._read(fn))

    def _live(self) -> list[tuple[Any, str, int | None]]:
        running, pending = self.server.queue.snapshot()
        return ([(item, jobs.IN_PROGRESS, None) for item in running]
                + [(item, jobs.PENDING, n) for n, item in enumerate(pending)])

    async def _find(self, job_id: str, viewer: str | None) -> dict[str, Any] | None:
        for item, status, position in self._live():
            if item.prompt_id == job_id:
                if viewer is not None and jobs.owner_of(item.extra_data) != viewer:
                    return None
                return jobs.queue_job(item, status, position)
        row = await self._read(lambda c: job_index.job_row(c, job_id))
        if row is None:
            return None
        text, owner = row
        if viewer is not None and owner != viewer:
            return None
        try:
            entry = orjson.loads(text)
        except orjson.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict):
            return {"id": job_id, "status": jobs.FAILED,
                    "execution_error": {"exception_message": "this history entry is damaged (not valid JSON)"}}
        return jobs.history_job(job_id, entry, full=True)

    # -------------------------------------------------------------- routes
    async def list_jobs(self, request: web.Request) -> web.Response:
        try:
            query = jobs.parse_query(request.query)
        except ValueError as exc:
            raise ApiError(400, "invalid_query", str(exc)) from None
        viewer = self._viewer(request)
        if viewer is not None:
            query = jobs.JobQuery(query.statuses, query.workflow_id, query.sort_by, query.descending,
                                  query.limit, query.offset, owner=viewer)
        live = jobs.filter_live(self._live(), query)
        want_stored = bool(query.statuses & jobs.FINISHED)

        def read(conn: Any) -> tuple[int, list, dict[str, str]]:
            if not want_stored:
                return 0, [], {}
            total = job_index.count(conn, query)
            start, length = jobs.window_bounds(query, len(live), total)
            rows = job_index.window(conn, query, start, length, total) if total else []
            # The page holds at most `limit` stored rows: fetch only the
            # entries that can be on it (the rest of the window is for merging).
            page = jobs.merge_page(live, jobs.Window(start, rows, total), query)
            ids = [ref for kind, ref in page if kind == "stored"]
            return total, page, job_index.entries(conn, ids)

        total, page, texts = await self._read(read)
        if not want_stored:
            page = jobs.merge_page(live, jobs.Window(0, [], 0), query)
        result = []
        for kind, ref in page:
            if kind == "live":
                result.append(ref)
                continue
            try:
                entry = orjson.loads(texts.get(ref, "null"))
            except orjson.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                result.append(jobs.history_job(ref, entry))
            else:  # trimmed between the two reads, or a damaged row
                result.append({"id": ref, "status": jobs.FAILED})
        total += len(live)
        return json_response({"jobs": result, "pagination": {
            "offset": query.offset, "limit": query.limit, "total": total,
            "has_more": query.offset + len(result) < total}})

    async def get_job(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        wait = _wait_seconds(request)
        viewer = self._viewer(request)
        job = await self._find(job_id, viewer)
        if job is None:
            raise _not_found(job_id)
        if wait > 0 and job["status"] not in jobs.FINISHED:
            events: JobEvents = self.server.job_events
            deadline = time.monotonic() + wait
            while job is not None and job["status"] not in jobs.FINISHED:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                # Re-check at least every second: a wake-up lost to a race
                # costs at most that.
                await events.wait(min(remaining, 1.0))
                job = await self._find(job_id, viewer)
            if job is None:  # deleted from the queue while waited for
                raise _not_found(job_id)
        return json_response(job)

    async def _cancel(self, job_id: str, viewer: str | None) -> bool:
        server = self.server
        for item, status, _ in self._live():
            if item.prompt_id != job_id:
                continue
            if viewer is not None and jobs.owner_of(item.extra_data) != viewer:
                return False
            if status == jobs.PENDING:
                removed = server.queue.remove({job_id})
                if removed:
                    await committed(server.store.delete_pending(removed))
                    return True
            # Running, or started between the snapshot and the removal:
            # interrupts only if it is still the one running.  The queue marks
            # a job running a moment before the worker can interrupt it (its
            # start is being committed): wait that moment out.
            deadline = time.monotonic() + 5.0
            while not server.worker.request_interrupt(job_id):
                if not server.queue.is_running(job_id) or time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.01)
            return True
        return False

    async def cancel_one(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        return json_response({"cancelled": await self._cancel(job_id, self._viewer(request))})

    async def cancel_batch(self, request: web.Request) -> web.Response:
        data = await read_json_object(request, self.server.options.json_limit)
        ids = expect(data.get("job_ids"), list, "job_ids")
        if len(ids) > MAX_BATCH:
            raise ApiError(400, "invalid_field", f"'job_ids' has {len(ids)} ids; at most {MAX_BATCH} at a time")
        invalid = [i if isinstance(i, str) else repr(i)[:80] for i in ids
                   if not isinstance(i, str) or not i or len(i) > 200]
        if invalid:
            raise ApiError(400, "invalid_field", "'job_ids' must hold job ids (non-empty strings of at most 200"
                           " characters)", invalid_ids=invalid[:100])
        viewer = self._viewer(request)
        cancelled = False
        for job_id in dict.fromkeys(ids):
            cancelled = await self._cancel(job_id, viewer) or cancelled
        return json_response({"cancelled": cancelled})


def _wait_seconds(request: web.Request) -> float:
    raw = request.query.get("wait")
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid_query", f"'wait' must be a number of seconds, got {raw[:40]!r}") from None
    if not value >= 0 or value == float("inf"):
        raise ApiError(400, "invalid_query", f"'wait' must be 0 or more seconds (at most {MAX_WAIT:g} are"
                       f" waited), got {raw[:40]}")
    return min(value, MAX_WAIT)
