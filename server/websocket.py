"""``/ws?clientId=``: the event stream a client reads while its prompts run."""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING

from aiohttp import WSMsgType, web

from .http_errors import ApiError

if TYPE_CHECKING:
    from .app import LoomServer

log = logging.getLogger("loom.server")

MAX_CLIENT_ID = 200

#: Where the app keeps its LoomServer.
SERVER_KEY: web.AppKey = web.AppKey("loom_server", object)


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    server: "LoomServer" = request.app[SERVER_KEY]  # type: ignore[assignment]
    sid = request.query.get("clientId") or uuid.uuid4().hex
    if len(sid) > MAX_CLIENT_ID:
        raise ApiError(400, "invalid_client_id", f"clientId is longer than {MAX_CLIENT_ID} characters")
    # No permessage-deflate: compressing each small event costs more CPU than
    # the bytes are worth on a local link, and previews are already compressed.
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1024 * 1024, compress=False)
    if not ws.can_prepare(request).ok:
        raise ApiError(400, "not_a_websocket", "/ws expects a websocket upgrade request")
    await ws.prepare(request)
    hub = server.hub
    # Negotiated extensions would change the framing we write ourselves.
    plain = not getattr(ws, "compress", False)
    client = hub.attach(sid, ws, request.transport if plain else None)
    hub.send_now(client, "status", {"status": server.queue_info(), "sid": sid})
    running = server.worker.running
    if running is not None and running.client_id == sid and running.node is not None:
        # A reconnect (page reload) mid-prompt: say where the run is.
        hub.send_now(client, "executing", {"node": running.node, "display_node": running.display_node,
                                           "prompt_id": running.prompt_id})
    try:
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                _on_client_message(server, client, message.data)
            elif message.type == WSMsgType.ERROR:
                log.debug("websocket %s closed with %s", sid, ws.exception())
    finally:
        hub.detach(client)
    return ws


def _on_client_message(server: "LoomServer", client, text: str) -> None:
    """Clients may announce their feature flags; we answer with ours."""
    try:
        message = json.loads(text)
    except ValueError:
        return
    if isinstance(message, dict) and message.get("type") == "feature_flags":
        server.hub.send_now(client, "feature_flags", server.features())
