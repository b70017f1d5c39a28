"""Clients get strict JSON: browsers' JSON.parse rejects Python's NaN and
Infinity, so non-finite numbers arrive as null and bytes as a readable note."""

from __future__ import annotations

import json

import aiohttp

from server.jsonio import dumps

from .conftest import listen


def strict_loads(text: str):
    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_are_written_as_null():
    assert strict_loads(dumps({"a": [float("nan"), float("-inf"), 2.0]})) == {"a": [None, None, 2.0]}


def test_values_json_cannot_hold_are_written_readably():
    assert strict_loads(dumps({"bytes": b"abc", "set": {1}, "key": {3: "int keys"}})) == \
        {"bytes": "<3 bytes>", "set": [1], "key": {"3": "int keys"}}


def test_integers_beyond_64_bits_are_still_written_exactly():
    assert strict_loads(dumps({"seed": 2 ** 70, "nan": float("nan")})) == {"seed": 2 ** 70, "nan": None}


async def test_a_node_showing_nan_reaches_the_client_as_strict_json(server):
    listener = await listen(server)
    prompt_id = await server.queue({"1": {"class_type": "NonFinite", "inputs": {}}}, listener.client_id)
    while True:
        message = await listener.ws.receive()
        assert message.type == aiohttp.WSMsgType.TEXT
        data = strict_loads(message.data)
        if data["type"] == "executed":
            break
    assert data["data"]["output"] == {"values": [None, None, 1.5], "raw": ["<2 bytes>"]}
    await server.wait_history(prompt_id)
    async with await server.get(f"/history/{prompt_id}") as response:
        history = strict_loads(await response.text())
    assert history[prompt_id]["outputs"]["1"]["values"] == [None, None, 1.5]
