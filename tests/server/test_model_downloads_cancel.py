"""Cancelling a model download: ``POST /models/downloads/{id}/cancel``, the
server stopping, and Ctrl-C in ``loom models download`` all stop the transfer
and leave no partial file behind — and never touch a complete file.  Against a
local HTTP server that streams slowly (there is no internet here)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import jsonschema_rs
import pytest

from nodes.folders import Folders
from server.app import LoomServer
from server.config import ServerOptions
from server.download_requests import DownloadRequest
from server.model_downloads import Downloader
from server.openapi import openapi_spec

from .conftest import Running, listen, make_registry
from .process import REPO, ServerProcess
from .test_model_downloads import MODEL, MODEL_SHA, ModelFileServer, _wait_download

# 3 MiB in 64 KiB pieces, one every 50 ms: about 2.5 s, long enough to cancel midway.
SLOW = {"chunk": 64 * 1024, "chunk_delay": 0.05}


@pytest.fixture
def files():
    with ModelFileServer() as server:
        yield server


def checkpoints(base: Path) -> Path:
    return base / "models" / "checkpoints"


async def wait_for_bytes(part: Path, timeout: float = 20.0) -> int:
    """Waits until the download has written something to its part file; its size."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not (part.is_file() and part.stat().st_size > 0):
        assert asyncio.get_running_loop().time() < deadline, f"{part.name} never received bytes"
        await asyncio.sleep(0.02)
    return part.stat().st_size


async def start_download(server: Running, url: str, name: str = "model.safetensors", **extra) -> str:
    async with await server.post("/models/download", {"url": url, "directory": "checkpoints", "name": name,
                                                      **extra}) as response:
        assert response.status == 202, await response.text()
        return (await response.json())["id"]


async def cancel(server: Running, download_id: str, prefix: str = "", **kwargs) -> aiohttp.ClientResponse:
    return await server.post(f"{prefix}/models/downloads/{download_id}/cancel", **kwargs)


async def slow_download_midway(server: Running, files: ModelFileServer, name: str = "model.safetensors") -> str:
    """A download of MODEL that has written part of it and is still receiving; its id."""
    url = files.serve("/slow.safetensors", **SLOW)
    download_id = await start_download(server, url, name)
    await wait_for_bytes(checkpoints(server.base) / f"{name}.part")
    return download_id


# ------------------------------------------------------------------ over HTTP

async def test_cancel_answers_with_the_download_in_state_cancelled(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id) as response:
        assert response.status == 200
        body = await response.json()
    assert body["id"] == download_id and body["state"] == "cancelled" and body["error"] is None


async def test_a_cancelled_download_is_listed_as_cancelled(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id):
        pass
    listing = {d["id"]: d for d in await server.get_json("/models/downloads")}
    assert listing[download_id]["state"] == "cancelled"


async def test_cancelling_removes_the_partial_file_and_leaves_the_folder_as_it_was(server, files):
    folder = checkpoints(server.base)
    folder.mkdir(parents=True)
    (folder / "other.safetensors").write_bytes(b"someone else's model")
    before = sorted(p.name for p in folder.iterdir())
    download_id = await slow_download_midway(server, files)
    assert (folder / "model.safetensors.part").is_file()
    async with await cancel(server, download_id) as response:
        assert response.status == 200
    assert sorted(p.name for p in folder.iterdir()) == before
    assert (folder / "other.safetensors").read_bytes() == b"someone else's model"


async def test_cancelling_stops_the_transfer(server, files):
    download_id = await slow_download_midway(server, files)
    served = files.files["/slow.safetensors"]
    async with await cancel(server, download_id):
        pass
    # The file server's answer ends early: the client hung up instead of reading on.
    assert await asyncio.to_thread(served.ended.wait, 5)
    assert served.sent < len(MODEL)


async def test_the_partial_file_does_not_come_back_after_the_cancel(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id):
        pass
    await asyncio.sleep(0.5)  # ten more chunks' time: a transfer still running would write again
    assert list(checkpoints(server.base).iterdir()) == []


async def test_cancelling_sends_a_download_cancelled_event_over_the_websocket(server, files):
    listener = await listen(server)
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id):
        pass
    while (message := await listener.next_json())["type"] != "download_cancelled":
        assert message["type"] == "download_progress", message
    data = message["data"]
    assert data["id"] == download_id and data["directory"] == "checkpoints" and data["name"] == "model.safetensors"
    assert data["by_user"] is True and 0 < data["done"] < len(MODEL) and data["total"] == len(MODEL)


async def test_a_cancel_never_touches_a_complete_file_of_the_same_name(server, files):
    download_id = await slow_download_midway(server, files)
    complete = checkpoints(server.base) / "model.safetensors"
    complete.write_bytes(b"copied in by hand meanwhile")
    async with await cancel(server, download_id) as response:
        assert response.status == 200
    assert complete.read_bytes() == b"copied in by hand meanwhile"
    assert not (checkpoints(server.base) / "model.safetensors.part").exists()


async def test_the_same_file_can_be_downloaded_again_after_a_cancel(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id):
        pass
    again = await start_download(server, files.serve("/fast.safetensors"), sha256=MODEL_SHA)
    assert (await _wait_download(server, again))["state"] == "done"
    assert (checkpoints(server.base) / "model.safetensors").read_bytes() == MODEL


async def test_cancelling_an_unknown_download_answers_404_naming_the_id(server):
    async with await cancel(server, "nosuchdownload") as response:
        assert response.status == 404
        error = (await response.json())["error"]
    assert error["type"] == "unknown_download" and "'nosuchdownload'" in error["message"]


