"""Clients get strict JSON: browsers' JSON.parse rejects Python's NaN and
Infinity, so non-finite numbers arrive as null and bytes as a readable note."""

from __future__ import annotations

import json

import aiohttp

from engine.declare import Float, node
from engine.node import NodeOutput
from server.jsonio import dumps

from .conftest import listen, make_registry, sleep_prompt


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


@node(category="test", output_node=True)
def Unbounded(x: float = Float(1.0, min=float("-inf"), max=float("inf"))) -> None:
    return NodeOutput(ui={"text": [str(x)]})


async def _server_with_unbounded(running, tmp_path):
    registry = make_registry(tmp_path / "unbounded")
    registry.add_all([Unbounded], origin="tests")
    return await running(registry=registry, base=tmp_path / "unbounded")


async def test_object_info_of_a_node_with_infinite_bounds_is_strict_json(running, tmp_path):
    server = await _server_with_unbounded(running, tmp_path)
    for path in ("/object_info", "/object_info/Unbounded"):
        async with await server.get(path) as response:
            info = strict_loads(await response.text())
        options = info["Unbounded"]["input"]["required"]["x"][1]
        assert (options["min"], options["max"], options["default"]) == (None, None, 1.0)


async def test_a_queued_prompt_holding_nan_is_listed_as_strict_json(running, tmp_path):
    server = await _server_with_unbounded(running, tmp_path)
    blocker = await server.queue(sleep_prompt(1.0))
    await server.wait_running(blocker)
    waiting = await server.queue({"1": {"class_type": "Unbounded", "inputs": {"x": float("nan")}}})
    async with await server.get("/queue") as response:
        queue = strict_loads(await response.text())
    pending = {item[1]: item[2] for item in queue["queue_pending"]}
    assert pending[waiting]["1"]["inputs"]["x"] is None
    await server.post("/interrupt")
