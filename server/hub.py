"""The websocket hub: fans messages out to connected clients without ever
letting one client slow down the worker or the others.

Any thread may :meth:`Hub.post` a message; it is serialised once, appended to
an inbox and handed to the event loop in batches (one wake-up per batch, not
per message).  Each client has its own bounded outbox and sender task:

- JSON messages are never dropped; a client whose outbox overflows is too slow
  or dead and is disconnected (it may reconnect and read ``/history``).
- Previews are best effort: a newer preview replaces an undelivered older one,
  and previews are skipped while the client is behind on JSON messages.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import struct
import threading
from dataclasses import dataclass
from typing import Any, Callable

from .jsonio import dumps

log = logging.getLogger("loom.server")

#: ComfyUI's binary event type for an encoded preview image.
PREVIEW_IMAGE_EVENT = 1
IMAGE_TYPES = {"JPEG": 1, "PNG": 2}

OUTBOX_LIMIT = 4096
#: Bytes (characters, for text) a client's outbox may hold before it counts as not reading.
OUTBOX_BYTES = 32 * 1024 * 1024
#: A client whose socket takes nothing for this long (seconds) is disconnected.
STALL_TIMEOUT = 60.0
PREVIEW_BACKLOG = 8
#: While messages flow, the loop collects them this often instead of being woken per message.
POLL_INTERVAL = 0.002
#: Bytes a client's socket may hold unsent before we stop writing to it.
WRITE_HIGH_WATER = 256 * 1024
#: Queue-size broadcasts are sent at most this often.
STATUS_INTERVAL = 0.05


def preview_frame(image_format: str, image: bytes) -> bytes:
    """ComfyUI's layout: event type and image type as big-endian u32, then bytes."""
    return struct.pack(">II", PREVIEW_IMAGE_EVENT, IMAGE_TYPES.get(image_format.upper(), 1)) + image


@dataclass(frozen=True)
class Outgoing:
    sid: str | None  # None: every client
    payload: str | bytes

    @property
    def is_preview(self) -> bool:
        return isinstance(self.payload, bytes)


def ws_frame(payload: str | bytes) -> bytes:
    """One unmasked, uncompressed websocket frame (server to client, RFC 6455)."""
    if isinstance(payload, str):
        opcode, data = 0x81, payload.encode("utf-8")
    else:
        opcode, data = 0x82, payload
    size = len(data)
    if size < 126:
        header = struct.pack("!BB", opcode, size)
    elif size < 65536:
        header = struct.pack("!BBH", opcode, 126, size)
    else:
        header = struct.pack("!BBQ", opcode, 127, size)
    return header + data


