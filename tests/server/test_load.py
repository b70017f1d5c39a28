"""Many clients at once, slow clients, and a busy worker never starve the event loop."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from server.hub import OUTBOX_LIMIT, PREVIEW_BACKLOG, Client

from .conftest import listen, text_prompt
from .process import ServerProcess


async def test_twenty_clients_queuing_at_once_each_get_their_own_results(server):
    async def one_client(n: int) -> list[tuple[str, list[str]]]:
        listener = await listen(server, f"client-{n}")
        results = []
        ids = [await server.queue(text_prompt(f"c{n}p{k}"), listener.client_id) for k in range(3)]
        for k, prompt_id in enumerate(ids):
            messages = await listener.until_done(prompt_id, timeout=60)
            outputs = [m["data"]["output"]["text"][0] for m in messages if m["type"] == "executed"]
            results.append((messages[-2]["type"], outputs))
            assert outputs == [f"C{n}P{k}"]
        await listener.ws.close()
        return results

    results = await asyncio.gather(*(one_client(n) for n in range(20)))
    assert all(kind == "execution_success" for client in results for kind, _ in client)
    history = await server.get_json("/history")
    assert len(history) == 60


async def test_the_event_loop_answers_within_100ms_during_a_cpu_bound_job(tmp_path):
    """The issue's responsiveness requirement: /queue, /history and websocket
    pings stay under 100 ms while the worker thread computes in pure Python
    (holding the GIL, the worst case).  The server runs in its own process,
    as deployed, so the measuring client doesn't compete with it."""
    base = tmp_path / "base"
    (base / "custom_nodes" / "testnodes").mkdir(parents=True)
    (base / "custom_nodes" / "testnodes" / "__init__.py").write_text(
        "from tests.server.nodes_for_tests import TEST_NODES as LOOM_NODES\n")
    process = ServerProcess(base)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.post(process.url + "/prompt", json={
                    "prompt": {"1": {"class_type": "Busy", "inputs": {"seconds": 4.0}}}}) as response:
                prompt_id = (await response.json())["prompt_id"]
            # autoping off: the server's pong is handed to us instead of swallowed.
            ws = await session.ws_connect(process.url.replace("http", "ws") + "/ws", autoping=False)
            while True:
                async with session.get(process.url + "/queue") as response:
                    if (await response.json())["queue_running"]:
                        break
            timings = []
            for _ in range(10):
                for path in ("/queue", "/history", "/prompt"):
                    started = time.perf_counter()
                    async with session.get(process.url + path) as response:
                        await response.read()
                    timings.append((path, time.perf_counter() - started))
                started = time.perf_counter()
                await ws.ping()
                while (await ws.receive(timeout=1)).type != aiohttp.WSMsgType.PONG:
                    pass
                timings.append(("ws ping", time.perf_counter() - started))
                await asyncio.sleep(0.05)
            async with session.get(process.url + "/queue") as response:
                running = [item[1] for item in (await response.json())["queue_running"]]
            assert running == [prompt_id], "the job ended before the measurements"
            await ws.close()
    finally:
        process.stop()
    # The 90th percentile, not the maximum: on a shared, oversubscribed CI
    # machine the OS alone can stall any process for a scheduling slice; a
    # loop blocked by the job would fail every sample, not one in ten.
    ranked = sorted(timings, key=lambda t: t[1])
    p90 = ranked[int(len(ranked) * 0.9)]
    slowest = ranked[-1]
    assert p90[1] < 0.100, (f"90% of answers should take < 100 ms; p90 {p90[1] * 1000:.0f} ms,"
                            f" slowest {slowest[0]} {slowest[1] * 1000:.0f} ms")


async def test_a_client_that_stops_reading_is_dropped_without_stalling_others(server):
    stuck = await listen(server, "stuck")
    reader = await listen(server, "reader")
    hub = server.server.hub
    stuck_client = hub.clients["stuck"]
    stuck_client.closing = True  # its sender stops: as if the socket never drained
    stuck_client.outbox.clear()
    stuck_client.closing = False
    stuck_client.task.cancel()
    for n in range(OUTBOX_LIMIT + 10):
        hub.post("custom.flood", {"n": n}, "stuck")
    prompt_id = await server.queue(text_prompt("still works"), reader.client_id)
    messages = await reader.until_done(prompt_id)
    assert messages[-2]["type"] == "execution_success"
    assert "stuck" not in hub.clients
    await stuck.ws.close()


def test_a_newer_preview_replaces_an_undelivered_one():
    client = Client("c", ws=None)
    client.offer('{"type": "progress"}')
    client.offer(b"old preview")
    client.offer(b"new preview")
    assert list(client.outbox) == ['{"type": "progress"}', b"new preview"]


def test_previews_are_dropped_while_a_client_is_behind_on_messages():
    client = Client("c", ws=None)
    for n in range(PREVIEW_BACKLOG):
        client.offer(f'{{"n": {n}}}')
    assert client.offer(b"preview") is True
    assert b"preview" not in client.outbox
    assert len(client.outbox) == PREVIEW_BACKLOG
