"""Jobs: ComfyUI's ``/api/jobs`` view of the queue and history.

A job is a prompt seen from outside: pending or in progress while queued,
then completed, failed or cancelled (interrupted) once in history.  The shapes
follow ComfyUI's jobs API (``comfy_execution/jobs.py``): ``id``, ``status``,
``priority``, ``create_time`` (ms), ``execution_start_time`` /
``execution_end_time`` (ms, from the history's messages), ``execution_error``,
``outputs_count``, ``preview_output``, ``workflow_id``; one job asked for by
id also carries ``outputs``, ``execution_status`` and ``workflow``.

Everything here is pure data (no I/O): the route module reads the queue and
the store and hands the rows to these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

PENDING = "pending"
IN_PROGRESS = "in_progress"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
STATUSES = (PENDING, IN_PROGRESS, COMPLETED, FAILED, CANCELLED)
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})
SORTS = ("created_at", "execution_duration")

_PREVIEWABLE = frozenset({"images", "video", "audio", "3d", "text"})
_THREE_D = (".obj", ".fbx", ".gltf", ".glb", ".usdz")
_TEXT_FILES = (".txt", ".md", ".json")

#: Keys of ``extra_data`` the server writes for its own bookkeeping.
OWNER_KEY = "loom_user"


@dataclass(frozen=True)
class JobQuery:
    """``GET /api/jobs``'s parameters, checked."""

    statuses: frozenset[str] = frozenset(STATUSES)
    workflow_id: str | None = None
    sort_by: str = "created_at"
    descending: bool = True
    limit: int | None = None
    offset: int = 0
    #: Only this user's jobs (None: everyone's).
    owner: str | None = None


