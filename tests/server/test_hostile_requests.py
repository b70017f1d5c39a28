"""Hostile requests, one table: each row is a request a careless or hostile
client may send, and the 4xx (status and error text) a real server must
answer — never a 500, a hang, or gigabytes of memory.

A second, shorter table holds hostile requests whose right answer is a
success (a name too long for the disk is shortened, a split body is read
whole, a symlink loop in input/ hides only itself).

Every row runs against a real in-process server (the ``running`` fixture),
with the built-in nodes (LoadImage) and the test nodes, and an input folder
holding a decompression bomb, a symlink loop and a file that is not an image.
"""

from __future__ import annotations

import asyncio
import errno
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import pytest
from PIL import Image

import nodes
from server.config import ServerOptions

from .conftest import Running, make_registry, text_prompt

JSON_LIMIT = 512 * 1024
BOMB_SIDE = 12000


# --------------------------------------------------------------- the files
def png_bytes(size: tuple[int, int] = (8, 8), mode: str = "RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 20, 30, 128) if mode == "RGBA" else 0).save(out, format="PNG")
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


_BOMB: list[bytes] = []


def bomb_png() -> bytes:
    """A real, valid PNG of 12000x12000 greyscale zeros: about 140 KB on disk,
    144 MP (over 1 GiB as RGBA float) decoded."""
    if not _BOMB:
        row = b"\x00" * (BOMB_SIDE + 1)  # filter byte + one row of pixels
        packer = zlib.compressobj(9)
        compressed = b"".join(packer.compress(row) for _ in range(BOMB_SIDE)) + packer.flush()
        header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 0, 0, 0, 0)
        _BOMB.append(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", compressed)
                     + _chunk(b"IEND", b""))
    return _BOMB[0]


def multipart(fields: dict[str, str], image: bytes | None, filename: str = "x.png") -> tuple[bytes, str]:
    """A multipart body as a browser writes it: the file name in raw UTF-8."""
    boundary = "----loomhostile7MA4YWxkTrZu0gW"
    out = io.BytesIO()
    for name, value in fields.items():
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    if image is not None:
        out.write(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
                  "Content-Type: image/png\r\n\r\n".encode("utf-8", "surrogatepass"))
        out.write(image + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"


# ------------------------------------------------------------- the server
@dataclass
class Hostile:
    run: Running
    monkeypatch: Any

    @property
    def port(self) -> int:
        return self.run.server.port

    @property
    def input(self) -> Path:
        return self.run.base / "input"


@pytest.fixture
async def hostile(running, tmp_path, monkeypatch) -> Hostile:
    base = tmp_path / "base"
    registry = make_registry(base)
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    options = ServerOptions(port=0, web_root=tmp_path / "web", preview_interval=0.0, max_json_size=JSON_LIMIT)
    run = await running(options, registry=registry, base=base)
    folder = base / "input"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ok.png").write_bytes(png_bytes())
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "afile").write_text("not an image, and not a folder")
    (folder / "notes.png").write_text("a text file with an image's name")
    os.symlink("loop", folder / "loop")  # points at itself: ELOOP
    os.symlink("loop.png", folder / "loop.png")
    return Hostile(run, monkeypatch)


# ------------------------------------------------------------- the requests
@dataclass
class Sent:
    status: int
    text: str
    headers: Any = None

    def json(self) -> Any:
        return json.loads(self.text)


async def _send(h: Hostile, method: str, path: str, *, data: Any = None, json_body: Any = None,
                headers: dict[str, str] | None = None) -> Sent:
    kwargs: dict[str, Any] = {"headers": headers or {}}
    if json_body is not None:
        kwargs["json"] = json_body
    if data is not None:
        kwargs["data"] = data
    async with h.run.session.request(method, h.run.url + path, **kwargs) as response:
        return Sent(response.status, await response.text(), response.headers)


def get(path: str, **headers: str) -> Callable[[Hostile], Awaitable[Sent]]:
    return lambda h: _send(h, "GET", path.replace("{port}", str(h.port)), headers=headers)


def post_json(path: str, body: Any, **headers: str) -> Callable[[Hostile], Awaitable[Sent]]:
    return lambda h: _send(h, "POST", path, json_body=body,
                           headers={k.replace("_", "-"): v.replace("{port}", str(h.port)) for k, v in headers.items()})


def post_raw(path: str, text: str | bytes, content_type: str = "application/json") -> Callable[[Hostile], Awaitable[Sent]]:
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return lambda h: _send(h, "POST", path, data=data, headers={"Content-Type": content_type})


def upload(path: str = "/upload/image", image: bytes | Callable[[], bytes] | None = None, filename: str = "x.png",
           **fields: str) -> Callable[[Hostile], Awaitable[Sent]]:
    def send(h: Hostile) -> Awaitable[Sent]:
        data = image() if callable(image) else (png_bytes() if image is None else image)
        body, ctype = multipart(fields, data, filename)
        return _send(h, "POST", path, data=body, headers={"Content-Type": ctype})
    return send


