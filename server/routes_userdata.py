"""ComfyUI's userdata API: the files a user keeps on the server (saved workflows,
settings, templates), under ``<user>/``.

Routes and status codes are ComfyUI's (``app/user_manager.py``), so its frontend
and clients that save workflows work unchanged:

* ``GET /userdata?dir=D[&recurse=true][&full_info=true][&split=true]`` lists D's files;
* ``GET /v2/userdata[?path=P]`` lists P's folders and files with sizes;
* ``GET|POST|DELETE /userdata/{file}`` reads, writes (``?overwrite=false`` → 409
  when it exists) and removes one file; ``{file}`` carries its folder URL-encoded
  (``workflows%2Fa.json``);
* ``POST /userdata/{file}/move/{dest}`` renames.

The server's own state lives in the same folder (the queue database), so names
starting with it, and hidden names, are refused: a client can neither read the
queue nor overwrite it.  Writes are atomic (a temp file renamed into place), so a
crash or a full disk never leaves half a workflow.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from .http_errors import ApiError
from .jsonio import json_response

if TYPE_CHECKING:
    from .app import LoomServer


@dataclass(frozen=True)
class UserFiles:
    """One user's folder and the rule for which names in it a client may touch."""

    root: Path
    reserved_prefix: str  # the queue database's stem: "loom-queue"

    def resolve(self, relative: str) -> Path:
        """``root/relative`` for a client-given name; 403 when it leaves the folder
        or names the server's own state."""
        if "%" in relative:
            relative = unquote(relative)
        if not relative or "\x00" in relative or "\\" in relative or not _encodable(relative):
            raise ApiError(400, "invalid_path", f"invalid user file name {relative[:200]!r}")
        parts = [p for p in relative.split("/") if p not in ("", ".")]
        if not parts or any(p == ".." or p.startswith(".") for p in parts) \
                or parts[0].startswith(self.reserved_prefix):
            raise ApiError(403, "forbidden_path", f"{relative[:200]!r} is not a user file this server lets you touch")
        root = self.root.resolve()
        path = root.joinpath(*parts)
        # Symlinks inside the folder may not point out of it.
        if not path.resolve().is_relative_to(root):
            raise ApiError(403, "forbidden_path", f"{relative[:200]!r} leads outside the user folder")
        return path

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root.resolve()).as_posix()

    def info(self, path: Path, relative_to: Path | None = None) -> dict[str, Any]:
        """ComfyUI's FileInfo: path, size, and times in milliseconds."""
        stat = path.stat()
        base = (relative_to or self.root).resolve()
        return {"path": path.relative_to(base).as_posix(), "size": stat.st_size,
                "modified": int(stat.st_mtime * 1000), "created": int(stat.st_ctime * 1000)}


