"""What plug-ins reach through the server object (ComfyUI's ``PromptServer``
surface): their own routes, custom websocket events, the running client and node."""

from __future__ import annotations

import asyncio

from aiohttp import web

from server.app import LoomServer
from server.config import ServerOptions

from .conftest import listen, make_registry, sleep_prompt


async def test_routes_a_plugin_adds_before_start_are_served_also_under_api(tmp_path):
    server = LoomServer(make_registry(tmp_path), ServerOptions(port=0, web_root=tmp_path / "web"))

    @server.routes.get("/mypack/hello")
    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"hello": request.query.get("name", "world")})

    await server.start()
    try:
        import aiohttp

        async with aiohttp.ClientSession() as session:
            for path in ("/mypack/hello?name=loom", "/api/mypack/hello?name=loom"):
                async with session.get(f"http://127.0.0.1:{server.port}{path}") as response:
                    assert await response.json() == {"hello": "loom"}
    finally:
        await server.stop()


async def test_send_sync_from_another_thread_reaches_websocket_clients(server):
    listener = await listen(server, "pack-client")
    await asyncio.to_thread(server.server.send_sync, "mypack.progress", {"step": 3}, "pack-client")
    message = await listener.next_json()
    assert message == {"type": "mypack.progress", "data": {"step": 3}}


async def test_send_sync_without_sid_broadcasts(server):
    first, second = await listen(server), await listen(server)
    await asyncio.to_thread(server.server.send_sync, "mypack.hello", {"all": True})
    assert (await first.next_json())["type"] == "mypack.hello"
    assert (await second.next_json())["type"] == "mypack.hello"


async def test_client_id_and_last_node_id_describe_the_running_prompt(server):
    listener = await listen(server, "runner")
    assert server.server.client_id is None and server.server.last_node_id is None
    prompt_id = await server.queue(sleep_prompt(1.0), "runner")
    while True:
        message = await listener.next_json()
        if message["type"] == "executing" and message["data"]["node"] == "1":
            break
    assert server.server.client_id == "runner"
    assert server.server.last_node_id == "1"
    await server.post("/interrupt")
    await listener.until_done(prompt_id)
