"""The editor's files (``web/``) at ``/`` and plug-ins' web folders at
``/extensions/<pack>/``, with explicit content types (a minimal system's
``mimetypes`` may not know ``.mjs`` or ``.wasm``, and browsers refuse ES
modules served as ``text/plain``)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from .jsonio import json_response
from .http_errors import ApiError

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".js": "application/javascript; charset=utf-8",
    ".mjs": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".bmp": "image/bmp",
    ".tif": "image/tiff",
    ".tiff": "image/tiff",
    ".ico": "image/x-icon",
    ".wasm": "application/wasm",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",
    ".webm": "video/webm",
    ".mp4": "video/mp4",
    ".gz": "application/gzip",
    ".safetensors": "application/octet-stream",
}


def content_type_for(name: str) -> str:
    return CONTENT_TYPES.get(os.path.splitext(name)[1].lower(), "application/octet-stream")


def safe_child(root: Path, relative: str) -> Path | None:
    """``root/relative`` if it is a file inside ``root`` (symlinks resolved)."""
    if "\x00" in relative or "\\" in relative:
        return None
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    real_root = root.resolve()
    candidate = real_root.joinpath(*parts).resolve()
    if not candidate.is_relative_to(real_root) or not candidate.is_file():
        return None
    return candidate


def file_response(path: Path) -> web.FileResponse:
    headers = {"Content-Type": content_type_for(path.name)}
    if path.suffix in (".js", ".mjs", ".css", ".html", ".json"):
        # The editor changes with the server: always revalidate (ETag/mtime).
        headers["Cache-Control"] = "no-cache"
    return web.FileResponse(path, headers=headers)


class StaticFiles:
    def __init__(self, web_root: Path, extension_dirs: dict[str, str]):
        self.web_root = Path(web_root)
        self.extension_dirs = {name: Path(folder) for name, folder in extension_dirs.items()}

    def register(self, app: web.Application, add) -> None:
        add("GET", "/extensions", self.list_extensions)
        app.router.add_get("/extensions/{pack}/{path:.*}", self.extension_file)
        app.router.add_get("/", self.index)
        app.router.add_get("/{path:.*}", self.web_file)

    async def index(self, request: web.Request) -> web.StreamResponse:
        path = safe_child(self.web_root, "index.html")
        if path is None:
            raise ApiError(404, "no_editor", f"the editor's index.html is missing from {self.web_root}")
        return file_response(path)

    async def web_file(self, request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        path = safe_child(self.web_root, relative)
        if path is None:
            raise ApiError(404, "not_found", f"no route or file at /{relative[:200]}")
        return file_response(path)

    async def extension_file(self, request: web.Request) -> web.StreamResponse:
        pack = request.match_info["pack"]
        relative = request.match_info["path"]
        folder = self.extension_dirs.get(pack)
        path = None
        if folder is not None:
            path = safe_child(folder, relative)
        elif (self.web_root / "extensions").is_dir():
            path = safe_child(self.web_root / "extensions", f"{pack}/{relative}")
        if path is None:
            raise ApiError(404, "not_found", f"no extension file /extensions/{pack}/{relative[:200]}")
        return file_response(path)

    async def list_extensions(self, request: web.Request) -> web.Response:
        """Every extension script the editor should load (ComfyUI's ``/extensions``)."""
        found: list[str] = []
        own = self.web_root / "extensions"
        if own.is_dir():
            found += ["/" + p.relative_to(self.web_root).as_posix() for p in sorted(own.rglob("*.js"))]
        for name, folder in self.extension_dirs.items():
            if folder.is_dir():
                found += [f"/extensions/{quote(name)}/{p.relative_to(folder).as_posix()}"
                          for p in sorted(folder.rglob("*.js"))]
        return json_response(found)
