"""The worker runs the next prompt while the last one's history row commits,
and clients still hear prompts finish and start in order."""

from __future__ import annotations

import asyncio
import threading

from .conftest import listen, sleep_prompt, text_prompt

CANONICAL = ["execution_start", "execution_cached", "executing", "executing", "executing",
             "executed", "execution_success", "executing"]


def hold_commits(store, prompt_id: str) -> threading.Event:
    """Block the store's writer just before ``prompt_id`` moves to history."""
    release = threading.Event()
    complete = store.complete

    def held(entry):
        if entry.item.prompt_id == prompt_id:
            store._submit(lambda conn: release.wait(10))
        return complete(entry)

    store.complete = held
    return release


async def running_ids(server) -> set[str]:
    queue = await server.get_json("/queue")
    return {item[1] for item in queue["queue_running"]}


async def test_the_next_prompt_runs_while_the_last_one_is_being_committed(server):
    first = await server.queue(sleep_prompt(0.3, "first"))
    release = hold_commits(server.server.store, first)
    second = await server.queue(text_prompt("second"))
    try:
        for _ in range(500):
            if await running_ids(server) == {first, second}:
                break
            await asyncio.sleep(0.01)
        # The first stays listed until its row is in history (a client polling
        # /queue then /history never misses it); the second is already taken.
        assert await running_ids(server) == {first, second}
        assert first not in await server.get_json(f"/history/{first}")
    finally:
        release.set()
    await server.wait_history(second)
    assert first in await server.get_json(f"/history/{first}")


async def test_a_prompt_is_heard_starting_only_after_the_previous_one_is_announced(server):
    listener = await listen(server)
    first = await server.queue(sleep_prompt(0.3, "first"), listener.client_id)
    release = hold_commits(server.server.store, first)
    second = await server.queue(text_prompt("after"), listener.client_id)
    await asyncio.sleep(0.5)  # the second has run meanwhile, unheard
    release.set()
    heard = await listener.until_done(second)
    order = [(m["type"], m["data"].get("prompt_id")) for m in listener.messages
             if m["type"] != "status" and (m.get("data") or {}).get("prompt_id") in (first, second)]
    done_first = max(i for i, (_, pid) in enumerate(order) if pid == first)
    start_second = order.index(("execution_start", second))
    assert done_first < start_second
    assert [m["type"] for m in heard if m["type"] != "progress_state"] == CANONICAL


async def test_many_quick_prompts_are_each_heard_whole_and_in_queue_order(server):
    listener = await listen(server)
    ids = [await server.queue(text_prompt(f"p{i}"), listener.client_id) for i in range(12)]
    await listener.until_done(ids[-1])
    per_prompt = [(m["type"], m["data"]["prompt_id"]) for m in listener.messages
                  if m["type"] != "status" and "prompt_id" in (m.get("data") or {})]
    sequence = [pid for _, pid in per_prompt]
    # Each prompt's messages are contiguous, and prompts follow queue order.
    runs = [pid for i, pid in enumerate(sequence) if i == 0 or sequence[i - 1] != pid]
    assert runs == ids
    for prompt_id in ids:
        assert [kind for kind, pid in per_prompt if pid == prompt_id and kind != "progress_state"] == CANONICAL