def mask_of(original: str, mask: bytes | Callable[[], bytes] | None = None) -> Callable[[Hostile], Awaitable[Sent]]:
    return upload("/upload/mask", mask, "mask.png",
                  original_ref=json.dumps({"filename": original, "subfolder": "", "type": "input"}))


def with_origin(path: str, host: str, origin: str) -> Callable[[Hostile], Awaitable[Sent]]:
    async def send(h: Hostile) -> Sent:
        return await _send(h, "POST", path, json_body={}, headers={
            "Host": host.replace("{port}", str(h.port)), "Origin": origin.replace("{port}", str(h.port))})
    return send


def websocket_with_origin(origin: str) -> Callable[[Hostile], Awaitable[Sent]]:
    async def send(h: Hostile) -> Sent:
        try:
            ws = await h.run.session.ws_connect(h.run.ws_url("hostile"), headers={"Origin": origin})
        except aiohttp.WSServerHandshakeError as refused:
            return Sent(refused.status, refused.message)
        await ws.close()
        return Sent(101, "")
    return send


def download(url: str) -> Callable[[Hostile], Awaitable[Sent]]:
    return post_json("/models/download", {"url": url, "directory": "checkpoints", "name": "m.safetensors"})


def disk_full_upload(h: Hostile) -> Awaitable[Sent]:
    """The disk fills while the upload is written: half the bytes land, then ENOSPC."""
    import builtins

    import server.uploads as uploads

    real_open = builtins.open

    class FillingFile:
        def __init__(self, handle: Any):
            self.handle = handle

        def write(self, data: bytes) -> int:
            self.handle.write(data[: len(data) // 2])
            self.handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(self.handle, name)

        def __enter__(self) -> "FillingFile":
            return self

        def __exit__(self, *exc: Any) -> None:
            self.handle.close()

    def filling_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(path, mode, *args, **kwargs)
        return FillingFile(handle) if "x" in mode or "w" in mode else handle

    h.monkeypatch.setattr(uploads, "open", filling_open, raising=False)
    return upload(filename="full.png")(h)


def duplicate_prompt_id(h: Hostile) -> Awaitable[Sent]:
    async def send() -> Sent:
        first = await _send(h, "POST", "/queue", json_body={"pause": True})
        assert first.status == 200
        body = {"prompt": text_prompt(), "prompt_id": "twice"}
        assert (await _send(h, "POST", "/prompt", json_body=body)).status == 200
        return await _send(h, "POST", "/prompt", json_body=body)
    return send()


def duplicate_finished_prompt_id(h: Hostile) -> Awaitable[Sent]:
    async def send() -> Sent:
        body = {"prompt": text_prompt(), "prompt_id": "done-once"}
        assert (await _send(h, "POST", "/prompt", json_body=body)).status == 200
        await h.run.wait_history("done-once")
        return await _send(h, "POST", "/prompt", json_body=body)  # would re-run and replace its history
    return send()


def chunked_oversize(h: Hostile) -> Awaitable[Sent]:
    async def chunks():
        yield b'{"prompt": "'
        for _ in range(JSON_LIMIT // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'
    return _send(h, "POST", "/prompt", data=chunks(), headers={"Content-Type": "application/json"})


LONG = "a" * 300
CJK = "字" * 86  # 258 bytes in UTF-8
LOAD_LOOP = {"1": {"class_type": "LoadImage", "inputs": {"image": "loop.png"}},
             "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
HUGE = "1" + "0" * 400  # 1e400 written out as an integer


@dataclass(frozen=True)
class Case:
    id: str
    send: Callable[[Hostile], Awaitable[Sent]]
    status: int
    says: str  # in the error's type or message
    item: str = ""


CASES = [
    # 4. memory: the bomb is refused before it is decoded
    Case("upload-bomb", upload(image=bomb_png, filename="bomb.png"), 413, "over this server's limit", "4"),
    Case("view-bomb-alpha", get("/view?type=input&filename=bomb.png&channel=a"), 413, "image_too_large", "4"),
    Case("view-bomb-rgb", get("/view?type=input&filename=bomb.png&channel=rgb"), 413, "12000x12000", "4"),
    Case("view-bomb-preview", get("/view?type=input&filename=bomb.png&preview=webp;90"), 413, "--max-image-pixels", "4"),
    Case("mask-on-a-bomb", mask_of("bomb.png"), 413, "image_too_large", "4"),
    Case("mask-that-is-a-bomb", mask_of("ok.png", bomb_png), 413, "image_too_large", "4"),
    # 5. names the file system refuses, loops, files in the way
    Case("upload-subfolder-300", upload(subfolder=LONG), 400, "at most 255 bytes", "5"),
    Case("upload-subfolder-cjk", upload(subfolder=CJK), 400, "at most 255 bytes", "5"),
    Case("upload-into-a-file", upload(subfolder="afile"), 400, "invalid_subfolder", "5"),
    Case("upload-into-a-file-below", upload(subfolder="afile/deeper"), 400, "invalid_subfolder", "5"),
    Case("upload-disk-full", disk_full_upload, 507, "disk_full", "5"),
    Case("view-filename-300", get(f"/view?type=input&filename={LONG}.png"), 400, "at most 255 bytes", "5"),
    Case("view-subfolder-300", get(f"/view?type=input&subfolder={LONG}&filename=a.png"), 400, "at most 255 bytes", "5"),
    Case("view-filename-cjk", get(f"/view?type=input&filename={CJK}.png"), 400, "at most 255 bytes", "5"),
    Case("view-symlink-loop", get("/view?type=input&filename=loop"), 400, "symlink loop", "5"),
    Case("view-symlink-loop-channel", get("/view?type=input&filename=loop.png&channel=a"), 400, "symlink loop", "5"),
    Case("prompt-loadimage-loop", post_json("/prompt", {"prompt": LOAD_LOOP}), 400, "symlink loop", "5"),
    Case("mask-original-not-image", mask_of("afile"), 415, "original image 'afile'", "5"),
    Case("mask-original-named-png", mask_of("notes.png"), 415, "not an image", "5"),
    Case("mask-original-loop", mask_of("loop.png"), 400, "symlink loop", "5"),
    Case("json-nested-100000", post_raw("/prompt", "[" * 100000), 400, "nested too deeply", "5"),
    Case("json-nested-objects", post_raw("/queue", '{"a":' * 50000), 400, "invalid_json", "5"),
    Case("json-huge-number", post_raw("/prompt", '{"prompt": ' + json.dumps(text_prompt()) + ', "number": ' + HUGE + "}"),
         400, "'number' is too large", "5"),
    Case("json-huge-move", post_raw("/queue", '{"move": {"prompt_id": "x", "position": ' + HUGE + "}}"), 404,
         "not pending", "5"),
    Case("json-huge-float-input", post_raw("/prompt", '{"prompt": {"1": {"class_type": "Sleep", "inputs":'
                                            ' {"seconds": ' + HUGE + '}}}}'), 400, "seconds", "5"),
    Case("json-huge-int-input", post_raw("/prompt", '{"prompt": {"1": {"class_type": "EmptyLatentImage", "inputs":'
                                          ' {"width": ' + HUGE + ', "height": 64, "batch_size": 1}},'
                                          ' "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}}'),
         400, "width", "5"),
    Case("surrogate-prompt-id", post_raw("/prompt", '{"prompt": ' + json.dumps(text_prompt()) + ', "prompt_id": "\\ud800"}'),
         400, "lone surrogate", "5"),
    Case("surrogate-client-id", post_raw("/prompt", '{"prompt": ' + json.dumps(text_prompt()) + ', "client_id": "a\\udfffb"}'),
         400, "lone surrogate", "5"),
    Case("surrogate-delete", post_raw("/queue", '{"delete": ["\\udc80"]}'), 400, "lone surrogate", "5"),
    Case("surrogate-history-delete", post_raw("/history", '{"delete": ["\\ud83d"]}'), 400, "lone surrogate", "5"),
    Case("surrogate-node-input", post_raw("/prompt", '{"prompt": {"1": {"class_type": "Show", "inputs":'
                                          ' {"text": "a\\ud800"}}}}'), 400, "body.prompt.1.inputs.text", "5"),
    Case("surrogate-key", post_raw("/prompt", '{"prompt": {"\\udc00": {"class_type": "Show", "inputs":'
                                   ' {"text": "a"}}}}'), 400, "lone surrogate", "5"),
    Case("surrogate-interrupt", post_raw("/interrupt", '{"prompt_id": "\\ud800"}'), 400, "lone surrogate", "5"),
    # 8. an origin without a port is port 80/443, not this server
    Case("origin-no-port-ip", with_origin("/free", "127.0.0.1:{port}", "http://127.0.0.1"), 403, "cross_origin", "8"),
    Case("origin-no-port-https", with_origin("/interrupt", "localhost:{port}", "https://localhost"), 403,
         "cross_origin", "8"),
    Case("origin-other-port", with_origin("/free", "127.0.0.1:{port}", "http://127.0.0.1:1"), 403, "cross_origin", "8"),
    Case("origin-no-port-websocket", websocket_with_origin("http://127.0.0.1"), 403, "", "8"),
    # 10. downloads from this machine or a private network
    Case("download-loopback", download("http://127.0.0.1/m.safetensors"), 400, "private_address", "10"),
    Case("download-localhost", download("http://localhost:8188/m.safetensors"), 400, "--allow-private-downloads", "10"),
    Case("download-private-10", download("http://10.0.0.5/m.safetensors"), 400, "private_address", "10"),
    Case("download-private-192", download("https://192.168.1.1/m.safetensors"), 400, "private_address", "10"),
    Case("download-link-local", download("http://169.254.169.254/latest/meta-data"), 400, "private_address", "10"),
    Case("download-ipv6-loopback", download("http://[::1]:8188/m.safetensors"), 400, "private_address", "10"),
    Case("download-ipv4-mapped", download("http://[::ffff:127.0.0.1]/m.safetensors"), 400, "private_address", "10"),
    Case("download-unspecified", download("http://0.0.0.0/m.safetensors"), 400, "private_address", "10"),
    # 16A's cases that a request can express
    Case("duplicate-prompt-id", duplicate_prompt_id, 409, "duplicate_prompt_id", "6"),
    Case("duplicate-finished-prompt-id", duplicate_finished_prompt_id, 409, "done-once", "6"),
    Case("oversize-json", post_raw("/prompt", '{"prompt": "' + "x" * (JSON_LIMIT + 10) + '"}'), 413, "body_too_large", "1"),
    Case("oversize-chunked", chunked_oversize, 413, "body_too_large", "1"),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_a_hostile_request_gets_its_4xx_and_says_why(hostile, case):
    sent = await asyncio.wait_for(case.send(hostile), 30)
    assert (sent.status, case.says in sent.text) == (case.status, True), sent.text[:500]
    assert 400 <= sent.status < 600 and sent.status != 500


def test_every_item_of_the_issue_has_rows():
    assert {case.item for case in CASES} >= {"1", "4", "5", "6", "8", "10"}
    assert len({case.id for case in CASES}) == len(CASES)


async def test_nothing_half_written_is_left_by_a_full_disk(hostile):
    sent = await disk_full_upload(hostile)
    assert sent.status == 507
    assert not [name for name in os.listdir(hostile.input) if name.startswith("full")]


# --------------------------------------------- hostile, and rightly accepted
async def _split_body(h: Hostile) -> Sent:
    """A 1 KB body in two writes 100 ms apart (16A's item 1)."""
    body = json.dumps({"prompt": text_prompt("x" * 1000)}).encode()

    async def halves():
        yield body[:500]
        await asyncio.sleep(0.1)
        yield body[500:]
    return await _send(h, "POST", "/prompt", data=halves(), headers={"Content-Type": "application/json"})


@dataclass(frozen=True)
class Accepted:
    id: str
    send: Callable[[Hostile], Awaitable[Sent]]
    check: Callable[[Any], bool] = field(default=lambda body: True)


ACCEPTED = [
    Accepted("upload-filename-300", upload(filename=LONG + ".png"),
             lambda body: len(body["name"].encode()) <= 200 and body["name"].endswith(".png")),
    Accepted("upload-filename-cjk-85", upload(filename="字" * 85 + ".png"),
             lambda body: body["name"].startswith("字") and len(body["name"].encode()) <= 200),
    Accepted("upload-filename-bidi", upload(filename="report\u202egnp.exe.png"),
             lambda body: body["name"] == "reportgnp.exe.png"),
    Accepted("upload-filename-isolates", upload(filename="a\u2066b\u2069c\u200f.png"),
             lambda body: body["name"] == "abc.png"),
    Accepted("upload-subfolder-cjk-85", upload(subfolder="字" * 85), lambda body: body["subfolder"] == "字" * 85),
    Accepted("object-info-with-a-loop", get("/object_info/LoadImage"),
             lambda body: '"ok.png"' in json.dumps(body) and '"loop.png"' not in json.dumps(body)),
    Accepted("loadimage-beside-a-loop", post_json("/prompt", {"prompt": {
        "1": {"class_type": "LoadImage", "inputs": {"image": "ok.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}}), lambda body: "prompt_id" in body),
    Accepted("split-body", _split_body, lambda body: "prompt_id" in body),
    Accepted("paired-surrogate-escapes", post_raw("/prompt", '{"prompt": {"1": {"class_type": "Show", "inputs":'
                                                   ' {"text": "\\ud83d\\ude00 \\\\ud800"}}}}'),
             lambda body: "prompt_id" in body),
    Accepted("same-origin-with-port", with_origin("/free", "127.0.0.1:{port}", "http://127.0.0.1:{port}")),
]


@pytest.mark.parametrize("case", ACCEPTED, ids=[case.id for case in ACCEPTED])
async def test_a_hostile_request_that_deserves_success_gets_it(hostile, case):
    sent = await asyncio.wait_for(case.send(hostile), 30)
    assert sent.status == 200, sent.text[:500]
    assert case.check(sent.json()), sent.text[:500]

