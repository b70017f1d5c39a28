"""Queue-size broadcasts: changes from other threads coalesce, and the last
status a client hears is the queue's final size."""

from __future__ import annotations

import asyncio
import json

from server import hub as hub_module
from server.hub import Hub


class RecordingSocket:
    closed = False

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send_str(self, text: str) -> None:
        self.sent.append(text)


async def test_a_burst_of_queue_changes_from_a_thread_ends_with_the_final_size():
    hub = Hub(asyncio.get_running_loop())
    size = 0
    hub.status_source = lambda: {"exec_info": {"queue_remaining": size}}
    socket = RecordingSocket()
    hub.attach("watcher", socket)

    def burst() -> None:
        nonlocal size
        for n in range(1, 200):
            size = n
            hub.status_changed()

    await asyncio.to_thread(burst)
    await asyncio.sleep(hub_module.STATUS_INTERVAL * 4)
    statuses = [json.loads(m)["data"]["status"]["exec_info"]["queue_remaining"] for m in socket.sent]
    assert statuses[-1] == 199
    assert len(statuses) < 10  # coalesced, not one per change
    await hub.close_all()
