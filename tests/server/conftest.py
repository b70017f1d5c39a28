"""A real Loom server on an ephemeral port, and clients that talk to it."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from engine.registry import Registry
from nodes.runtime import LoomEnv
from server.app import LoomServer
from server.config import ServerOptions

from .nodes_for_tests import TEST_NODES


def make_registry(base: Path) -> Registry:
    registry = Registry(env=LoomEnv.at(base, device="cpu"))
    registry.add_all(TEST_NODES, origin="tests")
    return registry


def text_prompt(value: str = "hello") -> dict[str, Any]:
    """Three nodes: Text → Upper → Show."""
    return {
        "1": {"class_type": "Text", "inputs": {"value": value}},
        "2": {"class_type": "Upper", "inputs": {"text": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"text": ["2", 0]}},
    }


def sleep_prompt(seconds: float = 0.5, tag: str = "") -> dict[str, Any]:
    return {"1": {"class_type": "Sleep", "inputs": {"seconds": seconds, "tag": tag}}}


@dataclass
class Running:
    server: LoomServer
    base: Path
    session: aiohttp.ClientSession
    options: ServerOptions
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    def ws_url(self, client_id: str) -> str:
        return f"ws://127.0.0.1:{self.server.port}/ws?clientId={client_id}"

    async def post(self, path: str, body: Any = None, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.session.post(self.url + path, json=body, **kwargs)

    async def get(self, path: str, **kwargs: Any) -> aiohttp.ClientResponse:
        return await self.session.get(self.url + path, **kwargs)

    async def get_json(self, path: str) -> Any:
        async with await self.get(path) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def queue(self, prompt: dict[str, Any], client_id: str | None = None, **extra: Any) -> str:
        body: dict[str, Any] = {"prompt": prompt, **extra}
        if client_id is not None:
            body["client_id"] = client_id
        async with await self.post("/prompt", body) as response:
            data = await response.json()
            assert response.status == 200, data
            return data["prompt_id"]

    async def wait_history(self, prompt_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            history = await self.get_json(f"/history/{prompt_id}")
            if prompt_id in history:
                return history[prompt_id]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"prompt {prompt_id} did not finish in {timeout} s")
            await asyncio.sleep(0.02)

    async def wait_running(self, prompt_id: str, timeout: float = 10.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            queue = await self.get_json("/queue")
            if any(item[1] == prompt_id for item in queue["queue_running"]):
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"prompt {prompt_id} never started")
            await asyncio.sleep(0.01)


class Listener:
    """A websocket client that records every message."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.messages: list[dict[str, Any]] = []
        self.binary: list[bytes] = []

    async def next_json(self, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.ws.receive(), timeout)
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                self.messages.append(data)
                return data
            if message.type == aiohttp.WSMsgType.BINARY:
                self.binary.append(message.data)
                continue
            raise AssertionError(f"websocket ended: {message.type} {message.data!r}")

    async def until_done(self, prompt_id: str, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Messages about ``prompt_id`` up to ``executing`` with ``node: null``."""
        seen = []
        while True:
            message = await self.next_json(timeout)
            data = message.get("data") or {}
            if data.get("prompt_id") == prompt_id:
                seen.append(message)
                if message["type"] == "executing" and data.get("node") is None:
                    return seen


@pytest.fixture
async def running(tmp_path: Path):
    """A started server with the test nodes; stopped afterwards."""
    servers: list[Running] = []

    async def start(options: ServerOptions | None = None, registry: Registry | None = None,
                    base: Path | None = None) -> Running:
        base = base or tmp_path / f"base{len(servers)}"
        options = options or ServerOptions(port=0, web_root=base / "web", preview_interval=0.0)
        options.port = 0
        server = LoomServer(registry or make_registry(base), options)
        await server.start()
        session = aiohttp.ClientSession()
        run = Running(server, base, session, options)
        servers.append(run)
        return run

    yield start
    for run in servers:
        await run.session.close()
        await run.server.stop()


@pytest.fixture
async def server(running) -> Running:
    return await running()


async def listen(run: Running, client_id: str | None = None) -> Listener:
    """Connect a websocket and read its initial ``status``."""
    client_id = client_id or uuid.uuid4().hex
    ws = await run.session.ws_connect(run.ws_url(client_id), headers=run.headers)
    listener = Listener(ws)
    first = await listener.next_json()
    assert first["type"] == "status"
    listener.client_id = client_id  # type: ignore[attr-defined]
    return listener
