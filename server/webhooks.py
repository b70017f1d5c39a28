"""Webhooks: a signed JSON POST when a job ends.

A delivery is owed from the moment the history row is committed (a trigger
writes it to ``webhook_outbox`` in the same transaction; see
``server.job_index``), so it survives a crash or restart and is delivered at
least once.  Each carries an ``Idempotency-Key`` (and ``X-Loom-Delivery``):
``<prompt id>.job`` or ``<prompt id>.server``, the same on every retry, so a
receiver can drop repeats.

Signature: with ``--webhook-secret``, ``X-Loom-Signature: sha256=<hex>`` is
HMAC-SHA256 of the raw body under the secret (compare it in constant time).

Failures (connection errors, timeouts, non-2xx answers) are retried with
exponential backoff (``backoff * 2**attempt`` seconds, at most an hour), the
schedule kept in the database; after ``max_attempts`` the delivery is marked
failed and kept for inspection.  Loopback and private-network targets are
refused unless ``--allow-private-webhooks`` (they would let anyone who can
queue a prompt make the server call into its own network).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import urlsplit

import orjson

from . import jobs
from .jsonio import dumps
from .download_requests import _private_ip, _public_only_session

log = logging.getLogger("loom.server")

SIGNATURE_HEADER = "X-Loom-Signature"
MAX_URL = 2000
_MAX_DELAY = 3600.0


class BadWebhook(ValueError):
    """A webhook URL that cannot or may not be used; the message says why."""


def check_webhook_url(url: Any, allow_private: bool, what: str = "webhook") -> str:
    """``url`` if it can be a webhook target, else :class:`BadWebhook`."""
    if not isinstance(url, str) or not url:
        raise BadWebhook(f"'{what}' must be an http:// or https:// URL")
    if len(url) > MAX_URL:
        raise BadWebhook(f"'{what}' is longer than {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a bad port)
    except ValueError as exc:
        raise BadWebhook(f"'{what}' is not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadWebhook(f"'{what}' must be an http:// or https:// URL with a host, not {url[:200]!r}")
    host = parts.hostname.rstrip(".").lower()
    if not allow_private and (host == "localhost" or host.endswith(".localhost") or _private_ip(host)):
        raise BadWebhook(f"refusing the {what} {host!r}: it is this machine or a private network; start the"
                         " server with --allow-private-webhooks to allow local addresses")
    return url


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class WebhookOptions:
    secret: str | None = None
    allow_private: bool = False
    max_attempts: int = 8
    #: Seconds before the first retry; doubled for each further one.
    backoff: float = 5.0
    timeout: float = 10.0
    #: Seconds between two looks for deliveries that are due.
    poll: float = 0.25


@dataclass(frozen=True)
class Delivery:
    id: int
    delivery_id: str
    prompt_id: str
    url: str
    status: str
    attempts: int


class WebhookDispatcher:
    """Delivers what ``webhook_outbox`` owes, from the event loop."""

    def __init__(self, store: Any, options: WebhookOptions, read: Callable[[Callable[[Any], Any]], Any]):
        self.store = store
        self.options = options
        self._read = read
        self._task: asyncio.Task | None = None
        self._session: Any = None
        self.delivered = 0

    async def start(self) -> None:
        import aiohttp

        timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        self._session = (aiohttp.ClientSession(timeout=timeout) if self.options.allow_private
                         else _public_only_session(timeout=timeout))
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loom-webhooks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _run(self) -> None:
        while True:
            try:
                due = await self._due()
                if due:
                    await asyncio.gather(*(self._deliver(d) for d in due))
                    continue
            except asyncio.CancelledError:
                raise
            except Exception:  # a damaged row, a closed store: log, keep going
                log.exception("webhook dispatcher")
            await asyncio.sleep(self.options.poll)

    async def _due(self) -> list[Delivery]:
        now = time.time()

        def fn(c: Any) -> list[tuple]:
            return c.execute("SELECT id, delivery_id, prompt_id, url, status, attempts FROM webhook_outbox"
                             " WHERE state = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT 16",
                             (now,)).fetchall()

        return [Delivery(*row) for row in await asyncio.wrap_future(self._read(fn))]

    async def _payload(self, delivery: Delivery) -> bytes:
        def fn(c: Any) -> Any:
            row = c.execute("SELECT entry FROM history WHERE prompt_id = ?", (delivery.prompt_id,)).fetchone()
            return None if row is None else row[0]

        text = await asyncio.wrap_future(self._read(fn))
        job: dict[str, Any] = {"id": delivery.prompt_id, "status": delivery.status}
        if text is not None:
            try:
                entry = orjson.loads(text)
            except orjson.JSONDecodeError:
                entry = None
            if isinstance(entry, dict):
                job = jobs.history_job(delivery.prompt_id, entry, full=True)
                job.pop("workflow", None)  # the whole prompt: large, and the receiver queued it
        return dumps({"event": f"job.{delivery.status}", "delivery_id": delivery.delivery_id,
                      "prompt_id": delivery.prompt_id, "status": delivery.status, "job": job,
                      "sent_at": int(time.time() * 1000)}).encode()

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            check_webhook_url(delivery.url, self.options.allow_private)
        except BadWebhook as exc:
            await self._failed(delivery, str(exc), final=True)
            return
        body = await self._payload(delivery)
        headers = {"Content-Type": "application/json", "User-Agent": "Loom-Webhook/1",
                   "Idempotency-Key": delivery.delivery_id, "X-Loom-Delivery": delivery.delivery_id,
                   "X-Loom-Event": f"job.{delivery.status}", "X-Loom-Attempt": str(delivery.attempts + 1)}
        if self.options.secret:
            headers[SIGNATURE_HEADER] = sign(self.options.secret, body)
        try:
            async with self._session.post(delivery.url, data=body, headers=headers,
                                          allow_redirects=False) as response:
                await response.read()
                ok = 200 <= response.status < 300
                error = None if ok else f"HTTP {response.status}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # connection refused, timeout, a private address after resolving
            ok, error = False, f"{type(exc).__name__}: {exc}"[:500]
        if ok:
            self.delivered += 1
            await asyncio.wrap_future(self.store._submit(
                lambda c: c.execute("DELETE FROM webhook_outbox WHERE id = ?", (delivery.id,))))
        else:
            await self._failed(delivery, error or "failed")

    async def _failed(self, delivery: Delivery, error: str, final: bool = False) -> None:
        attempts = delivery.attempts + 1
        final = final or attempts >= self.options.max_attempts
        delay = min(self.options.backoff * 2 ** (attempts - 1), _MAX_DELAY)
        next_at = time.time() + delay
        state = "failed" if final else "pending"
        log.warning("webhook %s for prompt %s to %s: %s (%s)", delivery.delivery_id, delivery.prompt_id,
                    delivery.url[:200], error, "given up" if final else f"retry in {delay:g} s")
        await asyncio.wrap_future(self.store._submit(lambda c: c.execute(
            "UPDATE webhook_outbox SET attempts = ?, next_at = ?, state = ?, last_error = ? WHERE id = ?",
            (attempts, next_at, state, error, delivery.id))))
