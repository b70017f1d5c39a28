"""What a client hears over the websocket while its prompt runs."""

from __future__ import annotations

import asyncio
import struct

from .conftest import listen, sleep_prompt, text_prompt


def _types(messages):
    return [(m["type"], (m["data"] or {}).get("node")) for m in messages]


async def test_connecting_sends_status_with_the_client_id_as_sid(server):
    ws = await server.session.ws_connect(server.ws_url("abc123"))
    first = await ws.receive_json(timeout=5)
    assert first == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "abc123"}}
    await ws.close()


async def test_connecting_without_client_id_gets_a_fresh_sid(server):
    ws = await server.session.ws_connect(f"ws://127.0.0.1:{server.server.port}/ws")
    first = await ws.receive_json(timeout=5)
    assert len(first["data"]["sid"]) >= 16
    await ws.close()


async def test_a_run_sends_comfyui_message_sequence(server):
    listener = await listen(server)
    prompt_id = await server.queue(text_prompt("abc"), listener.client_id)
    # progress_state messages come between these (tests/server/test_progress_isolation.py)
    messages = [m for m in await listener.until_done(prompt_id) if m["type"] != "progress_state"]
    assert _types(messages) == [
        ("execution_start", None),
        ("execution_cached", None),
        ("executing", "1"),
        ("executing", "2"),
        ("executing", "3"),
        ("executed", "3"),
        ("execution_success", None),
        ("executing", None),
    ]
    assert messages[1]["data"]["nodes"] == []
    assert messages[5]["data"]["output"] == {"text": ["ABC"]}
    assert all(m["data"]["prompt_id"] == prompt_id for m in messages)


async def test_a_cached_rerun_reports_every_node_cached_and_executes_none(server):
    listener = await listen(server)
    first = await server.queue(text_prompt("same"), listener.client_id)
    await listener.until_done(first)
    again = await server.queue(text_prompt("same"), listener.client_id)
    messages = await listener.until_done(again)
    cached = next(m for m in messages if m["type"] == "execution_cached")
    assert sorted(cached["data"]["nodes"]) == ["1", "2", "3"]
    assert not [m for m in messages if m["type"] == "executing" and m["data"]["node"] is not None]
    assert [m["type"] for m in messages][-2:] == ["execution_success", "executing"]


async def test_changing_one_input_reruns_only_what_depends_on_it(server):
    listener = await listen(server)
    await listener.until_done(await server.queue(text_prompt("one"), listener.client_id))
    prompt = text_prompt("one")
    prompt["3"]["inputs"]["text"] = ["1", 0]  # Show now reads Text directly
    messages = await listener.until_done(await server.queue(prompt, listener.client_id))
    executed = [m["data"]["node"] for m in messages if m["type"] == "executing" and m["data"]["node"]]
    assert executed == ["3"]


async def test_history_has_the_outputs_once_success_is_announced(server):
    listener = await listen(server)
    prompt_id = await server.queue(text_prompt("kept"), listener.client_id)
    await listener.until_done(prompt_id)
    history = await server.get_json(f"/history/{prompt_id}")
    entry = history[prompt_id]
    assert entry["outputs"] == {"3": {"text": ["KEPT"]}}
    assert entry["status"]["status_str"] == "success"
    assert entry["status"]["completed"] is True
    assert entry["prompt"][1] == prompt_id
    assert entry["prompt"][3]["client_id"] == listener.client_id
    assert entry["prompt"][4] == ["3"]
    assert [m[0] for m in entry["status"]["messages"]][0] == "execution_start"


async def test_progress_messages_carry_node_value_and_max(server):
    listener = await listen(server)
    prompt_id = await server.queue(sleep_prompt(0.2), listener.client_id)
    messages = await listener.until_done(prompt_id)
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert progress[-1] == {"value": 20, "max": 20, "prompt_id": prompt_id, "node": "1"}


async def test_previews_arrive_as_binary_frames_in_comfyui_layout(server):
    listener = await listen(server)
    prompt = {"1": {"class_type": "Previews", "inputs": {"count": 3, "pause": 0.05}}}
    prompt_id = await server.queue(prompt, listener.client_id)
    await listener.until_done(prompt_id)
    assert listener.binary, "no preview frames arrived"
    event, image_type = struct.unpack(">II", listener.binary[0][:8])
    assert (event, image_type) == (1, 2)
    assert listener.binary[0][8:16] == b"\x89PNG\r\n\x1a\n"


async def test_previews_are_throttled_to_the_configured_interval(running, tmp_path):
    from server.config import ServerOptions

    run = await running(ServerOptions(preview_interval=10.0, web_root=tmp_path))
    listener = await listen(run)
    prompt = {"1": {"class_type": "Previews", "inputs": {"count": 5, "pause": 0.0}}}
    await listener.until_done(await run.queue(prompt, listener.client_id))
    assert len(listener.binary) == 1


async def test_an_execution_error_reaches_the_client_and_history(server):
    listener = await listen(server)
    prompt_id = await server.queue({"1": {"class_type": "Fail", "inputs": {"message": "kaputt"}}},
                                   listener.client_id)
    messages = await listener.until_done(prompt_id)
    error = next(m for m in messages if m["type"] == "execution_error")["data"]
    assert error["node_id"] == "1" and error["node_type"] == "Fail"
    assert error["exception_message"] == "kaputt"
    entry = (await server.get_json(f"/history/{prompt_id}"))[prompt_id]
    assert entry["status"]["status_str"] == "error"
    assert entry["status"]["completed"] is False


async def test_events_of_a_prompt_go_only_to_the_client_that_queued_it(server):
    mine = await listen(server)
    other = await listen(server)
    prompt_id = await server.queue(text_prompt("private"), mine.client_id)
    await mine.until_done(prompt_id)
    await asyncio.sleep(0.1)
    leaked = []
    while True:
        try:
            message = await other.next_json(timeout=0.2)
        except asyncio.TimeoutError:
            break
        if message["type"] != "status":
            leaked.append(message)
    assert leaked == []


async def test_queue_changes_are_broadcast_as_status(server):
    watcher = await listen(server)
    await server.queue(sleep_prompt(0.1))
    statuses = []
    while len(statuses) < 2:
        message = await watcher.next_json()
        if message["type"] == "status":
            statuses.append(message["data"]["status"]["exec_info"]["queue_remaining"])
    assert statuses[0] == 1
    assert 0 in statuses or statuses[-1] <= 1


async def test_reconnecting_mid_run_is_told_the_executing_node(server):
    listener = await listen(server, "tab-1")
    prompt_id = await server.queue(sleep_prompt(1.5), "tab-1")
    while True:
        message = await listener.next_json()
        if message["type"] == "executing" and message["data"]["node"] == "1":
            break
    await listener.ws.close()
    again = await server.session.ws_connect(server.ws_url("tab-1"))
    first = await again.receive_json(timeout=5)
    second = await again.receive_json(timeout=5)
    assert first["type"] == "status"
    assert second == {"type": "executing", "data": {"node": "1", "display_node": "1", "prompt_id": prompt_id}}
    await again.close()
