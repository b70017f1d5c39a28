"""Webhooks against a real server and a real receiver on 127.0.0.1: signed
deliveries when jobs end, per job and server-wide, retries with backoff,
a delivery still owed surviving a restart, private targets refused."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from server.config import ServerOptions
from server.webhooks import BadWebhook, check_webhook_url

from .conftest import text_prompt

SECRET = "hook-secret"


@dataclass
class Receiver:
    """An HTTP endpoint that records what it is sent; answers ``failures``
    times with 503 before it accepts."""

    failures: int = 0
    calls: list[dict[str, Any]] = field(default_factory=list)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    runner: Any = None
    got: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        call = {"headers": dict(request.headers), "body": body, "json": json.loads(body)}
        self.calls.append(call)
        if self.failures > 0:
            self.failures -= 1
            return web.Response(status=503)
        self.accepted.append(call)
        self.got.set()
        return web.Response(text="ok")

    async def start(self) -> "Receiver":
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def wait(self, count: int = 1, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.accepted) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{len(self.accepted)} of {count} webhooks arrived; calls: {len(self.calls)}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        await self.runner.cleanup()


@pytest.fixture
async def receiver():
    made: list[Receiver] = []

    async def make(failures: int = 0) -> Receiver:
        r = await Receiver(failures=failures).start()
        made.append(r)
        return r

    yield make
    for r in made:
        await r.stop()


def _options(tmp_path, **kw: Any) -> ServerOptions:
    return ServerOptions(port=0, web_root=tmp_path / "web", preview_interval=0.0, allow_private_webhooks=True,
                         webhook_secret=SECRET, webhook_backoff=0.1, **kw)


def _signed(call: dict[str, Any]) -> bool:
    expected = "sha256=" + hmac.new(SECRET.encode(), call["body"], hashlib.sha256).hexdigest()
    return hmac.compare_digest(call["headers"]["X-Loom-Signature"], expected)


async def test_a_job_webhook_is_signed_and_carries_the_result(running, receiver, tmp_path):
    hook = await receiver()
    server = await running(_options(tmp_path))
    prompt_id = await server.queue(text_prompt("hooked"), extra_data={"webhook": hook.url})
    await hook.wait()
    call = hook.accepted[0]
    assert _signed(call)
    body = call["json"]
    assert body["event"] == "job.completed" and body["prompt_id"] == prompt_id
    assert body["job"]["status"] == "completed" and body["job"]["outputs"] == {"3": {"text": ["HOOKED"]}}
    assert call["headers"]["Idempotency-Key"] == body["delivery_id"] == call["headers"]["X-Loom-Delivery"]
    # A job without a webhook owes none (and the server has no --webhook).
    other = await server.queue(text_prompt("quiet"))
    await server.wait_history(other)
    await asyncio.sleep(0.5)
    assert len(hook.calls) == 1


async def test_the_server_webhook_hears_every_job_failures_included(running, receiver, tmp_path):
    hook = await receiver()
    server = await running(_options(tmp_path, webhook_url=hook.url))
    ok = await server.queue(text_prompt("x"))
    bad = await server.queue({"1": {"class_type": "Fail", "inputs": {"message": "kaput"}}})
    await hook.wait(2)
    by_id = {c["json"]["prompt_id"]: c["json"] for c in hook.accepted}
    assert by_id[ok]["status"] == "completed"
    assert by_id[bad]["event"] == "job.failed"
    assert by_id[bad]["job"]["execution_error"]["exception_message"] == "kaput"


async def test_failed_deliveries_are_retried_with_the_same_idempotency_key(running, receiver, tmp_path):
    hook = await receiver(failures=2)
    server = await running(_options(tmp_path))
    await server.queue(text_prompt("retry"), extra_data={"webhook": hook.url})
    await hook.wait()
    assert len(hook.calls) == 3
    keys = {c["headers"]["Idempotency-Key"] for c in hook.calls}
    assert len(keys) == 1
    assert [c["headers"]["X-Loom-Attempt"] for c in hook.calls] == ["1", "2", "3"]
    conn = sqlite3.connect(server.server.db_path)
    for _ in range(200):  # the dispatcher forgets the delivery after the receiver's answer reaches it
        owed = conn.execute("SELECT COUNT(*) FROM webhook_outbox").fetchone()[0]
        if owed == 0:
            break
        await asyncio.sleep(0.05)
    conn.close()
    assert owed == 0  # delivered: no longer owed


async def test_a_delivery_still_owed_survives_a_restart(running, receiver, tmp_path):
    hook = await receiver(failures=10**6)  # down for the first server's whole life
    base = tmp_path / "base"
    first = await running(_options(tmp_path, webhook_max_attempts=50), base=base)
    prompt_id = await first.queue(text_prompt("later"), extra_data={"webhook": hook.url})
    await first.wait_history(prompt_id)
    while not hook.calls:
        await asyncio.sleep(0.02)
    await first.server.stop()
    owed_key = hook.calls[0]["headers"]["Idempotency-Key"]
    hook.failures = 0  # the receiver is back
    calls_before = len(hook.calls)
    second = await running(_options(tmp_path, webhook_max_attempts=50), base=base)
    await hook.wait()
    assert hook.accepted[0]["json"]["prompt_id"] == prompt_id
    assert hook.accepted[0]["headers"]["Idempotency-Key"] == owed_key
    assert len(hook.calls) > calls_before
    assert second.server is not first.server


async def test_a_delivery_is_given_up_after_max_attempts(running, receiver, tmp_path):
    hook = await receiver(failures=10**6)
    server = await running(_options(tmp_path, webhook_max_attempts=2))
    prompt_id = await server.queue(text_prompt("never"), extra_data={"webhook": hook.url})
    await server.wait_history(prompt_id)
    conn = sqlite3.connect(server.server.db_path)
    for _ in range(200):
        row = conn.execute("SELECT state, attempts, last_error FROM webhook_outbox").fetchone()
        if row and row[0] == "failed":
            break
        await asyncio.sleep(0.05)
    conn.close()
    assert row == ("failed", 2, "HTTP 503")
    assert len(hook.calls) == 2


async def test_private_webhook_targets_need_the_flag(server):
    for url in ("http://127.0.0.1:9/hook", "http://localhost/hook", "http://10.0.0.5/hook",
                "http://169.254.169.254/latest", "http://[::1]/x"):
        async with await server.post("/prompt", {"prompt": text_prompt(), "extra_data": {"webhook": url}}) as r:
            body = await r.json()
            assert r.status == 400, url
            assert body["error"]["type"] == "invalid_webhook"
            assert "--allow-private-webhooks" in body["error"]["message"]
    for url in ("ftp://example.com/x", "not a url", 5, "http://"):
        async with await server.post("/prompt", {"prompt": text_prompt(), "extra_data": {"webhook": url}}) as r:
            assert r.status == 400, url
    assert server.server.queue.remaining() == 0


def test_webhook_url_check():
    assert check_webhook_url("https://example.com/hook", False) == "https://example.com/hook"
    assert check_webhook_url("http://127.0.0.1:8/x", True) == "http://127.0.0.1:8/x"
    with pytest.raises(BadWebhook, match="private network"):
        check_webhook_url("http://192.168.1.2/x", False)


async def test_the_idempotency_key_names_the_job_and_the_target(running, receiver, tmp_path):
    hook = await receiver()
    server = await running(_options(tmp_path, webhook_url=hook.url))
    prompt_id = await server.queue(text_prompt("both"), extra_data={"webhook": hook.url})
    await hook.wait(2)
    assert sorted(c["headers"]["Idempotency-Key"] for c in hook.accepted) == [f"{prompt_id}.job",
                                                                              f"{prompt_id}.server"]