async def test_cancelling_a_finished_download_answers_409_and_keeps_the_file(server, files):
    download_id = await start_download(server, files.serve("/m.safetensors"))
    assert (await _wait_download(server, download_id))["state"] == "done"
    async with await cancel(server, download_id) as response:
        assert response.status == 409
        error = (await response.json())["error"]
    assert error["type"] == "download_finished" and "already ended (done)" in error["message"]
    assert (checkpoints(server.base) / "model.safetensors").read_bytes() == MODEL
    listing = {d["id"]: d for d in await server.get_json("/models/downloads")}
    assert listing[download_id]["state"] == "done"


async def test_cancelling_a_download_twice_answers_409_the_second_time(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id) as response:
        assert response.status == 200
    async with await cancel(server, download_id) as response:
        assert response.status == 409
        assert "already ended (cancelled)" in (await response.json())["error"]["message"]


async def test_the_api_prefix_serves_the_cancel_route_too(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id, prefix="/api") as response:
        assert response.status == 200
        assert (await response.json())["state"] == "cancelled"


async def test_a_cross_origin_cancel_is_refused_and_the_download_goes_on(server, files):
    download_id = await slow_download_midway(server, files)
    async with await cancel(server, download_id, headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
        assert (await response.json())["error"]["type"] == "cross_origin"
    finished = await _wait_download(server, download_id)
    assert finished["state"] == "done"
    assert (checkpoints(server.base) / "model.safetensors").read_bytes() == MODEL


async def matches_the_spec(response: aiohttp.ClientResponse, template: str, method: str) -> None:
    """The answer's status is documented for ``template`` and its JSON body fits the schema."""
    spec = openapi_spec()
    responses = spec["paths"][template][method.lower()]["responses"]
    assert str(response.status) in responses, f"{method} {template} answered {response.status}, not documented"
    schema = {**responses[str(response.status)]["content"]["application/json"]["schema"],
              "components": spec["components"]}
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(await response.json())]
    assert not errors, f"{method} {template}: {errors[:3]}"


async def test_cancel_answers_match_the_openapi_spec(server, files):
    template = "/models/downloads/{download_id}/cancel"
    download_id = await slow_download_midway(server, files)
    for expected in (200, 409):  # cancelled, then already ended
        async with await cancel(server, download_id) as response:
            assert response.status == expected
            await matches_the_spec(response, template, "POST")
    async with await cancel(server, "nope") as response:
        assert response.status == 404
        await matches_the_spec(response, template, "POST")
    async with await server.get("/models/downloads") as response:  # with a cancelled one in it
        await matches_the_spec(response, "/models/downloads", "GET")


@pytest.fixture
async def server(running, tmp_path) -> Running:
    """The test file server is on 127.0.0.1: private downloads are allowed here."""
    return await running(ServerOptions(port=0, web_root=tmp_path / "web", preview_interval=0.0,
                                       allow_private_downloads=True))


# ------------------------------------------------------------------ the server stopping

async def test_stopping_the_server_stops_downloads_and_removes_their_partial_files(tmp_path, files):
    base = tmp_path / "base"
    server = LoomServer(make_registry(base), ServerOptions(port=0, web_root=base / "web", preview_interval=0.0,
                                                           allow_private_downloads=True))
    await server.start()
    try:
        async with aiohttp.ClientSession() as session:
            run = Running(server, base, session, server.options)
            await slow_download_midway(run, files)
    finally:
        await server.stop()
    served = files.files["/slow.safetensors"]
    assert await asyncio.to_thread(served.ended.wait, 5) and served.sent < len(MODEL)
    assert list(checkpoints(base).iterdir()) == []


def test_sigterm_to_a_server_process_removes_the_partial_file_of_its_download(tmp_path, files):
    base = tmp_path / "base"
    url = files.serve("/slow.safetensors", **SLOW)
    process = ServerProcess(base, None, "--allow-private-downloads")
    try:
        started = process.call("/models/download", {"url": url, "directory": "checkpoints", "name": "m.safetensors"})
        assert started["state"] == "downloading"
        asyncio.run(wait_for_bytes(checkpoints(base) / "m.safetensors.part"))
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(20) == 0
    finally:
        process.stop()
    assert list(checkpoints(base).iterdir()) == []


# ------------------------------------------------------------------ the downloader itself

async def test_a_cancelled_download_task_removes_its_part_file(tmp_path, files):
    folders = Folders.from_options(tmp_path / "base")
    url = files.serve("/slow.safetensors", **SLOW)
    task = asyncio.create_task(Downloader(folders).download(DownloadRequest(url, "checkpoints", "m.safetensors")))
    await wait_for_bytes(folders.models / "checkpoints" / "m.safetensors.part")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list((folders.models / "checkpoints").iterdir()) == []


# ------------------------------------------------------------------ Ctrl-C in the CLI

def test_ctrl_c_in_loom_models_download_removes_the_partial_file_and_exits_130(tmp_path, files):
    url = files.serve("/slow.safetensors", **SLOW)
    base = tmp_path / "base"
    process = subprocess.Popen(
        [sys.executable, "-c", "import sys; from server.cli import main; sys.exit(main())",
         "models", "download", url, "--kind", "checkpoints", "--name", "m.safetensors",
         "--base-directory", str(base), "--quiet"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        asyncio.run(wait_for_bytes(checkpoints(base) / "m.safetensors.part"))
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130
    assert err.strip() == ("loom: download of models/checkpoints/m.safetensors cancelled;"
                           " no partial file (m.safetensors.part) is left")
    assert list(checkpoints(base).iterdir()) == []