class Client:
    def __init__(self, sid: str, ws: Any, transport: Any = None, *,
                 max_bytes: int = OUTBOX_BYTES, stall_timeout: float = STALL_TIMEOUT):
        self.sid = sid
        self.max_bytes = max_bytes
        self.stall_timeout = stall_timeout
        #: Size of what the outbox holds, so one huge message counts as much as many small ones.
        self.outbox_bytes = 0
        self.ws = ws
        #: The raw connection, for writing queued frames in one system call;
        #: None: send one message at a time through aiohttp.
        self.transport = transport
        self.outbox: collections.deque[str | bytes] = collections.deque()
        self.wakeup = asyncio.Event()
        self.closing = False
        self.task: asyncio.Task | None = None

    def offer(self, payload: str | bytes) -> bool:
        """Queue a message; False if the client can't keep up (JSON overflow)."""
        if self.closing:
            return True
        if isinstance(payload, bytes):
            if len(self.outbox) >= PREVIEW_BACKLOG:
                return True  # behind: drop the preview, keep the JSON flowing
            for index in range(len(self.outbox) - 1, -1, -1):
                if isinstance(self.outbox[index], bytes):
                    self.outbox_bytes -= len(self.outbox[index])
                    del self.outbox[index]  # latest preview wins
                    break
            if self.outbox_bytes + len(payload) > self.max_bytes:
                return True  # a preview is never worth a disconnect
        elif len(self.outbox) >= OUTBOX_LIMIT or self.outbox_bytes + len(payload) > self.max_bytes:
            return False
        self.outbox_bytes += len(payload)
        self.outbox.append(payload)
        self.wakeup.set()
        return True

    async def pump(self) -> None:
        ws = self.ws
        try:
            while not self.closing:
                await self.wakeup.wait()
                self.wakeup.clear()
                while self.outbox and not self.closing:
                    transport = self.transport
                    if transport is None or ws.closed:
                        payload = self.outbox.popleft()
                        self.outbox_bytes -= len(payload)
                        send = ws.send_bytes(payload) if isinstance(payload, bytes) else ws.send_str(payload)
                        try:
                            await asyncio.wait_for(send, self.stall_timeout)
                        except asyncio.TimeoutError:
                            self._stalled()
                            return
                        continue
                    # Everything queued goes out as one write: a burst of
                    # events costs one system call, not one per message.
                    frames = []
                    while self.outbox and len(frames) < 256:
                        payload = self.outbox.popleft()
                        self.outbox_bytes -= len(payload)
                        frames.append(ws_frame(payload))
                    if transport.is_closing():
                        return
                    transport.write(b"".join(frames))
                    # Back-pressure: a client that doesn't read fills the
                    # socket buffer; stop taking from the outbox (where
                    # previews are dropped and an overflow disconnects it).
                    # One that reads nothing for stall_timeout is cut off.
                    stalled_since = None
                    while transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                        if transport.is_closing() or self.closing:
                            return
                        now = asyncio.get_running_loop().time()
                        stalled_since = stalled_since or now
                        if now - stalled_since > self.stall_timeout:
                            self._stalled()
                            transport.abort()  # a close frame could not get through either
                            return
                        await asyncio.sleep(0.01)
        except (ConnectionError, RuntimeError, asyncio.CancelledError):
            pass  # the socket went away; the handler cleans up
        except Exception:  # never let one client's failure escape
            log.debug("websocket %s send failed", self.sid, exc_info=True)

    def _stalled(self) -> None:
        log.warning("websocket client %s read nothing for %.0f s; disconnecting it", self.sid, self.stall_timeout)
        self.closing = True
        self.outbox.clear()
        self.outbox_bytes = 0


