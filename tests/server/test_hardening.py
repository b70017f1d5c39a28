"""Issue 16's hardening that a single request cannot show: slow and idle
connections, websocket clients that stop reading, the order of many queue
moves, secrets in /system_stats, downloads that resolve to this machine,
images too large to decode in a running prompt."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import sqlite3
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from PIL import Image

import nodes
from nodes.image_bounds import ImageTooLarge
from server.config import ServerOptions
from server.routes_info import masked_argv
from server.security import _same_origin

from .conftest import Running, make_registry, sleep_prompt
from .test_hostile_requests import bomb_png


def _options(tmp_path: Path, **extra) -> ServerOptions:
    return ServerOptions(port=0, web_root=tmp_path / "web", preview_interval=0.0, **extra)


def _connect(run: Running) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", run.server.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _closed_by_server(sock: socket.socket, deadline: float) -> float | None:
    """Seconds until the server closed ``sock`` (reading what it sent), or None."""
    start = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - start < deadline:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - start
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
    return None


# ------------------------------------------------------------------ 9. timeouts
async def test_a_slowloris_header_is_cut_off_within_the_keepalive_timeout(running, tmp_path):
    run = await running(_options(tmp_path, keepalive_timeout=1.0))

    def slowloris() -> tuple[float | None, int]:
        sock = _connect(run)
        sock.sendall(f"GET /queue HTTP/1.1\r\nHost: 127.0.0.1:{run.server.port}\r\n".encode())
        start = time.monotonic()
        sent = 0
        try:
            # One more header byte every 0.1 s: never a whole request head.
            while time.monotonic() - start < 6:
                try:
                    sock.sendall(b"X-a: b\r\n"[sent % 8:sent % 8 + 1])
                    sent += 1
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - start, sent
                sock.settimeout(0.1)
                try:
                    if sock.recv(65536) == b"":
                        return time.monotonic() - start, sent
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    return time.monotonic() - start, sent
            return None, sent
        finally:
            sock.close()

    closed_after, sent = await asyncio.to_thread(slowloris)
    assert closed_after is not None, f"still open after 6 s and {sent} header bytes"
    assert 0.8 < closed_after < 3.0
    async with await run.get("/queue") as response:  # the server itself is fine
        assert response.status == 200


async def test_an_idle_keep_alive_connection_is_closed(running, tmp_path):
    run = await running(_options(tmp_path, keepalive_timeout=1.0))

    def idle() -> tuple[bytes, float | None]:
        sock = _connect(run)
        try:
            sock.sendall(f"GET /prompt HTTP/1.1\r\nHost: 127.0.0.1:{run.server.port}\r\n\r\n".encode())
            first = sock.recv(65536)
            return first, _closed_by_server(sock, 6)
        finally:
            sock.close()

    first, closed_after = await asyncio.to_thread(idle)
    assert first.startswith(b"HTTP/1.1 200")
    assert closed_after is not None and closed_after < 3.0


async def test_a_connection_that_never_sends_is_closed(running, tmp_path):
    run = await running(_options(tmp_path, keepalive_timeout=1.0))

    def silent() -> float | None:
        sock = _connect(run)
        try:
            return _closed_by_server(sock, 6)
        finally:
            sock.close()

    closed_after = await asyncio.to_thread(silent)
    assert closed_after is not None and closed_after < 3.0


# --------------------------------------------------- 4. websocket clients that do not read
def _ws_handshake(run: Running, client_id: str) -> socket.socket:
    """A websocket client that completes the handshake and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills fast
    sock.connect(("127.0.0.1", run.server.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: 127.0.0.1:{run.server.port}\r\n"
                  f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


async def _wait_gone(run: Running, client_id: str, timeout: float) -> float | None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if client_id not in run.server.hub.clients:
            return time.monotonic() - start
        await asyncio.sleep(0.05)
    return None


async def test_a_websocket_client_that_never_reads_is_disconnected_after_the_stall_timeout(running, tmp_path):
    # A large byte bound: only the stall timeout can end this client.
    run = await running(_options(tmp_path, ws_stall_timeout=1.0, ws_outbox_bytes=1024 * 1024 * 1024))
    sock = await asyncio.to_thread(_ws_handshake, run, "sleeper")
    try:
        while "sleeper" not in run.server.hub.clients:
            await asyncio.sleep(0.01)
        # 24 MB in 100 messages: far beyond what the socket buffers take, far
        # below the old limit of 4096 queued messages.
        started = time.monotonic()
        for index in range(100):
            run.server.hub.post("blob", {"n": index, "data": "x" * 240_000}, "sleeper")
        gone = await _wait_gone(run, "sleeper", 10)
        assert gone is not None, "a client that reads nothing is still connected"
        assert time.monotonic() - started < 6
        closed = await asyncio.to_thread(_closed_by_server, sock, 5)
        assert closed is not None, "the server forgot the client but left its socket open"
    finally:
        sock.close()
    async with await run.get("/queue") as response:
        assert response.status == 200


async def test_a_websocket_outbox_is_bounded_in_bytes(running, tmp_path):
    # A long stall timeout: only the byte bound can end this client, at once.
    run = await running(_options(tmp_path, ws_stall_timeout=60.0, ws_outbox_bytes=2 * 1024 * 1024))
    sock = await asyncio.to_thread(_ws_handshake, run, "hoarder")
    try:
        while "hoarder" not in run.server.hub.clients:
            await asyncio.sleep(0.01)
        client = run.server.hub.clients["hoarder"]
        for index in range(200):  # 20 MB: 10x the bound, 1/20 of the message-count bound
            run.server.hub.post("blob", {"n": index, "data": "y" * 100_000}, "hoarder")
        gone = await _wait_gone(run, "hoarder", 5)
        assert gone is not None, "an outbox of 20 MB was kept"
        assert client.outbox_bytes <= 2 * 1024 * 1024
        assert await asyncio.to_thread(_closed_by_server, sock, 8) is not None
    finally:
        sock.close()


async def test_a_reading_websocket_client_is_not_disconnected(running, tmp_path):
    run = await running(_options(tmp_path, ws_stall_timeout=1.0, ws_outbox_bytes=4 * 1024 * 1024))
    ws = await run.session.ws_connect(run.ws_url("reader"))
    try:
        received = 0
        for index in range(30):
            run.server.hub.post("blob", {"n": index, "data": "z" * 100_000}, "reader")
            while True:
                message = await asyncio.wait_for(ws.receive(), 10)
                assert message.type == aiohttp.WSMsgType.TEXT
                if '"blob"' in message.data:
                    received += 1
                    break
            await asyncio.sleep(0.05)
        assert received == 30 and "reader" in run.server.hub.clients
    finally:
        await ws.close()


# ------------------------------------------------------------------ 8. origins
@pytest.mark.parametrize("origin, host, scheme, same", [
    ("http://127.0.0.1", "127.0.0.1:8188", "http", False),
    ("https://localhost", "localhost:8188", "http", False),
    ("http://127.0.0.1:8188", "127.0.0.1:8188", "http", True),
    ("http://127.0.0.1", "127.0.0.1", "http", True),  # a server on port 80
    ("http://127.0.0.1", "127.0.0.1:80", "http", True),
    ("https://loom.example", "loom.example", "https", True),  # behind a TLS proxy on 443
    ("https://loom.example", "loom.example:8188", "http", False),
    ("http://LOCALHOST:8188", "localhost:8188", "http", True),
    ("http://127.0.0.1:8188", "localhost:8188", "http", False),
    ("http://127.0.0.1:99999", "127.0.0.1:8188", "http", False),
    ("null", "127.0.0.1:8188", "http", False),
])
def test_an_origin_is_the_servers_only_with_the_same_host_and_port(origin, host, scheme, same):
    assert _same_origin(origin, host, scheme) is same


# ------------------------------------------------------------------ 10. minor
def test_the_auth_token_is_masked_in_argv():
    argv = ["loom", "serve", "--auth-token", "s3cret", "--port", "1", "--auth-token=other", "--x=s3cret"]
    assert masked_argv(argv, "s3cret") == ["loom", "serve", "--auth-token", "***", "--port", "1",
                                           "--auth-token=***", "--x=***"]


async def test_system_stats_does_not_echo_the_auth_token(running, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["loom", "serve", "--auth-token", "hunter2-token", "--port", "0"])
    run = await running(_options(tmp_path, auth_token="hunter2-token"))
    async with await run.get("/system_stats", headers={"Authorization": "Bearer hunter2-token"}) as response:
        assert response.status == 200
        text = await response.text()
    assert "hunter2-token" not in text
    assert '"--auth-token","***"' in text


async def test_many_queue_moves_keep_a_strict_order_also_on_disk(running, tmp_path):
    run = await running(_options(tmp_path))
    async with await run.post("/queue", {"pause": True}) as response:
        assert response.status == 200
    ids = [await run.queue(sleep_prompt(0.0, tag=str(n))) for n in range(5)]
    # Moving into the same gap halves it each time: after ~52 moves the
    # midpoint equals a neighbour, and the numbers tied (1, 1.0, 1.0, 1.0).
    order = list(ids)
    for step in range(120):
        mover = order[-1] if step % 2 == 0 else order[-2]
        async with await run.post("/queue", {"move": {"prompt_id": mover, "position": 2}}) as response:
            assert response.status == 200, await response.text()
        order.remove(mover)
        order.insert(2, mover)
    queue = await run.get_json("/queue")
    pending = sorted(queue["queue_pending"], key=lambda item: item[0])
    numbers = [item[0] for item in pending]
    assert [item[1] for item in pending] == order
    assert all(a < b for a, b in zip(numbers, numbers[1:])), numbers
    with sqlite3.connect(run.server.db_path) as db:
        stored = [row[0] for row in db.execute("SELECT prompt_id FROM queue ORDER BY number, seq")]
    assert stored == order


async def test_a_download_from_a_name_that_resolves_to_loopback_is_refused(running, tmp_path, monkeypatch):
    from server.download_requests import DownloadError, DownloadRequest
    from server.model_downloads import Downloader

    from .test_model_downloads import ModelFileServer

    real_resolve = aiohttp.DefaultResolver.resolve

    async def rebinding_dns(self, host, port=0, family=socket.AF_INET):
        # models.example "resolves" to this machine, as a DNS-rebinding name would.
        if host == "models.example":
            return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET,
                     "proto": 0, "flags": socket.AI_NUMERICHOST}]
        return await real_resolve(self, host, port, family)

    monkeypatch.setattr(aiohttp.DefaultResolver, "resolve", rebinding_dns)
    run = await running(_options(tmp_path))
    with ModelFileServer() as files:
        url = files.serve("/m.safetensors")  # http://127.0.0.1:PORT/...
        port = url.split(":")[2].split("/")[0]
        sneaky = f"http://models.example:{port}/m.safetensors"
        downloader = Downloader(run.server.folders, retries=0, allow_private=False)
        with pytest.raises(DownloadError, match="resolves to 127.0.0.1, a private address"):
            await downloader.download(DownloadRequest(sneaky, "checkpoints", "m.safetensors"))
        assert files.requests == []  # refused before a byte was asked for
        # Allowed explicitly (loom models download, --allow-private-downloads), it downloads.
        allowed = Downloader(run.server.folders, retries=0, allow_private=True)
        result = await allowed.download(DownloadRequest(sneaky, "checkpoints", "m.safetensors"))
        assert result.size > 0 and len(files.requests) == 1