def _encodable(name: str) -> bool:
    """False for names the file system cannot hold (lone surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _flag(request: web.Request, name: str, default: str = "false") -> bool:
    return request.query.get(name, default).lower() == "true"


def _os_error(exc: OSError, what: str) -> ApiError:
    if exc.errno == errno.ENOSPC:
        return ApiError(507, "disk_full", f"cannot write {what}: the disk is full")
    if exc.errno == errno.ENAMETOOLONG:
        return ApiError(400, "name_too_long", f"cannot write {what}: the name is too long for the file system")
    return ApiError(400, "invalid_filename",
                    f"cannot write {what} ({exc.strerror or exc}); avoid special characters like :\\/*?\"<>|")


def write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class UserdataRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server

    @property
    def files(self) -> UserFiles:
        return UserFiles(Path(self.server.folders.user), Path(self.server.db_path).stem)

    def register(self, add) -> None:
        add("GET", "/userdata", self.list_dir)
        add("GET", "/v2/userdata", self.list_v2)
        add("GET", "/userdata/{file}", self.read)
        add("POST", "/userdata/{file}", self.write)
        add("DELETE", "/userdata/{file}", self.delete)
        add("POST", "/userdata/{file}/move/{dest}", self.move)

    async def list_dir(self, request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            raise ApiError(400, "missing_dir", "GET /userdata needs ?dir=FOLDER (e.g. workflows)")
        folder = self.files.resolve(directory)
        if not folder.is_dir():
            raise ApiError(404, "dir_not_found", f"no user folder {directory[:200]!r}")
        full_info, split = _flag(request, "full_info"), _flag(request, "split")
        found = folder.rglob("*") if _flag(request, "recurse") else folder.glob("*")
        result: list[Any] = []
        for path in sorted(found):
            rel = path.relative_to(folder)
            if not path.is_file() or any(p.startswith(".") for p in rel.parts):
                continue
            if full_info:
                result.append(self.files.info(path, folder))
            elif split:
                result.append([rel.as_posix(), *rel.parts])
            else:
                result.append(rel.as_posix())
        return json_response(result)

    async def list_v2(self, request: web.Request) -> web.Response:
        requested = request.query.get("path", "")
        files = self.files
        root = files.root.resolve()
        target = files.resolve(requested) if requested else root
        if not target.exists():
            if target == root:
                return json_response([])
            raise ApiError(404, "path_not_found", f"no user folder {requested[:200]!r}")
        if not target.is_dir():
            raise ApiError(400, "not_a_directory", f"{requested[:200]!r} is a file, not a folder")
        entries: list[dict[str, Any]] = []
        for path in target.rglob("*"):
            rel = path.relative_to(root)
            if any(p.startswith(".") for p in rel.parts) or rel.parts[0].startswith(files.reserved_prefix):
                continue
            entry: dict[str, Any] = {"name": path.name, "path": rel.as_posix(),
                                     "type": "directory" if path.is_dir() else "file"}
            if entry["type"] == "file":
                stat = path.stat()
                entry.update(size=stat.st_size, modified=stat.st_mtime)
            entries.append(entry)
        entries.sort(key=lambda e: (e["type"] != "directory", e["name"].lower()))
        return json_response(entries)

    async def read(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        path = self.files.resolve(name)
        if not path.is_file():
            raise ApiError(404, "file_not_found", f"no user file {name[:200]!r}")
        # User files are arbitrary content: never rendered inline in the app's origin.
        return web.FileResponse(path, headers={
            "Content-Type": "application/json" if path.suffix == ".json" else "application/octet-stream",
            "X-Content-Type-Options": "nosniff", "Content-Disposition": "attachment",
            "Cache-Control": "no-cache"})

    async def write(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        path = self.files.resolve(name)
        if path.is_dir():
            raise ApiError(400, "is_a_directory", f"{name[:200]!r} is a folder")
        if not _flag(request, "overwrite", "true") and path.exists():
            raise ApiError(409, "file_exists", f"{name[:200]!r} already exists; pass overwrite=true to replace it")
        limit = self.server.options.max_upload_bytes
        body = await request.read()
        if len(body) > limit:
            raise ApiError(413, "body_too_large", f"user file is over the {limit}-byte limit")
        try:
            write_atomically(path, body)
        except OSError as exc:
            raise _os_error(exc, repr(name[:200])) from None
        files = self.files
        return json_response(files.info(path.resolve()) if _flag(request, "full_info")
                             else files.relative(path.resolve()))

    async def delete(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        path = self.files.resolve(name)
        if not path.is_file():
            raise ApiError(404, "file_not_found", f"no user file {name[:200]!r}")
        path.unlink()
        return web.Response(status=204)

    async def move(self, request: web.Request) -> web.Response:
        files = self.files
        source_name, dest_name = request.match_info["file"], request.match_info["dest"]
        source, dest = files.resolve(source_name), files.resolve(dest_name)
        if not source.is_file():
            raise ApiError(404, "file_not_found", f"no user file {source_name[:200]!r}")
        if dest.is_dir():
            raise ApiError(400, "is_a_directory", f"{dest_name[:200]!r} is a folder")
        if not _flag(request, "overwrite", "true") and dest.exists():
            raise ApiError(409, "file_exists", f"{dest_name[:200]!r} already exists; pass overwrite=true to replace it")
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, dest)
        except OSError as exc:
            raise _os_error(exc, repr(dest_name[:200])) from None
        return json_response(files.info(dest.resolve()) if _flag(request, "full_info")
                             else files.relative(dest.resolve()))
