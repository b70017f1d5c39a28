"""A client-chosen prompt_id is accepted once: queued, running or finished,
the same id again is a 409 — also when 40 POSTs of it race."""

from __future__ import annotations

import asyncio

from .conftest import sleep_prompt, text_prompt


async def test_forty_concurrent_posts_of_one_id_admit_exactly_one(server):
    # The queue runs meanwhile: the accepted one may finish (leave the queue
    # table for history) while later POSTs of its id are still arriving.
    for round_ in range(3):
        prompt_id = f"same-id-{round_}"

        async def post() -> int:
            body = {"prompt": text_prompt("race"), "prompt_id": prompt_id}
            async with await server.post("/prompt", body) as response:
                answer = await response.json()
                if response.status == 409:
                    assert answer["error"]["type"] == "duplicate_prompt_id"
                return response.status

        statuses = []
        for _ in range(40):  # staggered: some arrive after the first has run
            statuses.append(asyncio.ensure_future(post()))
            await asyncio.sleep(0.002)
        assert sorted(await asyncio.gather(*statuses)) == [200] + [409] * 39
        entry = await server.wait_history(prompt_id)
        assert entry["status"]["status_str"] == "success"
    await asyncio.sleep(0.3)
    assert (await server.get_json("/queue"))["queue_pending"] == []
    assert sorted(await server.get_json("/history")) == ["same-id-0", "same-id-1", "same-id-2"]


async def test_forty_simultaneous_posts_of_one_id_while_paused_admit_exactly_one(server):
    async with await server.post("/queue", {"pause": True}) as response:
        assert response.status == 200

    async def post() -> int:
        async with await server.post("/prompt", {"prompt": text_prompt("race"), "prompt_id": "same-id"}) as response:
            return response.status

    statuses = await asyncio.gather(*(post() for _ in range(40)))
    assert sorted(statuses) == [200] + [409] * 39
    queue = await server.get_json("/queue")
    assert [item[1] for item in queue["queue_pending"]] == ["same-id"]


async def test_a_finished_id_is_refused_and_its_history_kept(server):
    await server.queue(text_prompt("first"), prompt_id="done-id")
    before = await server.wait_history("done-id")
    async with await server.post("/prompt", {"prompt": text_prompt("second"), "prompt_id": "done-id"}) as response:
        body = await response.json()
        assert response.status == 409, body
        assert "in history" in body["error"]["message"]
    await asyncio.sleep(0.3)
    assert (await server.get_json("/history/done-id"))["done-id"] == before
    assert (await server.get_json("/queue"))["queue_pending"] == []


async def test_a_running_id_is_refused(server):
    await server.queue(sleep_prompt(1.0), prompt_id="busy-id")
    await server.wait_running("busy-id")
    async with await server.post("/prompt", {"prompt": text_prompt(), "prompt_id": "busy-id"}) as response:
        assert response.status == 409


async def test_concurrent_posts_of_a_finished_id_are_all_refused(server):
    await server.queue(text_prompt("x"), prompt_id="old-id")
    await server.wait_history("old-id")

    async def post() -> int:
        async with await server.post("/prompt", {"prompt": text_prompt("y"), "prompt_id": "old-id"}) as response:
            return response.status

    assert set(await asyncio.gather(*(post() for _ in range(20)))) == {409}


async def test_a_deleted_history_entry_frees_its_id(server):
    await server.queue(text_prompt("x"), prompt_id="reuse-id")
    await server.wait_history("reuse-id")
    async with await server.post("/history", {"delete": ["reuse-id"]}) as response:
        assert response.status == 200
    await server.queue(text_prompt("again"), prompt_id="reuse-id")
    entry = await server.wait_history("reuse-id")
    assert entry["outputs"]["3"]["text"] == ["AGAIN"]