# ------------------------------------------------------------------ 4. LoadImage
async def test_loadimage_of_a_decompression_bomb_fails_the_prompt_with_a_clear_error(running, tmp_path):
    base = tmp_path / "base"
    registry = make_registry(base)
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    run = await running(_options(tmp_path), registry=registry, base=base)
    (base / "input").mkdir(parents=True, exist_ok=True)
    (base / "input" / "bomb.png").write_bytes(bomb_png())
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "bomb.png"}},
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    prompt_id = await run.queue(prompt)
    entry = await run.wait_history(prompt_id, timeout=60)
    assert entry["status"]["status_str"] == "error"
    text = str(entry["status"]["messages"])
    assert "12000x12000" in text and "--max-image-pixels" in text


def test_load_image_bounds_all_frames_together(tmp_path):
    from nodes.io import load_image

    frames = [Image.new("RGB", (100, 100), (n, 0, 0)) for n in range(10)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    image, _ = load_image(path, max_pixels=100 * 100 * 10)
    assert tuple(image.shape) == (10, 100, 100, 3)
    with pytest.raises(ImageTooLarge, match="over 10 frames"):
        load_image(path, max_pixels=100 * 100 * 9)


def test_serve_flags_reach_the_options():
    from server.cli import _options, parser

    args = parser().parse_args(["serve", "--max-image-pixels", "1000", "--keepalive-timeout", "5",
                                "--allow-private-downloads"])
    options = _options(args)
    assert (options.max_image_pixels, options.keepalive_timeout, options.allow_private_downloads) == (1000, 5.0, True)
    defaults = _options(parser().parse_args(["serve"]))
    assert (defaults.max_image_pixels, defaults.allow_private_downloads) == (64 * 1024 * 1024, False)


def test_load_image_mask_is_bounded_too(tmp_path):
    from nodes.masks import load_mask

    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png())
    with pytest.raises(ImageTooLarge, match="12000x12000"):
        load_mask(path, "alpha")


async def test_a_download_redirected_to_a_private_address_is_refused(running, tmp_path, monkeypatch):
    import http.server
    import threading

    import server.download_requests as download_requests
    from server.download_requests import DownloadError, DownloadRequest
    from server.model_downloads import Downloader

    asked: list[str] = []

    class Redirect(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            asked.append(self.path)
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.2:{self.server.server_address[1]}/m.safetensors")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    # Pretend 127.0.0.1 is a public host, so only the redirect's target is private.
    real = download_requests._private_ip
    monkeypatch.setattr(download_requests, "_private_ip", lambda text: text != "127.0.0.1" and real(text))
    try:
        run = await running(_options(tmp_path))
        downloader = Downloader(run.server.folders, retries=0, allow_private=False)
        url = f"http://127.0.0.1:{httpd.server_address[1]}/start.safetensors"
        with pytest.raises(DownloadError, match="127.0.0.2.*--allow-private-downloads"):
            await downloader.download(DownloadRequest(url, "checkpoints", "m.safetensors"))
        assert asked == ["/start.safetensors"]  # the redirect was never followed
    finally:
        httpd.shutdown()
        httpd.server_close()
