"""The queue and history API: order, front, delete, clear, pause, resume,
move, interrupt, retention."""

from __future__ import annotations

import asyncio

from server.config import ServerOptions

from .conftest import listen, sleep_prompt, text_prompt


async def _pending_ids(server) -> list[str]:
    queue = await server.get_json("/queue")
    return [item[1] for item in queue["queue_pending"]]


async def _paused_with(server, *tags: str, **extra) -> list[str]:
    async with await server.post("/queue", {"pause": True}) as response:
        assert (await response.json())["paused"] is True
    return [await server.queue(sleep_prompt(0.0, tag), **extra) for tag in tags]


async def test_post_prompt_answers_id_number_and_node_errors(server):
    async with await server.post("/prompt", {"prompt": text_prompt()}) as response:
        body = await response.json()
    assert response.status == 200
    assert set(body) == {"prompt_id", "number", "node_errors"}
    assert body["node_errors"] == {}


async def test_get_prompt_reports_queue_remaining(server):
    await _paused_with(server, "a", "b")
    assert await server.get_json("/prompt") == {"exec_info": {"queue_remaining": 2}}


async def test_queue_lists_pending_items_as_comfyui_tuples(server):
    [prompt_id] = await _paused_with(server, "a", client_id="me")
    queue = await server.get_json("/queue")
    assert queue["queue_running"] == []
    number, pid, prompt, extra, outputs = queue["queue_pending"][0]
    assert pid == prompt_id and prompt["1"]["class_type"] == "Sleep"
    # ComfyUI stamps create_time (ms) into extra_data; its jobs API sorts on it.
    assert extra == {"client_id": "me", "create_time": extra["create_time"]} and outputs == ["1"]
    assert isinstance(extra["create_time"], int)


async def test_pending_prompts_run_in_the_order_they_were_queued(server):
    ids = await _paused_with(server, "a", "b", "c")
    assert await _pending_ids(server) == ids


async def test_front_puts_a_prompt_before_the_others(server):
    ids = await _paused_with(server, "a", "b")
    front = await server.queue(sleep_prompt(0.0, "f"), front=True)
    assert await _pending_ids(server) == [front, *ids]


async def test_delete_removes_pending_prompts(server):
    a, b, c = await _paused_with(server, "a", "b", "c")
    async with await server.post("/queue", {"delete": [b]}) as response:
        assert (await response.json())["deleted"] == [b]
    assert await _pending_ids(server) == [a, c]


async def test_clear_empties_the_pending_queue(server):
    await _paused_with(server, "a", "b")
    async with await server.post("/queue", {"clear": True}) as response:
        assert response.status == 200
    assert await _pending_ids(server) == []


async def test_move_puts_a_pending_prompt_at_a_position(server):
    a, b, c = await _paused_with(server, "a", "b", "c")
    async with await server.post("/queue", {"move": {"prompt_id": c, "position": 0}}) as response:
        assert response.status == 200
    assert await _pending_ids(server) == [c, a, b]
    async with await server.post("/queue", {"move": {"prompt_id": c, "position": -1}}) as response:
        assert response.status == 200
    assert await _pending_ids(server) == [a, b, c]
    async with await server.post("/queue", {"move": {"prompt_id": a, "position": 1}}) as response:
        assert response.status == 200
    assert await _pending_ids(server) == [b, a, c]


async def test_moving_a_prompt_that_is_not_pending_is_a_404(server):
    async with await server.post("/queue", {"move": {"prompt_id": "nope", "position": 0}}) as response:
        assert response.status == 404
        assert (await response.json())["error"]["type"] == "not_pending"


async def test_a_paused_queue_runs_nothing_until_resumed(server):
    [prompt_id] = await _paused_with(server, "a")
    await asyncio.sleep(0.3)
    assert await server.get_json(f"/history/{prompt_id}") == {}
    async with await server.post("/queue", {"resume": True}) as response:
        assert (await response.json())["paused"] is False
    entry = await server.wait_history(prompt_id)
    assert entry["status"]["completed"] is True


async def test_interrupt_stops_the_running_prompt_and_tells_its_client(server):
    # Who else hears it: tests/server/test_progress_isolation.py (ComfyUI's rules).
    listener = await listen(server)
    prompt_id = await server.queue(sleep_prompt(10.0), listener.client_id)
    await server.wait_running(prompt_id)
    async with await server.post("/interrupt") as response:
        assert (await response.json())["interrupted"] is True
    messages = await listener.until_done(prompt_id)
    assert "execution_interrupted" in [m["type"] for m in messages]
    entry = (await server.get_json(f"/history/{prompt_id}"))[prompt_id]
    assert entry["status"] == {**entry["status"], "status_str": "error", "completed": False}


