"""ComfyUI's jobs API (``/api/jobs``) against a real server: listing with
filters, sorting and paging, one job with its outputs, long-poll waits,
idempotent cancels, and ``/interrupt`` aimed at one prompt."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time

import pytest

from server import jobs
from server.config import ServerOptions
from server.records import HistoryEntry, QueueItem
from server.store import Store

from .conftest import sleep_prompt, text_prompt


def _workflow(workflow_id: str) -> dict:
    return {"extra_pnginfo": {"workflow": {"id": workflow_id, "nodes": []}}}


async def _jobs(server, query: str = "") -> dict:
    return await server.get_json("/api/jobs" + query)


async def test_jobs_list_every_state_with_comfyui_fields(server):
    await server.post("/queue", {"pause": True})
    done = await server.queue(text_prompt("a"))
    await server.post("/queue", {"resume": True})
    await server.wait_history(done)
    failed = await server.queue({"1": {"class_type": "Fail", "inputs": {"message": "nope"}}})
    await server.wait_history(failed)
    running = await server.queue(sleep_prompt(3.0))
    await server.wait_running(running)
    pending = await server.queue(text_prompt("later"))

    listing = await _jobs(server)
    by_id = {job["id"]: job for job in listing["jobs"]}
    assert by_id[done]["status"] == "completed"
    assert by_id[failed]["status"] == "failed"
    assert by_id[failed]["execution_error"]["exception_message"] == "nope"
    assert by_id[running]["status"] == "in_progress"
    assert by_id[pending]["status"] == "pending"
    assert listing["pagination"] == {"offset": 0, "limit": None, "total": 4, "has_more": False}
    # Newest first by create_time (ms, stamped by POST /prompt).
    assert [j["id"] for j in listing["jobs"]] == [pending, running, failed, done]
    assert all(isinstance(j["create_time"], int) for j in listing["jobs"])
    completed = by_id[done]
    assert completed["execution_end_time"] >= completed["execution_start_time"] > 0
    assert completed["outputs_count"] == 0 and completed["preview_output"]["content"] == "A"
    assert "outputs" not in completed  # only a single job carries its outputs

    only = await _jobs(server, "?status=pending,in_progress")
    assert {j["id"] for j in only["jobs"]} == {running, pending}
    assert (await _jobs(server, "?status=failed"))["jobs"][0]["id"] == failed
    oldest = await _jobs(server, "?sort_order=asc&limit=1")
    assert [j["id"] for j in oldest["jobs"]] == [done]
    assert oldest["pagination"]["has_more"] is True
    await server.post(f"/api/jobs/{running}/cancel")


async def test_bad_job_queries_are_400_naming_the_parameter(server):
    for query, word in [("?status=done", "status"), ("?sort_by=name", "sort_by"), ("?sort_order=up", "sort_order"),
                        ("?limit=0", "limit"), ("?limit=x", "limit"), ("?offset=x", "offset"),
                        ("?limit=99999999999999999999", "limit")]:
        async with await server.get("/api/jobs" + query) as response:
            body = await response.json()
            assert response.status == 400, (query, body)
            assert word in body["error"]["message"]


async def test_one_job_has_outputs_and_the_workflow_and_unknown_is_404(server):
    prompt_id = await server.queue(text_prompt("out"), extra_data=_workflow("wf-1"))
    await server.wait_history(prompt_id)
    job = await server.get_json(f"/api/jobs/{prompt_id}")
    assert job["status"] == "completed" and job["workflow_id"] == "wf-1"
    assert job["outputs"] == {"3": {"text": ["OUT"]}}
    assert job["workflow"]["prompt"]["1"]["inputs"]["value"] == "out"
    assert job["execution_status"]["status_str"] == "success"
    async with await server.get("/api/jobs/no-such-job") as response:
        assert response.status == 404
        assert (await response.json())["error"]["type"] == "job_not_found"
    other = await server.queue(text_prompt("x"), extra_data=_workflow("wf-2"))
    await server.wait_history(other)
    assert [j["id"] for j in (await _jobs(server, "?workflow_id=wf-1"))["jobs"]] == [prompt_id]


async def test_a_pending_job_shows_its_queue_position(server):
    await server.post("/queue", {"pause": True})
    first = await server.queue(text_prompt("1"))
    second = await server.queue(text_prompt("2"))
    assert (await server.get_json(f"/api/jobs/{first}"))["queue_position"] == 0
    job = await server.get_json(f"/api/jobs/{second}")
    assert job["status"] == "pending" and job["queue_position"] == 1


async def test_sorting_by_execution_duration(server):
    ids = {}
    for seconds in (0.6, 0.0, 0.3):
        ids[seconds] = await server.queue(sleep_prompt(seconds))
    for prompt_id in ids.values():
        await server.wait_history(prompt_id)
    listing = await _jobs(server, "?sort_by=execution_duration")
    assert [j["id"] for j in listing["jobs"]] == [ids[0.6], ids[0.3], ids[0.0]]
    listing = await _jobs(server, "?sort_by=execution_duration&sort_order=asc")
    assert [j["id"] for j in listing["jobs"]] == [ids[0.0], ids[0.3], ids[0.6]]


async def test_long_poll_returns_when_the_job_ends(server):
    prompt_id = await server.queue(sleep_prompt(0.8))
    started = time.monotonic()
    job = await server.get_json(f"/api/jobs/{prompt_id}?wait=30")
    elapsed = time.monotonic() - started
    assert job["status"] == "completed" and job["outputs"]
    assert elapsed < 10  # woken by the end, not the 30 s bound


async def test_long_poll_is_bounded_and_answers_the_current_state(server):
    await server.post("/queue", {"pause": True})
    prompt_id = await server.queue(text_prompt("held"))
    started = time.monotonic()
    job = await server.get_json(f"/api/jobs/{prompt_id}?wait=0.5")
    assert job["status"] == "pending"
    assert 0.4 < time.monotonic() - started < 5
    for bad in ("x", "-1", "nan", "inf"):
        async with await server.get(f"/api/jobs/{prompt_id}?wait={bad}") as response:
            assert response.status == 400, bad
            assert "wait" in (await response.json())["error"]["message"]
    async with await server.get("/api/jobs/nope?wait=5") as response:
        assert response.status == 404  # at once, not after waiting


async def test_cancel_is_idempotent_and_targets_only_its_job(server):
    running = await server.queue(sleep_prompt(5.0))
    await server.wait_running(running)
    pending = await server.queue(text_prompt("queued"))
    other = await server.queue(sleep_prompt(0.0, tag="other"))

    async with await server.post(f"/api/jobs/{pending}/cancel") as response:
        assert response.status == 200 and await response.json() == {"cancelled": True}
    async with await server.post(f"/api/jobs/{pending}/cancel") as response:
        assert await response.json() == {"cancelled": False}  # already gone
    async with await server.post("/api/jobs/unknown-id/cancel") as response:
        assert response.status == 200 and await response.json() == {"cancelled": False}
    async with await server.post(f"/api/jobs/{running}/cancel") as response:
        assert await response.json() == {"cancelled": True}
    entry = await server.wait_history(running)
    assert entry["status"]["status_str"] == "error"
    assert (await server.get_json(f"/api/jobs/{running}"))["status"] == "cancelled"
    await server.wait_history(other)  # the next job ran normally
    async with await server.post(f"/api/jobs/{other}/cancel") as response:
        assert await response.json() == {"cancelled": False}  # finished
    assert await server.get_json(f"/history/{pending}") == {}
    assert (await _jobs(server, "?status=cancelled"))["jobs"][0]["id"] == running


async def test_batch_cancel(server):
    await server.post("/queue", {"pause": True})
    ids = [await server.queue(text_prompt(str(n))) for n in range(3)]
    async with await server.post("/api/jobs/cancel", {"job_ids": ids[:2] + ["unknown"]}) as response:
        assert await response.json() == {"cancelled": True}
    running, pending = server.server.queue.snapshot()
    assert [item.prompt_id for item in pending] == [ids[2]]
    async with await server.post("/api/jobs/cancel", {"job_ids": ["unknown"]}) as response:
        assert response.status == 200 and await response.json() == {"cancelled": False}
    for body in ({"job_ids": "x"}, {"job_ids": [1]}, {"job_ids": [""]}, {}):
        async with await server.post("/api/jobs/cancel", body) as response:
            assert response.status == 400, body


async def test_interrupt_with_a_prompt_id_interrupts_only_that_prompt(server):
    running = await server.queue(sleep_prompt(2.0))
    await server.wait_running(running)
    await asyncio.sleep(0.3)  # /queue lists it a moment before the worker can interrupt it
    async with await server.post("/interrupt", {"prompt_id": "some-other-prompt"}) as response:
        assert await response.json() == {"interrupted": False}
    assert server.server.queue.is_running(running)
    async with await server.post("/interrupt", {"prompt_id": running}) as response:
        assert await response.json() == {"interrupted": True}
    entry = await server.wait_history(running, timeout=10)
    assert entry["status"]["status_str"] == "error"


# ----------------------------------------------------------- paging, merged
def _fake_job(prompt_id: str, created: int, status: str = "success", seconds: float = 0.0) -> HistoryEntry:
    item = QueueItem(number=created, prompt_id=prompt_id, prompt={}, extra_data={"create_time": created},
                     outputs=[])
    messages = [["execution_start", {"prompt_id": prompt_id, "timestamp": created}],
                ["execution_success", {"prompt_id": prompt_id, "timestamp": created + int(seconds * 1000)}]]
    return HistoryEntry(item=item, outputs={}, status_str=status, completed=status == "success", messages=messages)


@pytest.mark.parametrize("descending", [True, False])
def test_merged_pages_equal_one_sorted_list(descending):
    """Queued jobs (in memory) and stored ones (SQL windows) page as one list."""
    rng = random.Random(7)
    stored = sorted(((rng.randrange(50), f"s{n}") for n in range(40)), reverse=descending)
    live = sorted(((rng.randrange(50), f"l{n}") for n in range(9)), reverse=descending)
    expected = [pid for _, pid in sorted(stored + live, reverse=descending)]
    live_pairs = [((c, p), {"id": p}) for c, p in live]
    for limit in (1, 3, 7, None):
        for offset in range(0, 52, 1 if limit else 5):
            query = jobs.JobQuery(descending=descending, limit=limit, offset=offset)
            start, length = jobs.window_bounds(query, len(live), len(stored))
            rows = stored[start:] if length is None else stored[start:start + length]
            page = jobs.merge_page(live_pairs, jobs.Window(start, [((c, p), p) for c, p in rows], len(stored)),
                                   query)
            got = [ref["id"] if kind == "live" else ref for kind, ref in page]
            want = expected[offset:] if limit is None else expected[offset:offset + limit]
            assert got == want, (limit, offset)


async def test_pages_of_a_large_history_are_complete_and_ordered(running, tmp_path):
    base = tmp_path / "big"
    store = Store(base / "user" / "loom-queue.sqlite3")
    futures = [store.complete(_fake_job(f"h{n:04d}", 1000 + n, "error" if n % 10 == 0 else "success"))
               for n in range(1200)]
    for future in futures:
        future.result()
    store.close()
    server = await running(base=base)
    seen = []
    offset = 0
    while True:
        page = await _jobs(server, f"?limit=100&offset={offset}")
        seen += [job["id"] for job in page["jobs"]]
        offset += 100
        if not page["pagination"]["has_more"]:
            break
    assert seen == [f"h{n:04d}" for n in reversed(range(1200))]
    failed = await _jobs(server, "?status=failed&limit=5&offset=3")
    assert [j["id"] for j in failed["jobs"]] == ["h1160", "h1150", "h1140", "h1130", "h1120"]
    assert failed["pagination"]["total"] == 120
    # Totals follow deletions (kept by triggers, not counted per request).
    async with await server.post("/history", {"delete": ["h0010", "h0011"]}):
        pass
    assert (await _jobs(server, "?status=failed&limit=1"))["pagination"]["total"] == 119
    assert (await _jobs(server, "?limit=1"))["pagination"]["total"] == 1198


def test_an_old_database_gains_the_jobs_index_with_its_history(tmp_path):
    """A queue database written before the jobs API opens, and its history is listed."""
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE queue (prompt_id TEXT PRIMARY KEY, number REAL NOT NULL, seq INTEGER NOT NULL,
            prompt TEXT NOT NULL, extra_data TEXT NOT NULL, outputs TEXT NOT NULL,
            state TEXT NOT NULL DEFAULT 'pending', queued_at REAL NOT NULL);
        CREATE TABLE history (seq INTEGER PRIMARY KEY AUTOINCREMENT, prompt_id TEXT NOT NULL UNIQUE,
            number REAL NOT NULL, status TEXT NOT NULL, entry TEXT NOT NULL, completed_at REAL NOT NULL);
    """)
    conn.execute("INSERT INTO history(prompt_id, number, status, entry, completed_at) VALUES"
                 " ('old', 1, 'success', '{\"prompt\": [1, \"old\", {}, {\"webhook\": \"http://example.com/\"}, []],"
                 " \"outputs\": {}, \"status\": {\"status_str\": \"success\", \"messages\": []}}', 1700000000)")
    conn.execute("INSERT INTO history(prompt_id, number, status, entry, completed_at) VALUES"
                 " ('damaged', 2, 'error', 'not json', 1700000001)")
    conn.commit()
    conn.close()
    store = Store(path)
    store.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT prompt_id, status, created_at FROM job_index ORDER BY seq").fetchall()
    assert rows == [("old", "completed", 1700000000000.0), ("damaged", "failed", 1700000001000.0)]
    assert sorted(conn.execute("SELECT status, n FROM job_counts").fetchall()) == [("completed", 1), ("failed", 1)]
    # History from before the upgrade owes no webhooks.
    assert conn.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone()[0] == 0
    conn.close()


