"""Which websocket gets which message of a prompt, as ComfyUI decides it
(execution.py's add_message and execute(), main.py's final ``executing``,
progress.py's WebUIProgressHandler, server.py's ``send_sync``: a message with no
sid goes to every socket)."""

from __future__ import annotations

import asyncio

from .conftest import listen, sleep_prompt, text_prompt

PREVIEWS = {"1": {"class_type": "Previews", "inputs": {"count": 3, "pause": 0.05}}}


async def drain(listener, quiet: float = 0.3) -> tuple[list[dict], int]:
    """Every JSON message (and the number of binary frames) until the socket is quiet."""
    seen = []
    binary = len(listener.binary)
    while True:
        try:
            seen.append(await listener.next_json(timeout=quiet))
        except asyncio.TimeoutError:
            return seen, len(listener.binary) - binary


async def test_progress_executing_and_previews_of_a_prompt_go_only_to_its_client(server):
    mine = await listen(server)
    other = await listen(server)
    prompt_id = await server.queue(PREVIEWS, mine.client_id)
    messages = await mine.until_done(prompt_id)
    kinds = {m["type"] for m in messages}
    assert {"executing", "progress", "progress_state", "executed", "execution_success"} <= kinds
    assert len(mine.binary) >= 1
    leaked, frames = await drain(other)
    assert [m["type"] for m in leaked if m["type"] != "status"] == [] and frames == 0


async def test_a_prompt_without_client_id_broadcasts_only_progress_and_previews(server):
    watcher = await listen(server)
    prompt_id = await server.queue(PREVIEWS)
    await server.wait_history(prompt_id)
    heard, frames = await drain(watcher)
    kinds = {m["type"] for m in heard} - {"status"}
    # ComfyUI: progress, progress_state and previews go out with sid=None (to
    # everyone); executing, executed and the prompt's start/end only to a client.
    assert kinds == {"progress", "progress_state"}
    assert frames >= 1


async def test_an_interruption_is_told_only_to_the_client_that_queued_the_prompt(server):
    mine = await listen(server)
    bystander = await listen(server)
    prompt_id = await server.queue(sleep_prompt(10.0), mine.client_id)
    await server.wait_running(prompt_id)
    async with await server.post("/interrupt") as response:
        assert (await response.json())["interrupted"] is True
    messages = await mine.until_done(prompt_id)
    assert "execution_interrupted" in [m["type"] for m in messages]
    heard, _ = await drain(bystander)
    assert "execution_interrupted" not in [m["type"] for m in heard]


async def test_an_interruption_of_a_prompt_without_client_id_is_told_to_everyone(server):
    watcher = await listen(server)
    prompt_id = await server.queue(sleep_prompt(10.0))
    await server.wait_running(prompt_id)
    async with await server.post("/interrupt"):
        pass
    await server.wait_history(prompt_id)
    heard, _ = await drain(watcher)
    assert [m["data"]["prompt_id"] for m in heard if m["type"] == "execution_interrupted"] == [prompt_id]


async def test_progress_state_messages_have_comfyuis_shape(server):
    mine = await listen(server)
    prompt_id = await server.queue(text_prompt("state"), mine.client_id)
    messages = await mine.until_done(prompt_id)
    states = [m["data"] for m in messages if m["type"] == "progress_state"]
    assert states and all(set(s) == {"prompt_id", "nodes"} and s["prompt_id"] == prompt_id for s in states)
    first = states[0]["nodes"]
    assert first == {"1": {"value": 0.0, "max": 1.0, "state": "running", "node_id": "1", "prompt_id": prompt_id,
                           "display_node_id": "1", "parent_node_id": None, "real_node_id": "1"}}
    last = states[-1]["nodes"]
    assert sorted(last) == ["1", "2", "3"]
    assert all(n["state"] == "finished" and n["value"] == n["max"] for n in last.values())
