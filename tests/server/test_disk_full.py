"""The queue database on a full disk (a small tmpfs, filled up): POST /prompt
answers 507 "disk full", a finished prompt whose history row cannot be
committed is never announced as a success, and pause/resume answer 507, not
500.  Freeing space and resuming runs the prompt again."""

from __future__ import annotations

import asyncio
import errno
import subprocess
import uuid
from pathlib import Path

import aiohttp
import pytest

from server.app import LoomServer
from server.config import ServerOptions

from .conftest import Listener, make_registry, sleep_prompt, text_prompt


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs (the test runs as root, as the suite does), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk is full; the filler file is returned to delete."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


@pytest.fixture
async def disk_server(tmp_path, small_disk):
    base = tmp_path / "base"
    server = LoomServer(make_registry(base), ServerOptions(port=0, web_root=base / "web", preview_interval=0.0),
                        db_path=small_disk / "queue.sqlite3")
    await server.start()
    session = aiohttp.ClientSession()
    yield server, session, small_disk
    await session.close()
    await server.stop()


async def test_a_full_disk_is_a_507_not_a_500_and_space_freed_lets_prompts_in(disk_server):
    server, session, disk = disk_server
    url = f"http://127.0.0.1:{server.port}"
    filler = fill(disk)
    big = text_prompt("w" * 200_000)  # the queue row needs new pages
    async with session.post(url + "/prompt", json={"prompt": big}) as response:
        body = await response.json()
        assert response.status == 507, body
        assert body["error"]["type"] == "disk_full"
        assert "disk full" in body["error"]["message"] and str(disk / "queue.sqlite3") in body["error"]["message"]
    for op in ({"pause": True}, {"resume": True}):
        async with session.post(url + "/queue", json=op) as response:
            body = await response.json()
            assert response.status == 507, body  # applied, but it could not be saved: says so
            assert body["error"]["type"] == "disk_full" and "could not be saved" in body["error"]["message"]
    assert (await (await session.get(url + "/queue")).json())["queue_pending"] == []
    filler.unlink()
    async with session.post(url + "/queue", json={"resume": True}) as response:
        assert response.status == 200
    async with session.post(url + "/prompt", json={"prompt": big}) as response:
        assert response.status == 200, await response.text()


async def test_a_prompt_whose_history_cannot_be_saved_is_not_announced_as_a_success(disk_server):
    server, session, disk = disk_server
    url = f"http://127.0.0.1:{server.port}"
    client_id = uuid.uuid4().hex
    ws = await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}")
    listener = Listener(ws)
    assert (await listener.next_json())["type"] == "status"
    # Sleep long enough to fill the disk while it runs; its outputs are large,
    # so the history row needs new pages.
    prompt = sleep_prompt(1.0, tag="t" * 300_000)
    async with session.post(url + "/prompt", json={"prompt": prompt, "client_id": client_id}) as response:
        assert response.status == 200
        prompt_id = (await response.json())["prompt_id"]
    started = []
    while not any(m["type"] == "executing" and m["data"].get("node") == "1" for m in started):
        started.append(await listener.next_json())  # its start is on disk; the node runs
    filler = await asyncio.to_thread(fill, disk)

    messages = started + await listener.until_done(prompt_id, timeout=30)
    kinds = [m["type"] for m in messages]
    assert "execution_success" not in kinds
    error = next(m for m in messages if m["type"] == "execution_error")["data"]
    assert error["exception_type"] == "HistoryNotSaved"
    assert "could not be recorded" in error["exception_message"] and "disk" in error["exception_message"]
    history = await (await session.get(url + f"/history/{prompt_id}")).json()
    assert history == {}
    queue = await (await session.get(url + "/queue")).json()
    assert [item[1] for item in queue["queue_pending"]] == [prompt_id]  # still queued, not lost
    assert server.queue.paused  # not run again and again into the full disk

    filler.unlink()
    async with session.post(url + "/queue", json={"resume": True}) as response:
        assert response.status == 200
    messages = await listener.until_done(prompt_id, timeout=30)
    assert "execution_success" in [m["type"] for m in messages]
    history = await (await session.get(url + f"/history/{prompt_id}")).json()
    assert history[prompt_id]["status"]["status_str"] == "success"
    await ws.close()

