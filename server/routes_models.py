"""Model downloads over HTTP: ``POST /models/download`` starts one, progress
goes over the websocket, ``GET /models/downloads`` lists them and
``POST /models/downloads/{id}/cancel`` stops one (its partial file removed).

(``GET /models`` and ``GET /models/{folder}``, ComfyUI's listings the editor
uses to tell which files are present, are in :mod:`server.routes_info`.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from .jsonio import json_response
from .http_errors import ApiError, read_json_object
from .download_requests import (BadDownloadRequest, DownloadConflict, DownloadFinished, DownloadRequest,
                                UnknownDownload)
from .model_downloads import DownloadManager

if TYPE_CHECKING:
    from .app import LoomServer


def _sha256_of(entry: dict[str, Any]) -> Any:
    """The hash, given as ``sha256`` or ComfyUI's ``hash`` with ``hash_type: "sha256"``."""
    if entry.get("sha256") not in (None, ""):
        return entry["sha256"]
    if entry.get("hash") not in (None, "") and str(entry.get("hash_type", "sha256")).lower() == "sha256":
        return entry["hash"]
    return None


class ModelRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server
        self.downloads = DownloadManager(server.folders, lambda event, data: server.hub.post(event, data),
                                         allow_private=server.options.allow_private_downloads)

    def register(self, add, app: web.Application) -> None:
        add("POST", "/models/download", self.download)
        add("GET", "/models/downloads", self.list_downloads)
        add("POST", "/models/downloads/{download_id}/cancel", self.cancel)
        app.on_shutdown.append(self._close)

    async def _close(self, app: web.Application) -> None:
        await self.downloads.close()

    async def download(self, request: web.Request) -> web.Response:
        data = await read_json_object(request, self.server.options.json_limit)
        try:
            status = self.downloads.start(DownloadRequest(
                url=data.get("url"), directory=data.get("directory"), name=data.get("name"),
                sha256=_sha256_of(data), size=data.get("size")))
        except BadDownloadRequest as exc:
            raise ApiError(400, exc.kind, str(exc)) from None
        except DownloadConflict as exc:
            raise ApiError(409, exc.kind, str(exc)) from None
        return json_response(status.message(), status=202)

    async def list_downloads(self, request: web.Request) -> web.Response:
        return json_response([status.message() for status in self.downloads.list()])

    async def cancel(self, request: web.Request) -> web.Response:
        """Answers once the transfer stopped and the part file is gone."""
        try:
            status = await self.downloads.cancel(request.match_info["download_id"])
        except UnknownDownload as exc:
            raise ApiError(404, exc.kind, str(exc)) from None
        except DownloadFinished as exc:
            raise ApiError(409, exc.kind, str(exc)) from None
        return json_response(status.message())