async def test_interrupt_naming_another_prompt_leaves_the_running_one(server):
    prompt_id = await server.queue(sleep_prompt(0.5))
    await server.wait_running(prompt_id)
    async with await server.post("/interrupt", {"prompt_id": "someone-else"}) as response:
        assert (await response.json())["interrupted"] is False
    entry = await server.wait_history(prompt_id)
    assert entry["status"]["status_str"] == "success"


async def test_the_next_prompt_runs_after_an_interrupted_one(server):
    first = await server.queue(sleep_prompt(10.0))
    second = await server.queue(sleep_prompt(0.0, "next"))
    await server.wait_running(first)
    async with await server.post("/interrupt"):
        pass
    entry = await server.wait_history(second)
    assert entry["outputs"] == {"1": {"text": ["next"]}}


async def test_history_max_items_returns_the_newest_oldest_first(server):
    ids = [await server.queue(text_prompt(f"v{n}")) for n in range(4)]
    for prompt_id in ids:
        await server.wait_history(prompt_id)
    history = await server.get_json("/history?max_items=2")
    assert list(history) == ids[2:]
    assert list(await server.get_json("/history")) == ids


async def test_history_delete_and_clear(server):
    ids = [await server.queue(text_prompt(f"d{n}")) for n in range(3)]
    for prompt_id in ids:
        await server.wait_history(prompt_id)
    async with await server.post("/history", {"delete": [ids[0]]}) as response:
        assert response.status == 200
    assert list(await server.get_json("/history")) == ids[1:]
    async with await server.post("/history", {"clear": True}) as response:
        assert response.status == 200
    assert await server.get_json("/history") == {}


async def test_unknown_history_entry_is_an_empty_object(server):
    assert await server.get_json("/history/not-a-prompt") == {}


async def test_history_keeps_only_max_history_entries(running, tmp_path):
    run = await running(ServerOptions(max_history=2, web_root=tmp_path))
    ids = [await run.queue(text_prompt(f"r{n}")) for n in range(4)]
    await run.wait_history(ids[-1])  # they run in order: the last finishes last
    assert list(await run.get_json("/history")) == ids[2:]


async def test_a_chosen_prompt_id_is_used_and_a_duplicate_refused(server):
    await _paused_with(server)
    async with await server.post("/prompt", {"prompt": text_prompt(), "prompt_id": "mine-1"}) as response:
        assert (await response.json())["prompt_id"] == "mine-1"
    async with await server.post("/prompt", {"prompt": text_prompt(), "prompt_id": "mine-1"}) as response:
        assert response.status == 409


async def test_every_route_is_also_served_under_api(server):
    assert await server.get_json("/api/prompt") == await server.get_json("/prompt")
    async with await server.post("/api/prompt", {"prompt": text_prompt("api")}) as response:
        assert response.status == 200
        prompt_id = (await response.json())["prompt_id"]
    await server.wait_history(prompt_id)
    assert prompt_id in await server.get_json("/api/history")


async def test_free_with_unload_models_drops_cached_results(server):
    listener = await listen(server)
    await listener.until_done(await server.queue(text_prompt("warm"), listener.client_id))
    async with await server.post("/free", {"unload_models": True, "free_memory": True}) as response:
        assert await response.json() == {"unload_models": True, "free_memory": True}
    messages = await listener.until_done(await server.queue(text_prompt("warm"), listener.client_id))
    ran = [m["data"]["node"] for m in messages if m["type"] == "executing" and m["data"]["node"]]
    assert ran == ["1", "2", "3"]


async def test_a_ui_workflow_can_be_posted_instead_of_a_prompt(server):
    workflow = {
        "last_node_id": 2, "last_link_id": 1, "version": 0.4,
        "nodes": [
            {"id": 1, "type": "Text", "mode": 0, "inputs": [],
             "outputs": [{"name": "STRING", "type": "STRING", "links": [1]}], "widgets_values": ["from ui"]},
            {"id": 2, "type": "Show", "mode": 0, "inputs": [{"name": "text", "type": "STRING", "link": 1}],
             "outputs": [], "widgets_values": []},
        ],
        "links": [[1, 1, 0, 2, 0, "STRING"]],
    }
    async with await server.post("/prompt", {"workflow": workflow}) as response:
        body = await response.json()
    assert response.status == 200, body
    entry = await server.wait_history(body["prompt_id"])
    assert entry["outputs"] == {"2": {"text": ["from ui"]}}
