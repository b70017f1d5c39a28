"""What the jobs API, webhooks and users add to a running server, started and
stopped with it: the change notifications long-polls wait on, the webhook
dispatcher, the user table, and the check every ``POST /prompt`` passes
(:meth:`JobService.admit`: the creation time, the owner, the webhook URL)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .http_errors import ApiError
from .jobs import OWNER_KEY
from .routes_jobs import JobEvents
from .webhooks import BadWebhook, WebhookDispatcher, WebhookOptions, check_webhook_url

if TYPE_CHECKING:
    from .app import LoomServer


class JobService:
    def __init__(self, server: "LoomServer"):
        self.server = server
        self.webhooks: WebhookDispatcher | None = None

    async def start(self) -> None:
        server = self.server
        options = server.options
        server.job_events = JobEvents(asyncio.get_running_loop())
        server.job_events.attach(server.queue)
        server.admit_prompt = self.admit
        if options.users_file is not None:
            from .user_scope import UserScope
            from .users import RoundRobin, UserTable

            server.users = UserScope(server, UserTable(options.users_file))
            server.queue.pick = RoundRobin()
            from .job_index import OWNER_INDEX

            await asyncio.wrap_future(server.store._submit(lambda c: c.execute(OWNER_INDEX)))
        # The server-wide target, read by the outbox trigger when a job ends
        # (None: only jobs that name their own webhook get one).
        await asyncio.wrap_future(server.store.set_setting("webhook_url", options.webhook_url or None))
        self.webhooks = WebhookDispatcher(server.store, WebhookOptions(
            secret=options.webhook_secret, allow_private=options.allow_private_webhooks,
            max_attempts=options.webhook_max_attempts, backoff=options.webhook_backoff),
            read=server.store._read)
        await self.webhooks.start()

    async def stop(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.stop()
            self.webhooks = None

    def admit(self, request: web.Request, extra_data: dict[str, Any], prompt: dict[str, Any] | None = None) -> None:
        """Stamp and check a prompt's ``extra_data`` (and, for a user, where
        its files are saved) before it is queued."""
        # ComfyUI's jobs API sorts on it (milliseconds).
        extra_data["create_time"] = int(time.time() * 1000)
        users = getattr(self.server, "users", None)
        extra_data.pop(OWNER_KEY, None)  # never taken from the client
        if users is not None:
            user = users.scope(request, owner=True)
            if user is not None:
                extra_data[OWNER_KEY] = user
                if users.scope(request) is not None:  # a user, not an admin
                    if prompt is not None:
                        _into_user_folder(prompt, user)
                    client_id = extra_data.get("client_id")
                    extra_data["client_id"] = users.client_id(user, client_id if isinstance(client_id, str) else None)
        if "webhook" in extra_data:
            if extra_data["webhook"] is None:
                del extra_data["webhook"]
            else:
                try:
                    check_webhook_url(extra_data["webhook"], self.server.options.allow_private_webhooks,
                                      "extra_data.webhook")
                except BadWebhook as exc:
                    raise ApiError(400, "invalid_webhook", str(exc)) from None


def _into_user_folder(prompt: dict[str, Any], user: str) -> None:
    """Save nodes write under ``output/<user>/``: their ``filename_prefix``
    gains the user's folder (ComfyUI's prefixes may name subfolders)."""
    for node_id, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict) or "filename_prefix" not in inputs:
            continue
        prefix = inputs["filename_prefix"]
        if not isinstance(prefix, str):
            raise ApiError(400, "invalid_prompt", f"node {str(node_id)[:40]}: on a server with users, filename_prefix"
                           " must be written in the node, not linked from another one (it decides the user's"
                           " output folder)", node_errors={})
        parts = prefix.replace("\\", "/").split("/")
        if ".." in parts or prefix.startswith("/"):
            raise ApiError(400, "invalid_prompt", f"node {str(node_id)[:40]}: filename_prefix {prefix[:100]!r} may not"
                           " leave the user's output folder", node_errors={})
        inputs["filename_prefix"] = f"{user}/{prefix}"
