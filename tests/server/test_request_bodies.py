"""JSON bodies are read whole, however they arrive: in several writes with
pauses between them, chunked, or large (a 150 KB prompt, a 100k-node one);
past the limit they get 413, never a truncated parse and 400."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from typing import Any

from server.config import ServerOptions

from .conftest import text_prompt


async def _raw_request(port: int, head: bytes, parts: list[bytes], pause: float) -> tuple[int, dict[str, Any]]:
    """Send ``head`` then each of ``parts`` as its own write, ``pause`` seconds
    apart, on a plain socket; the status and JSON body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        for part in parts:
            await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head_text, _, body = raw.partition(b"\r\n\r\n")
    status = int(head_text.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head_text.lower():
        decoded, rest = b"", body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            decoded, rest = decoded + rest[:size], rest[size + 2:]
        body = decoded
    return status, json.loads(body)


def _head(port: int, extra: str) -> bytes:
    return (f"POST /prompt HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Connection: close\r\n{extra}\r\n").encode()


async def test_a_body_sent_in_two_writes_100ms_apart_is_read_whole(server):
    body = json.dumps({"prompt": text_prompt("x" * 1000)}).encode()
    assert len(body) > 1100
    port = server.server.port
    status, answer = await _raw_request(port, _head(port, f"Content-Length: {len(body)}\r\n"),
                                        [body[:300], body[300:]], pause=0.1)
    assert status == 200, answer
    entry = await server.wait_history(answer["prompt_id"])
    assert entry["outputs"]["3"]["text"] == ["X" * 1000]


async def test_a_body_trickled_in_many_writes_is_read_whole(server):
    body = json.dumps({"prompt": text_prompt("slow")}).encode()
    port = server.server.port
    parts = [body[i:i + 20] for i in range(0, len(body), 20)]
    status, answer = await _raw_request(port, _head(port, f"Content-Length: {len(body)}\r\n"), parts, pause=0.02)
    assert status == 200, answer


async def test_a_chunked_body_in_delayed_writes_is_read_whole(server):
    body = json.dumps({"prompt": text_prompt("chunked")}).encode()
    chunks = [body[:50], body[50:]]
    parts = [f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks] + [b"0\r\n\r\n"]
    port = server.server.port
    status, answer = await _raw_request(port, _head(port, "Transfer-Encoding: chunked\r\n"), parts, pause=0.1)
    assert status == 200, answer


async def test_a_chunked_body_over_the_limit_gets_413(running):
    run = await running(ServerOptions(port=0, max_json_size=4096, preview_interval=0.0))
    port = run.server.port
    body = json.dumps({"prompt": text_prompt("y" * 8000)}).encode()
    parts = [f"{len(body[i:i + 1000]):x}\r\n".encode() + body[i:i + 1000] + b"\r\n"
             for i in range(0, len(body), 1000)] + [b"0\r\n\r\n"]
    status, answer = await _raw_request(port, _head(port, "Transfer-Encoding: chunked\r\n"), parts, pause=0.01)
    assert status == 413
    assert answer["error"]["type"] == "body_too_large"
    assert "4096" in answer["error"]["message"]


def _post_with_http_client(port: int, body: bytes) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", "/prompt", body=body, headers={"Content-Type": "application/json"})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


async def test_a_150_kb_prompt_from_a_real_http_client_queues_every_time(server):
    port = server.server.port
    ids = []
    for n in range(5):
        body = json.dumps({"prompt": text_prompt(f"{n}" + "z" * 150_000)}).encode()
        status, answer = await asyncio.to_thread(_post_with_http_client, port, body)
        assert status == 200, answer
        ids.append(answer["prompt_id"])
    for prompt_id in ids:
        entry = await server.wait_history(prompt_id)
        assert len(entry["outputs"]["3"]["text"][0]) == 150_001


def hundred_thousand_nodes() -> dict[str, Any]:
    prompt: dict[str, Any] = {}
    for n in range(0, 100_000, 2):
        prompt[str(n)] = {"class_type": "Text", "inputs": {"value": f"v{n}"}}
        prompt[str(n + 1)] = {"class_type": "Show", "inputs": {"text": [str(n), 0]}}
    return prompt


async def test_a_100k_node_prompt_queues_and_the_server_answers_meanwhile(server):
    async with await server.post("/queue", {"pause": True}) as response:
        assert response.status == 200
    body = json.dumps({"prompt": hundred_thousand_nodes()}).encode()
    assert len(body) > 5_000_000  # under the default 32 MiB JSON limit
    started = time.perf_counter()
    post = asyncio.ensure_future(server.session.post(server.url + "/prompt", data=body,
                                                     headers={"Content-Type": "application/json"}))
    # Parsing and validating take seconds on a slow machine; other requests
    # are answered meanwhile (both run off the event loop).
    quick = []
    while not post.done():
        t0 = time.perf_counter()
        async with await server.session.get(server.url + "/prompt") as response:
            assert response.status == 200
        quick.append(time.perf_counter() - t0)
        await asyncio.sleep(0.05)
    response = await post
    answer = await response.json()
    elapsed = time.perf_counter() - started
    assert response.status == 200, answer
    queue = await server.get_json("/queue")
    pending = queue["queue_pending"]
    assert [item[1] for item in pending] == [answer["prompt_id"]]
    assert len(pending[0][2]) == 100_000
    print(f"100k-node prompt: {len(body) / 1e6:.1f} MB queued in {elapsed:.2f} s;"
          f" {len(quick)} requests answered meanwhile, slowest {max(quick, default=0) * 1000:.0f} ms")