def parse_query(query: Any) -> JobQuery:
    """The query string as a :class:`JobQuery`; ``ValueError`` names what is wrong."""
    statuses = frozenset(STATUSES)
    raw = query.get("status")
    if raw:
        wanted = [s.strip().lower() for s in raw.split(",") if s.strip()]
        bad = [s for s in wanted if s not in STATUSES]
        if bad:
            raise ValueError(f"invalid status value(s): {', '.join(b[:40] for b in bad)}; valid values:"
                             f" {', '.join(STATUSES)}")
        statuses = frozenset(wanted)
    sort_by = (query.get("sort_by") or "created_at").lower()
    if sort_by not in SORTS:
        raise ValueError("sort_by must be 'created_at' or 'execution_duration'")
    order = (query.get("sort_order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise ValueError("sort_order must be 'asc' or 'desc'")
    limit = None
    if query.get("limit") not in (None, ""):
        limit = _integer(query["limit"], "limit")
        if limit <= 0:
            raise ValueError("limit must be a positive integer")
    offset = 0
    if query.get("offset") not in (None, ""):
        offset = max(0, _integer(query["offset"], "offset"))  # ComfyUI: a negative offset means 0
    workflow_id = query.get("workflow_id") or None
    return JobQuery(statuses, workflow_id, sort_by, order == "desc", limit, offset)


def _integer(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {str(raw)[:40]!r}") from None
    if abs(value) > 2**53:
        raise ValueError(f"{name} is out of range: {str(raw)[:40]}")
    return value


# ------------------------------------------------------------ one job's shape
def _prune(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


def _extra_fields(extra_data: Any) -> tuple[Any, Any]:
    if not isinstance(extra_data, dict):
        return None, None
    pnginfo = extra_data.get("extra_pnginfo")
    workflow = pnginfo.get("workflow") if isinstance(pnginfo, dict) else None
    workflow_id = workflow.get("id") if isinstance(workflow, dict) else None
    return extra_data.get("create_time"), workflow_id


def queue_job(item: Any, status: str, position: int | None = None) -> dict[str, Any]:
    """A queued or running prompt (a ``QueueItem``) as a job."""
    create_time, workflow_id = _extra_fields(item.extra_data)
    return _prune({"id": item.prompt_id, "status": status, "priority": item.number,
                   "create_time": create_time, "outputs_count": 0, "previewable_outputs_count": 0,
                   "workflow_id": workflow_id, "queue_position": position})


def _previewable(media_type: str, item: dict[str, Any]) -> bool:
    if media_type in _PREVIEWABLE:
        return True
    fmt = item.get("format")
    if isinstance(fmt, str) and fmt.startswith(("video/", "audio/")):
        return True
    name = str(item.get("filename", "")).lower()
    return name.endswith(_THREE_D) or name.endswith(_TEXT_FILES)


def outputs_summary(outputs: Any) -> tuple[int, int, dict[str, Any] | None]:
    """(files counted, previewable ones, the preview): a saved visual output
    first, then any visual one, then a text file, then raw text."""
    count = previewable = 0
    best: dict[str, Any] | None = None
    visual = text_file = text = None
    if not isinstance(outputs, dict):
        return 0, 0, None
    for node_id, node_outputs in outputs.items():
        if not isinstance(node_outputs, dict):
            continue
        for media_type, items in node_outputs.items():
            if media_type == "animated" or not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, str) and item.lower().endswith(_THREE_D):
                    item = {"filename": item, "type": "output", "subfolder": "", "mediaType": "3d"}
                if not isinstance(item, dict):
                    if media_type == "text" and text is None and item is not None:
                        value = item[0] if isinstance(item, (list, tuple)) and item else item
                        value = str(value)
                        text = _prune({"content": value[:1024], "truncated": True if len(value) > 1024 else None,
                                       "nodeId": node_id, "mediaType": media_type})
                    continue
                count += 1
                if not _previewable(media_type, item):
                    continue
                previewable += 1
                enriched = {**item, "nodeId": node_id}
                enriched.setdefault("mediaType", media_type)
                name = str(item.get("filename", "")).lower()
                if media_type == "text" or name.endswith(_TEXT_FILES):
                    text_file = text_file or enriched
                elif item.get("type") == "output":
                    best = best or enriched
                else:
                    visual = visual or enriched
    return count, previewable, best or visual or text_file or text


def history_job(prompt_id: str, entry: dict[str, Any], full: bool = False) -> dict[str, Any]:
    """A history entry (``/history``'s shape) as a job; ``full`` adds the
    outputs, the status block and the prompt as ``GET /api/jobs/{id}`` gives them."""
    prompt = entry.get("prompt")
    prompt = prompt if isinstance(prompt, list) and len(prompt) >= 4 else [None, prompt_id, {}, {}, []]
    priority, extra_data = prompt[0], prompt[3]
    create_time, workflow_id = _extra_fields(extra_data)
    status_info = entry.get("status") if isinstance(entry.get("status"), dict) else {}
    status_str = status_info.get("status_str")
    start = end = error = None
    interrupted = False
    node_errors = []
    for message in status_info.get("messages") or []:
        if not (isinstance(message, (list, tuple)) and len(message) >= 2 and isinstance(message[1], dict)):
            continue
        kind, data = message[0], message[1]
        if kind == "execution_start":
            start = data.get("timestamp")
        elif kind in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if kind == "execution_error":
                error = data
            elif kind == "execution_interrupted":
                interrupted = True
        elif kind == "execution_node_error":
            node_errors.append(data)
    if status_str == "success":
        status = COMPLETED
    elif status_str == "error":
        status = CANCELLED if interrupted else FAILED
    else:
        status = COMPLETED
    outputs = entry.get("outputs") if isinstance(entry.get("outputs"), dict) else {}
    count, previewable, preview = outputs_summary(outputs)
    job = _prune({
        "id": prompt_id, "status": status, "priority": priority, "create_time": create_time,
        "execution_start_time": start, "execution_end_time": end, "execution_error": error,
        "completion_status": "success" if status == COMPLETED else None,
        "has_errors": bool(node_errors) or error is not None,
        "execution_error_count": len(node_errors) or int(error is not None),
        "outputs_count": count, "previewable_outputs_count": previewable, "preview_output": preview,
        "workflow_id": workflow_id,
    })
    if full:
        job["outputs"] = outputs
        job["execution_status"] = status_info
        job["execution_errors"] = node_errors
        job["workflow"] = {"prompt": prompt[2], "extra_data": extra_data}
    return job


def owner_of(extra_data: Any) -> str | None:
    owner = extra_data.get(OWNER_KEY) if isinstance(extra_data, dict) else None
    return owner if isinstance(owner, str) else None


# ------------------------------------------------------------------- paging
def sort_key(sort_by: str, created: float, duration: float, prompt_id: str) -> tuple[Any, ...]:
    """The total order jobs are listed in (the SQL ORDER BY is the same)."""
    if sort_by == "execution_duration":
        return (duration, created, prompt_id)
    return (created, prompt_id)


@dataclass
class Window:
    """A slice of the stored (finished) jobs in listing order: ``rows`` are
    (key, prompt_id) starting at index ``start`` of ``total`` matching rows."""

    start: int
    rows: Sequence[tuple[tuple[Any, ...], str]]
    total: int


def merge_page(live: Sequence[tuple[tuple[Any, ...], Any]], window: Window, query: JobQuery
               ) -> list[tuple[str, Any]]:
    """The page ``[offset, offset + limit)`` of live (queued) jobs merged with
    stored ones.  ``live`` is (key, job) sorted in listing order; ``window``
    starts at or before the page's first stored row, at most ``len(live)``
    rows before ``offset`` (see :func:`window_bounds`), so the merged position
    of ``window.rows[0]`` is ``window.start`` plus the live jobs ordered
    before it: no count over the whole history is needed for any page.
    Returns ("live", job) / ("stored", prompt_id) pairs."""
    limit = query.limit
    offset = query.offset
    if not window.rows:  # nothing stored matches (window_bounds keeps one row whenever any does)
        page = [("live", job) for _, job in live][offset:]
        return page if limit is None else page[:limit]
    first_key = window.rows[0][0]
    before = [job for key, job in live if _before(key, first_key, query.descending)]
    after = [(key, job) for key, job in live if not _before(key, first_key, query.descending)]
    merged_start = window.start + len(before)
    merged: list[tuple[str, Any]] = []
    if window.start == 0:
        merged.extend(("live", job) for job in before)
        merged_start = 0
    i = j = 0
    rows = window.rows
    while i < len(after) or j < len(rows):
        if j >= len(rows) or (i < len(after) and _before(after[i][0], rows[j][0], query.descending)):
            merged.append(("live", after[i][1]))
            i += 1
        else:
            merged.append(("stored", rows[j][1]))
            j += 1
    page = merged[max(0, offset - merged_start):]
    return page if limit is None else page[:limit]


def _before(a: tuple[Any, ...], b: tuple[Any, ...], descending: bool) -> bool:
    return a > b if descending else a < b


def window_bounds(query: JobQuery, live_count: int, stored_total: int) -> tuple[int, int | None]:
    """(OFFSET, LIMIT) of the stored rows a page needs (LIMIT None: to the end)."""
    # Never past the last stored row: the page's position is told from the
    # window's first row, so the window must hold one.
    start = min(max(0, query.offset - live_count), max(stored_total - 1, 0))
    if query.limit is None:
        return start, None
    return start, query.offset - start + query.limit


def filter_live(items: Iterable[tuple[Any, str, int | None]], query: JobQuery) -> list[tuple[tuple[Any, ...], Any]]:
    """(item, status, position) of the queue → (key, job) that match, in listing order."""
    out = []
    for item, status, position in items:
        if status not in query.statuses:
            continue
        if query.owner is not None and owner_of(item.extra_data) != query.owner:
            continue
        job = queue_job(item, status, position)
        if query.workflow_id is not None and job.get("workflow_id") != query.workflow_id:
            continue
        created = job.get("create_time")
        created = created if isinstance(created, (int, float)) else 0
        out.append((sort_key(query.sort_by, created, 0, item.prompt_id), job))
    out.sort(key=lambda pair: pair[0], reverse=query.descending)
    return out
