"""Paging the jobs API over a 100,000-entry history.

Builds a queue database with N finished jobs (realistic entries: messages
with timestamps, an image output, a workflow id; 10 % failed), starts a real
server on it and times ``GET /api/jobs`` pages over HTTP: the first page,
a page deep in the history, a status filter, a workflow filter and the sort
by execution duration.

Baseline, measured in the same run: what ComfyUI's jobs API does per request
(``comfy_execution/jobs.get_all_jobs``) — every history entry read and turned
into a job, then sorted and sliced — done here on the same rows, without
HTTP.  The ratio is the baseline's time over Loom's.

Target: every page in milliseconds (under 20 ms over HTTP) at 100,000 entries.

    .venv/bin/python bench/jobs.py [N]
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp  # noqa: E402
import orjson  # noqa: E402

from engine.registry import Registry  # noqa: E402
from nodes.runtime import LoomEnv  # noqa: E402
from server import jobs  # noqa: E402
from server.app import LoomServer  # noqa: E402
from server.config import ServerOptions  # noqa: E402
from server.store import Store  # noqa: E402


def build(path: Path, count: int) -> None:
    store = Store(path, max_history=count * 2)
    store.close()
    conn = sqlite3.connect(path)
    rows = []
    for n in range(count):
        pid = f"{n:08d}-0000-4000-8000-000000000000"
        created = 1_700_000_000_000 + n * 1000
        failed = n % 10 == 0
        end = ["execution_error", {"prompt_id": pid, "timestamp": created + 500 + n % 997,
                                   "exception_message": "boom", "node_id": "3"}] if failed else \
            ["execution_success", {"prompt_id": pid, "timestamp": created + 500 + n % 997}]
        entry = {"prompt": [n, pid, {"1": {"class_type": "KSampler", "inputs": {"seed": n}}},
                            {"create_time": created, "extra_pnginfo": {"workflow": {"id": f"wf-{n % 50}"}}}, ["9"]],
                 "outputs": {} if failed else {"9": {"images": [{"filename": f"img_{n:06d}.png", "subfolder": "",
                                                                 "type": "output"}]}},
                 "status": {"status_str": "error" if failed else "success", "completed": not failed,
                            "messages": [["execution_start", {"prompt_id": pid, "timestamp": created + 100}], end]},
                 "meta": {}}
        rows.append((pid, n, "error" if failed else "success", orjson.dumps(entry).decode(), created / 1000))
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO history(prompt_id, number, status, entry, completed_at) VALUES (?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    conn.close()


def comfyui_style(path: Path, query: str) -> list[dict]:
    """The baseline: every entry read and normalized, then sorted and sliced."""
    conn = sqlite3.connect(path)
    history = {pid: orjson.loads(entry) for pid, entry in conn.execute("SELECT prompt_id, entry FROM history")}
    conn.close()
    status = "failed" if "status=failed" in query else None
    found = [jobs.history_job(pid, entry) for pid, entry in history.items()]
    if status:
        found = [j for j in found if j["status"] == status]
    found.sort(key=lambda j: j.get("create_time", 0), reverse=True)
    return found[:50]


async def timed(session: aiohttp.ClientSession, url: str, repeat: int = 15) -> tuple[float, dict]:
    times = []
    body: dict = {}
    for _ in range(repeat):
        started = time.perf_counter()
        async with session.get(url) as response:
            body = await response.json()
            assert response.status == 200, body
        times.append(time.perf_counter() - started)
    return statistics.median(times), body


async def main(count: int) -> None:
    base = Path(tempfile.mkdtemp(prefix="loom-bench-jobs-"))
    db = base / "user" / "loom-queue.sqlite3"
    db.parent.mkdir(parents=True)
    started = time.perf_counter()
    build(db, count)
    print(f"{count:,} history entries written (index kept by triggers) in {time.perf_counter() - started:.1f} s")

    baseline_started = time.perf_counter()
    comfyui_style(db, "")
    baseline = time.perf_counter() - baseline_started
    print(f"baseline, ComfyUI-style (every entry normalized, sorted, sliced): {baseline * 1000:.0f} ms per request")

    server = LoomServer(Registry(env=LoomEnv.at(base, device="cpu")),
                        ServerOptions(port=0, web_root=base / "web", max_history=count * 2), db_path=db)
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"{server.url}/api/jobs"
            cases = [("first page", "?limit=50"),
                     ("deep page", f"?limit=50&offset={count - 50}"),
                     ("failed only", "?status=failed&limit=50&offset=500"),
                     ("one workflow", "?workflow_id=wf-7&limit=50&offset=100"),
                     ("by duration", "?sort_by=execution_duration&limit=50"),
                     ("by duration, deep", f"?sort_by=execution_duration&sort_order=asc&limit=50"
                                           f"&offset={count // 2}")]
            print(f"{'page':<20}{'ms (median)':>12}{'vs baseline':>14}  jobs / total")
            for name, query in cases:
                seconds, body = await timed(session, url + query)
                print(f"{name:<20}{seconds * 1000:>12.2f}{baseline / seconds:>13.0f}x  "
                      f"{len(body['jobs'])} / {body['pagination']['total']:,}")
    finally:
        await server.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
