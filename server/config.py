"""The server's options (what ``loom serve`` flags set)."""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from nodes.image_bounds import DEFAULT_MAX_IMAGE_PIXELS

#: The editor's files, shipped next to the server package.
DEFAULT_WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

MIB = 1024 * 1024


@dataclass
class ServerOptions:
    listen: str = "127.0.0.1"
    port: int = 8188
    #: Upload size limit in MiB (ComfyUI's ``--max-upload-size``).
    max_upload_size: float = 100.0
    #: JSON bodies (prompts, queue operations) are capped separately: a prompt
    #: with its embedded workflow is kilobytes, never hundreds of MiB.
    max_json_size: int = 32 * MIB
    auth_token: str | None = None
    #: The one origin allowed to make cross-origin requests (``--enable-cors-header``).
    cors_origin: str | None = None
    cache: str = "classic"
    max_history: int = 10000
    web_root: Path = DEFAULT_WEB_ROOT
    verbose: bool = False
    #: Smallest interval between two previews sent for one prompt (seconds).
    preview_interval: float = 0.05
    #: Starts of one prompt that ended with the process dying before it is
    #: recorded as failed (a node that calls os._exit or crashes).
    max_prompt_attempts: int = 3
    #: Seconds a node may ignore /interrupt before its prompt is ended as
    #: interrupted and the worker moves on without it.
    interrupt_grace: float = 30.0
    #: Move a damaged queue database aside (``*.corrupt-<time>``) and start from
    #: what can be read, instead of refusing to start.
    recover_queue: bool = False
    #: Largest image decoded from a file (uploads, /view conversions, LoadImage), in pixels.
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    #: A connection that is idle, or has not finished sending a request's headers,
    #: this many seconds after it opened or after its last response is closed.
    keepalive_timeout: float = 60.0
    #: Bytes of messages a websocket client may have waiting; beyond, it is disconnected.
    ws_outbox_bytes: int = 32 * MIB
    #: A websocket client that has not read what was sent for this long is disconnected.
    ws_stall_timeout: float = 60.0
    #: ``POST /models/download`` may fetch from loopback and private-range addresses.
    allow_private_downloads: bool = False
    #: Every job's end is POSTed here too (``--webhook``); jobs may name their own (``extra_data.webhook``).
    webhook_url: str | None = None
    #: HMAC-SHA256 key for the ``X-Loom-Signature`` header (``--webhook-secret``).
    webhook_secret: str | None = None
    #: Webhooks may target loopback and private-range addresses.
    allow_private_webhooks: bool = False
    #: Deliveries tried before one is given up; seconds before the first retry (doubling).
    webhook_max_attempts: int = 8
    webhook_backoff: float = 5.0
    #: The users file (``--users``): tokens and roles; None: one anonymous user (ComfyUI's behaviour).
    users_file: Path | None = None

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_size * MIB)

    @property
    def json_limit(self) -> int:
        return min(self.max_json_size, self.max_upload_bytes)

    @property
    def listens_on_loopback_only(self) -> bool:
        return is_loopback(self.listen)


@functools.lru_cache(maxsize=256)
def is_loopback(host: str) -> bool:
    # Asked on every request (Host header check); parsing the address each
    # time showed up in profiles of trivial prompts.
    host = host.strip("[]")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
