"""Downloading models into their folders: over HTTP (``POST /models/download``,
websocket progress), from the terminal (``loom models download``) and with the
downloader itself — against a local HTTP server (there is no internet here)."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nodes.folders import Folders
from server.cli import main
from server.config import ServerOptions
from server.download_requests import BadDownloadRequest, DownloadError, DownloadInterrupted, DownloadRequest, name_from_url
from server.model_downloads import Downloader, DownloadManager

from .conftest import Running, listen

MODEL = os.urandom(3 * 1024 * 1024 + 123)  # a few chunks, and not a whole number of them
MODEL_SHA = hashlib.sha256(MODEL).hexdigest()


# ------------------------------------------------------------------ a local file server

@dataclass
class Served:
    """How the test server answers for one path."""

    body: bytes
    ranges: bool = True  # honour Range requests (206); False: always the whole file (200)
    drop_after: int | None = None  # the first `drops` answers stop after this many body bytes
    drops: int = 1
    content_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    status: int = 200
    hold_at: int | None = None  # wait for `release` after sending this many body bytes
    release: threading.Event = field(default_factory=threading.Event)
    held: threading.Event = field(default_factory=threading.Event)
    chunk: int = 64 * 1024
    chunk_delay: float = 0.0
    sent: int = 0  # body bytes the last answer got out (a client that goes away stops it short)
    ended: threading.Event = field(default_factory=threading.Event)  # the last answer is over


class ModelFileServer:
    """A threaded HTTP/1.0 server of in-memory files that records every request's
    headers, and can honour or ignore ranges, drop a connection mid-body or stall."""

    def __init__(self) -> None:
        self.files: dict[str, Served] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                outer.requests.append((self.path, dict(self.headers)))
                served = outer.files.get(self.path.split("?")[0])
                if served is None:
                    self.send_error(404)
                    return
                if served.status != 200:
                    self.send_error(served.status)
                    return
                body, start = served.body, 0
                header = self.headers.get("Range")
                if header and served.ranges:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                if served.content_length:
                    self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                limit = len(body)
                if served.drop_after is not None and served.drops > 0:
                    served.drops -= 1
                    limit = min(limit, start + served.drop_after)
                position = start
                served.ended.clear()
                try:
                    while position < limit:
                        if served.hold_at is not None and position >= served.hold_at and not served.release.is_set():
                            self.wfile.flush()
                            served.held.set()
                            served.release.wait(30)
                        end = min(limit, position + served.chunk)
                        if served.hold_at is not None and position < served.hold_at:
                            end = min(end, served.hold_at)
                        self.wfile.write(body[position:end])
                        if served.chunk_delay:
                            self.wfile.flush()
                        position = served.sent = end
                        if served.chunk_delay:
                            time.sleep(served.chunk_delay)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    served.ended.set()
                if limit < len(body):
                    self.connection.shutdown(socket.SHUT_RDWR)  # the deliberate drop

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def serve(self, path: str, body: bytes = MODEL, **options) -> str:
        self.files[path] = Served(body, **options)
        return self.url(path)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def ranges_asked(self, path: str) -> list[str | None]:
        return [headers.get("Range") for p, headers in self.requests if p.split("?")[0] == path]

    def __enter__(self) -> "ModelFileServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for served in self.files.values():
            served.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def files():
    with ModelFileServer() as server:
        yield server


@pytest.fixture
def folders(tmp_path) -> Folders:
    return Folders.from_options(tmp_path / "base")


@pytest.fixture
async def server(running, tmp_path) -> Running:
    """The test file server is on 127.0.0.1: private downloads are allowed here
    (test_hostile_requests checks they are refused by default)."""
    return await running(ServerOptions(port=0, web_root=tmp_path / "web", preview_interval=0.0,
                                       allow_private_downloads=True))


def downloader(folders: Folders, **options) -> Downloader:
    return Downloader(folders, retry_delay=0.0, **options)


def checkpoint(folders: Folders, name: str = "model.safetensors") -> Path:
    return folders.models / "checkpoints" / name


# ------------------------------------------------------------------ the downloader

async def test_a_download_lands_under_models_kind_with_its_bytes(folders, files):
    url = files.serve("/m.safetensors")
    result = await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors"))
    assert checkpoint(folders).read_bytes() == MODEL
    assert result.path == checkpoint(folders) and result.size == len(MODEL) and result.sha256 == MODEL_SHA
    assert folders.list_models("checkpoints") == ["model.safetensors"]


async def test_a_name_with_a_subfolder_creates_it(folders, files):
    url = files.serve("/m.safetensors")
    await downloader(folders).download(DownloadRequest(url, "loras", "style/pixel.safetensors"))
    assert (folders.models / "loras" / "style" / "pixel.safetensors").read_bytes() == MODEL


async def test_legacy_folder_names_download_into_the_current_folder(folders, files):
    url = files.serve("/m.safetensors")
    await downloader(folders).download(DownloadRequest(url, "unet", "u.safetensors"))
    assert (folders.models / "diffusion_models" / "u.safetensors").is_file()


async def test_progress_goes_from_zero_to_the_total_without_going_back(folders, files):
    url = files.serve("/m.safetensors")
    seen = []
    await downloader(folders, progress_interval=0.0).download(
        DownloadRequest(url, "checkpoints", "model.safetensors"), seen.append)
    assert seen[0].done == 0 and seen[-1].done == len(MODEL)
    assert all(p.total == len(MODEL) for p in seen)
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert len(seen) > 3


async def test_progress_is_reported_at_most_ten_times_a_second(folders, files):
    url = files.serve("/slow.safetensors", body=MODEL[: 40 * 16 * 1024], chunk=16 * 1024, chunk_delay=0.03)
    seen, started = [], time.monotonic()
    await downloader(folders).download(DownloadRequest(url, "checkpoints", "slow.safetensors"), seen.append)
    elapsed = time.monotonic() - started
    assert elapsed > 1.0
    # One report per 0.1 s, plus the forced first and last ones.
    assert 3 <= len(seen) <= elapsed * 10 + 2


async def test_the_final_name_appears_only_when_the_download_is_complete(folders, files):
    url = files.serve("/m.safetensors", hold_at=len(MODEL) // 2)
    task = asyncio.create_task(downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors")))
    served = files.files["/m.safetensors"]
    assert await asyncio.to_thread(served.held.wait, 10)
    part = checkpoint(folders, "model.safetensors.part")
    for _ in range(200):  # the client writes what it has received
        if part.is_file() and part.stat().st_size > 0:
            break
        await asyncio.sleep(0.01)
    assert part.is_file() and not checkpoint(folders).exists()
    assert folders.list_models("checkpoints") == []  # a .part is never offered by the loaders
    served.release.set()
    await task
    assert checkpoint(folders).read_bytes() == MODEL and not part.exists()


async def test_an_interrupted_download_keeps_its_part_file(folders, files):
    url = files.serve("/m.safetensors", drop_after=1_000_000)
    with pytest.raises(DownloadInterrupted, match=r"interrupted.*model\.safetensors\.part is kept"):
        await downloader(folders, retries=0).download(DownloadRequest(url, "checkpoints", "model.safetensors"))
    part = checkpoint(folders, "model.safetensors.part")
    assert part.read_bytes() == MODEL[:1_000_000]
    assert not checkpoint(folders).exists()


async def test_a_second_try_resumes_the_part_with_a_range_request(folders, files):
    url = files.serve("/m.safetensors", drop_after=1_000_000)
    request = DownloadRequest(url, "checkpoints", "model.safetensors", sha256=MODEL_SHA)
    with pytest.raises(DownloadInterrupted):
        await downloader(folders, retries=0).download(request)
    result = await downloader(folders, retries=0).download(request)
    assert files.ranges_asked("/m.safetensors") == [None, "bytes=1000000-"]
    assert checkpoint(folders).read_bytes() == MODEL
    assert result.resumed_from == 1_000_000
    assert not checkpoint(folders, "model.safetensors.part").exists()


async def test_a_dropped_connection_is_retried_from_where_it_stopped(folders, files):
    url = files.serve("/m.safetensors", drop_after=700_000, drops=2)
    await downloader(folders, retries=3).download(DownloadRequest(url, "checkpoints", "model.safetensors"))
    assert files.ranges_asked("/m.safetensors") == [None, "bytes=700000-", "bytes=1400000-"]
    assert checkpoint(folders).read_bytes() == MODEL


async def test_a_server_that_ignores_ranges_is_read_again_from_the_start(folders, files):
    url = files.serve("/m.safetensors", drop_after=1_000_000, ranges=False)
    request = DownloadRequest(url, "checkpoints", "model.safetensors", sha256=MODEL_SHA)
    with pytest.raises(DownloadInterrupted):
        await downloader(folders, retries=0).download(request)
    await downloader(folders, retries=0).download(request)
    assert files.ranges_asked("/m.safetensors") == [None, "bytes=1000000-"]
    assert checkpoint(folders).read_bytes() == MODEL


async def test_a_part_that_is_already_whole_is_only_renamed(folders, files):
    url = files.serve("/m.safetensors")
    checkpoint(folders).parent.mkdir(parents=True)
    checkpoint(folders, "model.safetensors.part").write_bytes(MODEL)
    await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors", sha256=MODEL_SHA))
    assert files.ranges_asked("/m.safetensors") == [f"bytes={len(MODEL)}-"]
    assert checkpoint(folders).read_bytes() == MODEL


async def test_a_sha256_mismatch_is_refused_and_leaves_no_file(folders, files):
    url = files.serve("/m.safetensors")
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(DownloadError, match=f"sha256 is {MODEL_SHA}, but {wrong} was expected"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors", sha256=wrong))
    assert list(checkpoint(folders).parent.iterdir()) == []


async def test_a_size_other_than_announced_by_the_server_is_refused_before_downloading(folders, files):
    url = files.serve("/m.safetensors")
    with pytest.raises(DownloadError, match=f"server offers {len(MODEL):,} bytes, but 1,000 bytes were expected"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors", size=1000))
    assert not checkpoint(folders).exists() and not checkpoint(folders, "model.safetensors.part").exists()


async def test_a_body_of_the_wrong_size_is_refused_and_leaves_no_file(folders, files):
    url = files.serve("/m.safetensors", content_length=False)  # no length: only the end tells
    with pytest.raises(DownloadError, match=f"received {len(MODEL):,} bytes, but {len(MODEL) + 1:,} bytes were expected"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors", size=len(MODEL) + 1))
    assert list(checkpoint(folders).parent.iterdir()) == []


async def test_an_http_error_status_is_reported_with_the_url(folders, files):
    url = files.serve("/gone.safetensors", status=404)
    with pytest.raises(DownloadError, match=r"gone\.safetensors answered HTTP 404"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors"))
    assert list(checkpoint(folders).parent.iterdir()) == []


async def test_an_unreachable_host_is_a_clear_error(folders):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DownloadError, match=f"could not connect to 127.0.0.1:{port}"):
        await downloader(folders).download(DownloadRequest(f"http://127.0.0.1:{port}/m.safetensors", "checkpoints", "m.safetensors"))


async def test_an_existing_file_is_never_overwritten(folders, files):
    url = files.serve("/m.safetensors")
    checkpoint(folders).parent.mkdir(parents=True)
    checkpoint(folders).write_bytes(b"mine")
    with pytest.raises(DownloadError, match="already exists with a different sha256"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors", sha256=MODEL_SHA))
    with pytest.raises(DownloadError, match="already exists; give its sha256"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors"))
    assert checkpoint(folders).read_bytes() == b"mine"


async def test_an_existing_file_that_matches_the_sha256_counts_as_downloaded(folders, files):
    url = files.serve("/m.safetensors")
    checkpoint(folders).parent.mkdir(parents=True)
    checkpoint(folders).write_bytes(MODEL)
    result = await downloader(folders).download(DownloadRequest(url, "checkpoints", "model.safetensors", sha256=MODEL_SHA))
    assert result.already_present and files.requests == []


@pytest.mark.parametrize("url, message", [
    ("file:///etc/passwd", "only http:// and https:// URLs"),
    ("ftp://example.com/m.safetensors", "only http:// and https:// URLs"),
    ("data:application/octet-stream;base64,AAAA", "only http:// and https:// URLs"),
    ("javascript:alert(1)", "only http:// and https:// URLs"),
    ("/local/m.safetensors", "only http:// and https:// URLs"),
    ("http:///m.safetensors", "names no host"),
    ("http://example.com:99999/m.safetensors", "not a valid URL"),
    ("http://exa\nmple.com/m.safetensors", "control characters"),
    ("", "non-empty"),
])
async def test_urls_other_than_http_and_https_are_refused(folders, url, message):
    with pytest.raises(BadDownloadRequest, match=message):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "m.safetensors"))


@pytest.mark.parametrize("name, message", [
    ("../x.safetensors", "contains '..'"),
    ("sub/../../x.safetensors", "contains '..'"),
    ("/abs/x.safetensors", "absolute path"),
    ("C:/x.safetensors", "absolute path"),
    ("a\x00b.safetensors", "NUL byte"),
    ("a\\b.safetensors", "backslash"),
    ("a\nb.safetensors", "control characters"),
    (".hidden.safetensors", "starting with '.'"),
    ("model.txt", "must end in one of"),
    ("model.safetensors.part", "must end in one of"),
    ("", "must be a file name"),
])
async def test_names_that_could_leave_the_folder_or_hide_are_refused(folders, name, message):
    with pytest.raises(BadDownloadRequest, match=message):
        await downloader(folders).download(DownloadRequest("http://127.0.0.1/m", "checkpoints", name))
    assert not (folders.base / "x.safetensors").exists()


async def test_a_symlink_out_of_the_models_folder_is_refused(folders, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (folders.models / "checkpoints").mkdir(parents=True)
    (folders.models / "checkpoints" / "link").symlink_to(outside)
    with pytest.raises(BadDownloadRequest, match="points outside the models folder"):
        await downloader(folders).download(DownloadRequest("http://127.0.0.1/m", "checkpoints", "link/x.safetensors"))


@pytest.mark.parametrize("directory, message", [
    ("nope", "unknown model folder 'nope'"),
    ("../checkpoints", "unknown model folder"),
    ("", "must name a model folder"),
    ("diffusers", "folders of files"),
])
async def test_unknown_model_folders_are_refused(folders, directory, message):
    with pytest.raises(BadDownloadRequest, match=message):
        await downloader(folders).download(DownloadRequest("http://127.0.0.1/m", directory, "m.safetensors"))


async def test_a_malformed_sha256_is_refused(folders):
    with pytest.raises(BadDownloadRequest, match="64 hexadecimal digits"):
        await downloader(folders).download(DownloadRequest("http://127.0.0.1/m", "checkpoints", "m.safetensors", sha256="abc"))


def test_the_file_name_defaults_to_the_end_of_the_url():
    assert name_from_url("https://h.example/a/resolve/main/v1%205.safetensors?download=true") == "v1 5.safetensors"


async def test_the_manager_refuses_a_second_download_to_the_same_file(folders, files):
    url = files.serve("/m.safetensors", hold_at=1000)
    events = []
    manager = DownloadManager(folders, lambda event, data: events.append((event, data)))
    manager.start(DownloadRequest(url, "checkpoints", "model.safetensors"))
    with pytest.raises(DownloadError, match="being downloaded already"):
        manager.start(DownloadRequest(url, "checkpoints", "model.safetensors"))
    files.files["/m.safetensors"].release.set()
    await manager.close()


# ------------------------------------------------------------------ over HTTP

async def _wait_download(server, download_id: str, timeout: float = 20.0) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        listing = {d["id"]: d for d in await server.get_json("/models/downloads")}
        if listing[download_id]["state"] != "downloading":
            return listing[download_id]
        assert asyncio.get_running_loop().time() < deadline, f"download {download_id} did not finish"
        await asyncio.sleep(0.02)


async def test_post_models_download_answers_202_and_the_file_appears(server, files):
    url = files.serve("/m.safetensors")
    async with await server.post("/models/download", {"url": url, "directory": "checkpoints",
                                                      "name": "model.safetensors", "sha256": MODEL_SHA}) as response:
        assert response.status == 202
        started = await response.json()
    assert started["state"] == "downloading" and started["name"] == "model.safetensors"
    finished = await _wait_download(server, started["id"])
    assert finished["state"] == "done" and finished["done"] == len(MODEL) and finished["sha256"] == MODEL_SHA
    assert await server.get_json("/models/checkpoints") == ["model.safetensors"]
    assert (server.base / "models" / "checkpoints" / "model.safetensors").read_bytes() == MODEL


async def test_download_progress_and_completion_arrive_over_the_websocket(server, files):
    listener = await listen(server)
    url = files.serve("/m.safetensors")
    async with await server.post("/models/download", {"url": url, "directory": "loras", "name": "l.safetensors"}) as response:
        download_id = (await response.json())["id"]
    progress = []
    while True:
        message = await listener.next_json()
        if message["type"] == "download_progress":
            progress.append(message["data"])
        elif message["type"] == "download_done":
            done = message["data"]
            break
    assert progress[0] == {"id": download_id, "directory": "loras", "name": "l.safetensors", "done": 0, "total": len(MODEL)}
    assert progress[-1]["done"] == len(MODEL)
    assert done["id"] == download_id and done["sha256"] == MODEL_SHA and done["done"] == len(MODEL)


async def test_a_failed_download_is_reported_over_the_websocket(server, files):
    listener = await listen(server)
    url = files.serve("/m.safetensors")
    async with await server.post("/models/download", {"url": url, "directory": "vae", "name": "v.safetensors",
                                                      "sha256": "0" * 64}) as response:
        download_id = (await response.json())["id"]
    while (message := await listener.next_json())["type"] != "download_error":
        pass
    assert message["data"]["id"] == download_id and "sha256 is" in message["data"]["message"]
    finished = await _wait_download(server, download_id)
    assert finished["state"] == "error" and "was expected" in finished["error"]
    assert await server.get_json("/models/vae") == []


async def test_comfyui_hash_and_hash_type_are_checked_like_sha256(server, files):
    url = files.serve("/m.safetensors")
    async with await server.post("/models/download", {"url": url, "directory": "vae", "name": "v.safetensors",
                                                      "hash": "1" * 64, "hash_type": "SHA256"}) as response:
        download_id = (await response.json())["id"]
    assert (await _wait_download(server, download_id))["state"] == "error"


async def test_downloads_run_while_a_prompt_executes(server, files):
    from .conftest import sleep_prompt

    prompt_id = await server.queue(sleep_prompt(2.0))
    await server.wait_running(prompt_id)
    url = files.serve("/m.safetensors")
    async with await server.post("/models/download", {"url": url, "directory": "checkpoints", "name": "m.safetensors"}) as response:
        download_id = (await response.json())["id"]
    assert (await _wait_download(server, download_id))["state"] == "done"
    assert any(item[1] == prompt_id for item in (await server.get_json("/queue"))["queue_running"])


@pytest.mark.parametrize("body, message", [
    ({"url": "file:///etc/passwd", "directory": "checkpoints", "name": "m.safetensors"}, "only http:// and https://"),
    ({"url": "http://127.0.0.1/m", "directory": "checkpoints", "name": "../m.safetensors"}, "contains '..'"),
    ({"url": "http://127.0.0.1/m", "directory": "checkpoints", "name": "/etc/m.safetensors"}, "absolute path"),
    ({"url": "http://127.0.0.1/m", "directory": "checkpoints", "name": "a\x00b.safetensors"}, "NUL byte"),
    ({"url": "http://127.0.0.1/m", "directory": "nope", "name": "m.safetensors"}, "unknown model folder"),
    ({"url": "http://127.0.0.1/m", "directory": "checkpoints"}, "'name' must be a file name"),
    ({"url": 5, "directory": "checkpoints", "name": "m.safetensors"}, "'url' must be"),
    ({"url": "http://127.0.0.1/m", "directory": "checkpoints", "name": "m.safetensors", "size": -1}, "'size'"),
])
async def test_bad_download_requests_get_400_naming_the_problem(server, body, message):
    async with await server.post("/models/download", body) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_download" and message in error["message"]
    assert await server.get_json("/models/downloads") == []


async def test_a_second_download_of_the_same_file_gets_409(server, files):
    url = files.serve("/m.safetensors", hold_at=1000)
    body = {"url": url, "directory": "checkpoints", "name": "m.safetensors"}
    async with await server.post("/models/download", body) as response:
        assert response.status == 202
    async with await server.post("/models/download", body) as response:
        assert response.status == 409
        assert "being downloaded already" in (await response.json())["error"]["message"]
    files.files["/m.safetensors"].release.set()


async def test_a_cross_origin_download_request_is_refused(server, files):
    url = files.serve("/m.safetensors")
    async with await server.post("/models/download", {"url": url, "directory": "checkpoints", "name": "m.safetensors"},
                                 headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
        assert (await response.json())["error"]["type"] == "cross_origin"
    assert files.requests == [] and await server.get_json("/models/downloads") == []


async def test_the_api_prefix_serves_the_download_routes_too(server):
    async with await server.post("/api/models/download", {"url": "ftp://x/m.safetensors", "directory": "checkpoints",
                                                          "name": "m.safetensors"}) as response:
        assert response.status == 400
    assert await server.get_json("/api/models/downloads") == []


# ------------------------------------------------------------------ the CLI

def _cli(tmp_path: Path, *args: str) -> int:
    return main(["models", "download", *args, "--base-directory", str(tmp_path / "base")])


def test_cli_downloads_into_the_kind_folder_and_exits_0(tmp_path, files, capsys):
    url = files.serve("/dir/tiny.safetensors")
    assert _cli(tmp_path, url, "--kind", "checkpoints", "--sha256", MODEL_SHA) == 0
    assert (tmp_path / "base" / "models" / "checkpoints" / "tiny.safetensors").read_bytes() == MODEL
    out = capsys.readouterr()
    assert "saved models/checkpoints/tiny.safetensors" in out.out


def test_cli_takes_a_name(tmp_path, files):
    url = files.serve("/download") + "?id=3"
    assert _cli(tmp_path, url, "--kind", "loras", "--name", "mine.safetensors") == 0
    assert (tmp_path / "base" / "models" / "loras" / "mine.safetensors").read_bytes() == MODEL


def test_cli_resumes_an_interrupted_download(tmp_path, files, capsys):
    url = files.serve("/m.safetensors", drop_after=1_000_000, drops=1)
    assert _cli(tmp_path, url, "--kind", "checkpoints", "--retries", "0") == 1
    assert "start the download again to resume" in capsys.readouterr().err
    assert _cli(tmp_path, url, "--kind", "checkpoints") == 0
    assert files.ranges_asked("/m.safetensors") == [None, "bytes=1000000-"]
    assert (tmp_path / "base" / "models" / "checkpoints" / "m.safetensors").read_bytes() == MODEL
    assert "resuming at 1,000,000 bytes" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["file:///etc/passwd", "--kind", "checkpoints", "--name", "m.safetensors"], "only http:// and https://"),
    (["http://127.0.0.1/m.safetensors", "--kind", "nope"], "unknown model folder 'nope'"),
    (["http://127.0.0.1/m.safetensors", "--kind", "checkpoints", "--name", "../m.safetensors"], "contains '..'"),
    (["http://127.0.0.1/download", "--kind", "checkpoints"], "give one with --name"),
    (["http://127.0.0.1/m.safetensors", "--kind", "checkpoints", "--sha256", "xyz"], "64 hexadecimal digits"),
])
def test_cli_refuses_bad_input_with_exit_code_2_and_a_clear_message(tmp_path, args, message, capsys):
    assert _cli(tmp_path, *args) == 2
    assert message in capsys.readouterr().err


def test_cli_reports_a_sha256_mismatch_with_exit_code_1(tmp_path, files, capsys):
    url = files.serve("/m.safetensors")
    assert _cli(tmp_path, url, "--kind", "checkpoints", "--sha256", "0" * 64) == 1
    err = capsys.readouterr().err
    assert "sha256 is" in err and "Traceback" not in err
    assert list((tmp_path / "base" / "models" / "checkpoints").iterdir()) == []


def test_cli_without_kind_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "download", "http://127.0.0.1/m.safetensors"])
    assert exit_info.value.code == 2
    assert "--kind" in capsys.readouterr().err


async def test_a_destination_that_cannot_be_written_is_a_clear_error(folders, files):
    url = files.serve("/m.safetensors")
    (folders.models / "checkpoints").mkdir(parents=True)
    (folders.models / "checkpoints" / "sub").write_bytes(b"a file, not a folder")
    with pytest.raises(DownloadError, match="could not write models/checkpoints/sub/x.safetensors"):
        await downloader(folders).download(DownloadRequest(url, "checkpoints", "sub/x.safetensors"))
