"""``GET /history?max_items=N&offset=K`` returns ComfyUI's window
(execution.PromptQueue.get_history; server.py passes offset=-1 when absent):
entries oldest first; ``offset`` counts from the oldest; without it,
``max_items`` gives the newest N; an offset past the end gives ``{}``."""

from __future__ import annotations

import pytest

from .conftest import text_prompt


@pytest.fixture
async def five(server):
    ids = [await server.queue(text_prompt(f"h{n}")) for n in range(5)]
    for prompt_id in ids:
        await server.wait_history(prompt_id)
    return server, ids


async def test_history_offset_and_max_items_give_comfyuis_window_oldest_first(five):
    server, ids = five
    assert list(await server.get_json("/history?max_items=2&offset=1")) == ids[1:3]
    assert list(await server.get_json("/history?offset=3")) == ids[3:]
    assert list(await server.get_json("/history?max_items=2")) == ids[3:]
    assert list(await server.get_json("/history?max_items=2&offset=-1")) == ids[3:]
    assert list(await server.get_json("/history?max_items=9")) == ids
    assert list(await server.get_json("/history?max_items=0")) == []


async def test_history_offset_past_the_end_is_an_empty_object(five):
    server, ids = five
    assert await server.get_json("/history?offset=5") == {}
    assert await server.get_json("/history?max_items=3&offset=50") == {}