class Hub:
    """Connected websocket clients by ``clientId`` (ComfyUI's ``sid``)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, outbox_bytes: int = OUTBOX_BYTES,
                 stall_timeout: float = STALL_TIMEOUT):
        self.loop = loop
        self.outbox_bytes = outbox_bytes
        self.stall_timeout = stall_timeout
        self.clients: dict[str, Client] = {}
        self._inbox: collections.deque[Outgoing] = collections.deque()
        self._lock = threading.Lock()
        self._loop_thread = threading.get_ident()
        #: A drain is already on its way (woken, or the poll timer is armed).
        self._scheduled = False
        self._polling = False
        self._poll_handle: asyncio.TimerHandle | None = None
        self._status_dirty = False
        self._status_handle: asyncio.TimerHandle | None = None
        #: The status timer is armed: it sends the latest status, so a change needs no wake-up.
        self._status_armed = False
        self._last_status = float("-inf")
        self.status_source: Callable[[], dict[str, Any]] = lambda: {"exec_info": {"queue_remaining": 0}}

    # ------------------------------------------------------ any thread
    def post(self, event: str, data: Any, sid: str | None = None, urgent: bool = False) -> None:
        """Send ``{"type": event, "data": data}`` to ``sid`` (None: everyone)."""
        self.post_raw(Outgoing(sid, dumps({"type": event, "data": data})), urgent)

    def post_preview(self, image_format: str, image: bytes, sid: str | None = None) -> None:
        self.post_raw(Outgoing(sid, preview_frame(image_format, image)))

    def post_raw(self, message: Outgoing, urgent: bool = False) -> None:
        """Queue a message for the loop.

        Waking the event loop from another thread costs a system call and,
        under load, a GIL hand-over; so while messages keep coming the loop
        polls the inbox every ``POLL_INTERVAL`` instead of being woken for
        each.  ``urgent`` messages (a prompt's end) wake it regardless.
        """
        with self._lock:
            self._inbox.append(message)
            if self._scheduled or (self._polling and not urgent):
                return
            self._scheduled = True
        self._wake()

    def send_sync(self, event: str, data: Any, sid: str | None = None) -> None:
        """ComfyUI's ``PromptServer.send_sync``: thread-safe, never blocks."""
        if isinstance(data, (bytes, bytearray)):
            self.post_raw(Outgoing(sid, struct.pack(">I", int(event)) + bytes(data)))
        else:
            self.post(event, data, sid)

    def status_changed(self) -> None:
        """Broadcast the queue size soon; changes coalesce, and clients get at
        most one status per ``STATUS_INTERVAL`` (the latest one always)."""
        with self._lock:
            self._status_dirty = True
            # The worker changes the queue twice per prompt: waking the loop
            # each time, only for it to wait for the timer, cost a system call
            # and a GIL hand-over per change.
            if self._scheduled or self._polling or self._status_armed:
                return
            self._scheduled = True
        self._wake()

    def _wake(self) -> None:
        try:
            if threading.get_ident() == self._loop_thread:
                self.loop.call_soon(self._drain)
            else:
                self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # loop closed during shutdown
            pass

    # --------------------------------------------------- event loop only
    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
            batch, self._inbox = self._inbox, collections.deque()
            status_due = self._status_dirty
            self._polling = bool(batch)
        for message in batch:
            self._deliver(message)
        if self._polling and self._poll_handle is None:
            self._poll_handle = self.loop.call_later(POLL_INTERVAL, self._poll)
        if status_due:
            self._maybe_send_status()

    def _poll(self) -> None:
        self._poll_handle = None
        self._drain()

    def _maybe_send_status(self) -> None:
        now = self.loop.time()
        wait = self._last_status + STATUS_INTERVAL - now
        if wait > 0:
            if self._status_handle is None:
                with self._lock:
                    self._status_armed = True
                self._status_handle = self.loop.call_later(wait, self._status_timer)
            return
        with self._lock:
            self._status_dirty = False
        self._last_status = now
        message = dumps({"type": "status", "data": {"status": self.status_source()}})
        self._deliver(Outgoing(None, message))

    def _status_timer(self) -> None:
        self._status_handle = None
        with self._lock:
            self._status_armed = False
        if self._status_dirty:
            self._maybe_send_status()

    def _deliver(self, message: Outgoing) -> None:
        if message.sid is None:
            targets = list(self.clients.values())
        else:
            client = self.clients.get(message.sid)
            targets = [client] if client is not None else []
        for client in targets:
            if not client.offer(message.payload):
                log.warning("websocket client %s is not reading; disconnecting it", client.sid)
                self.detach(client)
                asyncio.ensure_future(self._close(client))

    async def _close(self, client: Client) -> None:
        try:
            await asyncio.wait_for(client.ws.close(code=1013, message=b"too slow"), 5)
        except Exception:
            # A client that reads nothing never answers the close frame either.
            if client.transport is not None and not client.transport.is_closing():
                client.transport.abort()

    def attach(self, sid: str, ws: Any, transport: Any = None) -> Client:
        client = Client(sid, ws, transport, max_bytes=self.outbox_bytes, stall_timeout=self.stall_timeout)
        old = self.clients.get(sid)
        if old is not None:
            # Same clientId again (a reloaded tab): the newest socket gets the
            # messages, as in ComfyUI.
            self.detach(old)
        self.clients[sid] = client
        client.task = asyncio.ensure_future(client.pump())
        return client

    def send_now(self, client: Client, event: str, data: Any) -> None:
        client.offer(dumps({"type": event, "data": data}))

    def detach(self, client: Client) -> None:
        if self.clients.get(client.sid) is client:
            del self.clients[client.sid]
        client.closing = True
        client.wakeup.set()

    async def close_all(self) -> None:
        for handle in (self._poll_handle, self._status_handle):
            if handle is not None:
                handle.cancel()
        for client in list(self.clients.values()):
            self.detach(client)
            await self._close(client)