async def test_jobs_routes_need_the_auth_token(running, tmp_path):
    options = ServerOptions(port=0, web_root=tmp_path / "web", auth_token="s3cret")
    server = await running(options)
    for method, path in [("GET", "/api/jobs"), ("GET", "/api/jobs/x"), ("POST", "/api/jobs/x/cancel"),
                         ("POST", "/api/jobs/cancel")]:
        async with server.session.request(method, server.url + path, json={"job_ids": []}) as response:
            assert response.status == 401, path
    async with server.session.get(server.url + "/api/jobs",
                                  headers={"Authorization": "Bearer s3cret"}) as response:
        assert response.status == 200


async def test_jobs_responses_match_the_openapi_spec(server):
    from .test_openapi import SPEC, _check

    assert {"/api/jobs", "/api/jobs/{job_id}", "/api/jobs/{job_id}/cancel", "/api/jobs/cancel"} <= set(SPEC["paths"])
    done = await server.queue(text_prompt("spec"), extra_data=_workflow("wf"))
    await server.wait_history(done)
    failed = await server.queue({"1": {"class_type": "Fail", "inputs": {"message": "x"}}})
    await server.wait_history(failed)
    await server.post("/queue", {"pause": True})
    pending = await server.queue(text_prompt("p"))
    for path in ["/api/jobs", "/api/jobs?limit=1&offset=1", "/api/jobs?status=nope", f"/api/jobs/{done}",
                 f"/api/jobs/{failed}", f"/api/jobs/{pending}", "/api/jobs/nope", f"/api/jobs/{pending}?wait=x",
                 "/jobs?sort_by=execution_duration"]:
        async with await server.get(path) as response:
            await _check(response, path)
    for path, body in [(f"/api/jobs/{pending}/cancel", None), ("/api/jobs/cancel", {"job_ids": [done]}),
                       ("/api/jobs/cancel", {"job_ids": 3})]:
        async with await server.post(path, body) as response:
            await _check(response, path, "POST")


def test_a_jobs_index_of_an_earlier_layout_is_rebuilt(tmp_path):
    path = tmp_path / "q.sqlite3"
    store = Store(path)
    for n in range(3):
        store.complete(_fake_job(f"j{n}", 100 + n)).result()
    store.close()
    conn = sqlite3.connect(path)
    conn.executescript("DROP TABLE job_index; CREATE TABLE job_index (seq INTEGER PRIMARY KEY, prompt_id TEXT,"
                       " status TEXT, created_at REAL, live INTEGER); INSERT INTO job_index VALUES (1, 'junk', 'x', 0, 1);")
    conn.close()
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT prompt_id, status, created_at FROM job_index ORDER BY seq").fetchall() == [
        ("j0", "completed", 100.0), ("j1", "completed", 101.0), ("j2", "completed", 102.0)]
    conn.close()
