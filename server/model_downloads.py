"""Downloading a model file into its kind's folder (``POST /models/download``,
``loom models download``).

A download never leaves a file under its real name that was not checked: the
bytes go to ``<name>.part`` next to the destination, and only when the whole
file arrived, has the expected size and (if one was given) the expected
sha256 is it renamed.  A ``.part`` left by an interrupted download is resumed
with an HTTP ``Range`` request; a server that ignores ranges is read again
from the start.  Model listings only show model extensions, so a ``.part``
never appears as a choice in a loader.

A *cancelled* download (its task cancelled: the user's cancel, the server
stopping, Ctrl-C in ``loom models download``) is different from a broken
connection: nobody wants those bytes any more, so its ``.part`` is removed.
The destination itself is never touched by a cancel.

Only ``http``/``https`` URLs are fetched, and the destination is checked the
way :mod:`nodes.folders` checks every outside name: no ``..``, no absolute
paths, no NUL, nothing that a symlink takes out of the models folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import urlsplit

from nodes.folders import Folders

from .download_requests import (Destination, DownloadConflict, DownloadError, DownloadFinished, DownloadInterrupted,
                                DownloadRequest, UnknownDownload, _check_inside, _public_only_session,
                                check_public_url, check_request)

log = logging.getLogger("loom.downloads")

#: Bytes gathered in memory before one write (and hash update) off the event loop.
CHUNK_SIZE = 1024 * 1024
#: Progress is reported at most this often (seconds): ≤ 10 messages a second.
PROGRESS_INTERVAL = 0.1
#: Statuses worth trying again after a pause (the server is busy, not wrong).
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class DownloadProgress:
    done: int
    total: int | None


@dataclass(frozen=True)
class DownloadResult:
    directory: str
    name: str
    path: Path
    size: int
    sha256: str
    #: Bytes that were already in a ``.part`` file when this download started.
    resumed_from: int = 0
    #: The file was there already with the expected content; nothing was fetched.
    already_present: bool = False


ProgressCallback = Callable[[DownloadProgress], None]


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` (or ``bytes */TOTAL``) → (start, total)."""
    if not header:
        return None, None
    match = re.match(r"^\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*$", header)
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) is not None else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _sha256_file(path: Path) -> "hashlib._Hash":
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK_SIZE):
            digest.update(block)
    return digest


def _human(size: int | None) -> str:
    if size is None:
        return "an unknown number of bytes"
    return f"{size:,} bytes"


class _Throttle:
    def __init__(self, callback: ProgressCallback | None, interval: float):
        self.callback = callback
        self.interval = interval
        self.last = float("-inf")

    def __call__(self, done: int, total: int | None, force: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            self.callback(DownloadProgress(done, total))


class _Restart(Exception):
    """The ``.part`` could not be resumed; start again from byte 0."""


# ------------------------------------------------------------------ the downloader

class Downloader:
    """Fetches files into ``folders``' model folders (see the module docstring).

    Runs on an asyncio loop; file writes and hashing go to a worker thread so
    the loop (and the server's requests and websockets) never waits on disk.
    """

    def __init__(self, folders: Folders, *, retries: int = 3, retry_delay: float = 1.0,
                 progress_interval: float = PROGRESS_INTERVAL, connect_timeout: float = 30.0,
                 read_timeout: float = 60.0, session: Any = None, allow_private: bool = True):
        self.folders = folders
        #: False: only public addresses are fetched (the server's default; the CLI runs as its user).
        self.allow_private = allow_private
        self.retries = retries
        self.retry_delay = retry_delay
        self.progress_interval = progress_interval
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._session = session

    async def download(self, request: DownloadRequest, on_progress: ProgressCallback | None = None) -> DownloadResult:
        request, dest = check_request(self.folders, request)
        if not self.allow_private:
            check_public_url(request.url)
        try:
            return await self._download(request, dest, on_progress)
        except asyncio.CancelledError:
            # The task was cancelled while suspended, so before the rename (which
            # has no await after it): only the part file can be ours to remove.
            dest.part.unlink(missing_ok=True)
            raise
        except OSError as exc:  # the disk, not the network: full, read-only, a file where a folder should be
            raise DownloadError(f"could not write models/{dest.directory}/{dest.name}: {exc.strerror or exc}") from None

    async def _download(self, request: DownloadRequest, dest: Destination,
                        on_progress: ProgressCallback | None) -> DownloadResult:
        present = await self._already_present(request, dest)
        if present is not None:
            return present
        import aiohttp

        progress = _Throttle(on_progress, self.progress_interval)
        resumed_from = dest.part.stat().st_size if dest.part.is_file() else 0
        session = self._session
        owned = session is None
        if owned:
            session = (aiohttp.ClientSession(auto_decompress=False) if self.allow_private
                       else _public_only_session(auto_decompress=False))
        try:
            failures = 0
            restarts = 0
            while True:
                try:
                    return await self._fetch(session, request, dest, progress, resumed_from)
                except _Restart:
                    restarts += 1
                    resumed_from = 0
                    if restarts > 1:
                        raise DownloadError(f"{request.url} could not be resumed nor restarted") from None
                except DownloadInterrupted:
                    failures += 1
                    if failures > self.retries:
                        raise
                    log.info("download of %s interrupted; trying again (%d/%d)", dest.name, failures, self.retries)
                    await asyncio.sleep(self.retry_delay * failures)
        finally:
            if owned:
                await session.close()

    # -------------------------------------------------------------- helpers
    async def _already_present(self, request: DownloadRequest, dest: Destination) -> DownloadResult | None:
        """A result if the destination holds the expected file already; an error
        if it holds something else (it is never overwritten)."""
        if not dest.path.exists() and not dest.path.is_symlink():
            return None
        where = f"models/{dest.directory}/{dest.name}"
        if not dest.path.is_file():
            raise DownloadError(f"{where} exists and is not a file; remove it first")
        size = dest.path.stat().st_size
        if request.size is not None and size != request.size:
            raise DownloadError(f"{where} already exists with {_human(size)}, not the expected {_human(request.size)};"
                                " delete it to download it again")
        if request.sha256 is None and request.size is None:
            raise DownloadError(f"{where} already exists; give its sha256 to check it, or delete it to download it again")
        digest = (await asyncio.to_thread(_sha256_file, dest.path)).hexdigest()
        if request.sha256 is not None and digest != request.sha256:
            raise DownloadError(f"{where} already exists with a different sha256 ({digest}); delete it to download it again")
        return DownloadResult(dest.directory, dest.name, dest.path, size, digest, already_present=True)

    async def _fetch(self, session: Any, request: DownloadRequest, dest: Destination,
                     progress: _Throttle, resumed_from: int) -> DownloadResult:
        import aiohttp

        dest.path.parent.mkdir(parents=True, exist_ok=True)
        _check_inside(self.folders.models / dest.directory, dest.path)  # a symlink made meanwhile
        offset = dest.part.stat().st_size if dest.part.is_file() else 0
        if request.size is not None and offset > request.size:
            dest.part.unlink()
            offset = 0
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        # No overall limit (models are gigabytes); a host that never answers, or
        # a connection that stalls, ends the attempt.
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_connect=self.connect_timeout,
                                        sock_read=self.read_timeout)
        done = offset
        total: int | None = None
        try:
            async with session.get(request.url, headers=headers, timeout=timeout) as response:
                if response.status == 416 and offset:
                    _, total = _content_range(response.headers.get("Content-Range"))
                    if total == offset:  # the part is whole; only the rename was missed
                        progress(offset, total, force=True)
                        return await self._finish(request, dest, offset, total, resumed_from)
                    dest.part.unlink(missing_ok=True)
                    raise _Restart()
                if response.status in _RETRY_STATUSES:
                    raise DownloadInterrupted(f"{request.url} answered HTTP {response.status} {response.reason or ''}".rstrip())
                if response.status == 206 and offset:
                    start, total = _content_range(response.headers.get("Content-Range"))
                    if start != offset:
                        dest.part.unlink(missing_ok=True)
                        raise _Restart()
                    mode = "ab"
                elif response.status == 200:
                    # The server ignored the Range (or there was none): from byte 0.
                    offset = done = 0
                    encoded = response.headers.get("Content-Encoding", "identity").lower() not in ("", "identity")
                    total = None if encoded else response.content_length
                    mode = "wb"
                else:
                    raise DownloadError(f"{request.url} answered HTTP {response.status} {response.reason or ''}".rstrip())
                if request.size is not None and total is not None and total != request.size:
                    dest.part.unlink(missing_ok=True)
                    raise DownloadError(f"{dest.name}: the server offers {_human(total)}, but {_human(request.size)}"
                                        " were expected; nothing was saved")
                progress(done, total, force=True)
                done = await self._receive(response, dest, mode, offset, total, progress)
        except (DownloadError, _Restart):
            raise
        except aiohttp.ClientConnectorError as exc:  # refused, unknown host: trying again won't help
            raise DownloadError(f"could not connect to {urlsplit(request.url).netloc} for {request.url}: "
                                f"{exc.os_error.strerror or exc.os_error}") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, asyncio.TimeoutError, ConnectionError) as exc:
            kept = dest.part.stat().st_size if dest.part.is_file() else 0
            reason = str(exc) or type(exc).__name__
            raise DownloadInterrupted(f"download of {dest.name} from {request.url} was interrupted after"
                                      f" {_human(kept)} ({reason}); the partial file {dest.part.name} is kept,"
                                      " start the download again to resume") from None
        except aiohttp.ClientError as exc:
            raise DownloadError(f"could not download {request.url}: {exc}") from None
        except ValueError as exc:  # yarl refuses some URLs only when requested
            raise DownloadError(f"could not download {request.url}: {exc}") from None
        if total is not None and done < total:
            raise DownloadInterrupted(f"download of {dest.name} stopped after {_human(done)} of {_human(total)};"
                                      f" the partial file {dest.part.name} is kept, start the download again to resume")
        progress(done, total, force=True)
        return await self._finish(request, dest, done, total, resumed_from)

    async def _receive(self, response: Any, dest: Destination, mode: str, offset: int,
                       total: int | None, progress: _Throttle) -> int:
        """Streams the body to the ``.part`` file; returns its size."""
        done = offset
        # Opened on the loop (it is instant): in a worker thread, a cancel could
        # land while that thread still creates the file, after the part was removed.
        handle = open(dest.part, mode)
        buffer = bytearray()
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                buffer += chunk
                done += len(chunk)
                if total is not None and done > total:
                    raise DownloadError(f"{dest.name}: the server sent more than the {_human(total)} it announced")
                if len(buffer) >= CHUNK_SIZE:
                    data, buffer = bytes(buffer), bytearray()
                    await asyncio.to_thread(handle.write, data)
                progress(done, total)
        except DownloadError:
            await asyncio.to_thread(handle.close)
            dest.part.unlink(missing_ok=True)
            raise
        except asyncio.CancelledError:
            handle.close()  # nothing more is written: download() removes the part
            raise
        finally:
            if not handle.closed:
                # What arrived before a broken connection is good: keep it for the resume.
                data = bytes(buffer)
                await asyncio.to_thread(_write_and_close, handle, data)
        return done

    async def _finish(self, request: DownloadRequest, dest: Destination, size: int, total: int | None,
                      resumed_from: int) -> DownloadResult:
        actual = dest.part.stat().st_size
        expected = request.size if request.size is not None else total
        if actual != size or (expected is not None and actual != expected):
            dest.part.unlink(missing_ok=True)
            raise DownloadError(f"{dest.name}: received {_human(actual)}, but {_human(expected)} were expected;"
                                " the download was discarded")
        digest = (await asyncio.to_thread(_sha256_file, dest.part)).hexdigest()
        if request.sha256 is not None and digest != request.sha256:
            dest.part.unlink(missing_ok=True)
            raise DownloadError(f"{dest.name}: sha256 is {digest}, but {request.sha256} was expected;"
                                " the download was discarded")
        if dest.path.exists():
            raise DownloadError(f"models/{dest.directory}/{dest.name} appeared while downloading; it was not overwritten"
                                f" (the download is kept as {dest.part.name})")
        os.replace(dest.part, dest.path)
        return DownloadResult(dest.directory, dest.name, dest.path, actual, digest, resumed_from=resumed_from)


def _write_and_close(handle: Any, data: bytes) -> None:
    try:
        if data:
            handle.write(data)
    finally:
        handle.close()


# ------------------------------------------------------------------ the server's side

DownloadState = Literal["downloading", "done", "error", "cancelled"]
#: How long a cancel waits for the download to stop and remove its part file.
CANCEL_WAIT = 10.0


@dataclass
class DownloadStatus:
    """One download the server started (``GET /models/downloads``)."""

    id: str
    url: str
    directory: str
    name: str
    state: DownloadState = "downloading"
    done: int = 0
    total: int | None = None
    error: str | None = None
    sha256: str | None = None

    def message(self) -> dict[str, Any]:
        return {"id": self.id, "url": self.url, "directory": self.directory, "name": self.name,
                "state": self.state, "done": self.done, "total": self.total, "error": self.error,
                "sha256": self.sha256}

    def progress_message(self) -> dict[str, Any]:
        return {"id": self.id, "directory": self.directory, "name": self.name, "done": self.done, "total": self.total}


Post = Callable[[str, dict[str, Any]], None]


class DownloadManager:
    """The server's downloads: each runs as a task on the server's loop, next to
    prompt execution (which runs in the worker thread), and reports over
    ``post`` (the websocket hub) as ``download_progress``, ``download_done``,
    ``download_error`` and ``download_cancelled`` events."""

    def __init__(self, folders: Folders, post: Post, *, keep_finished: int = 50,
                 make_downloader: Callable[[Folders], Downloader] | None = None, allow_private: bool = True):
        self.folders = folders
        self.post = post
        self.keep_finished = keep_finished
        self.allow_private = allow_private
        self.make_downloader = make_downloader or (lambda f: Downloader(f, allow_private=allow_private))
        self.statuses: dict[str, DownloadStatus] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._active: dict[Path, str] = {}
        #: Ids cancelled through :meth:`cancel`; other cancellations are the server stopping.
        self._cancelled_by_user: set[str] = set()

    def start(self, request: DownloadRequest) -> DownloadStatus:
        """Checks the request (raises :class:`BadDownloadRequest`, :class:`DownloadConflict`)
        and starts it; returns its status at once."""
        request, dest = check_request(self.folders, request)
        if not self.allow_private:
            check_public_url(request.url)
        if dest.path in self._active:
            raise DownloadConflict(f"models/{dest.directory}/{dest.name} is being downloaded already"
                                   f" (download {self._active[dest.path]})")
        status = DownloadStatus(id=uuid.uuid4().hex, url=request.url, directory=dest.directory, name=dest.name,
                                total=request.size)
        self.statuses[status.id] = status
        self._active[dest.path] = status.id
        task = asyncio.get_running_loop().create_task(self._run(status, request, dest))
        task.add_done_callback(lambda _: self._ended(status, dest))
        self._tasks[status.id] = task
        self._forget_old()
        return status

    def list(self) -> list[DownloadStatus]:
        return list(self.statuses.values())

    async def cancel(self, download_id: str) -> DownloadStatus:
        """Stops a running download and returns its status once its part file is
        gone (state ``cancelled``); raises :class:`UnknownDownload` or
        :class:`DownloadFinished` (a finished file is left as it is)."""
        status = self.statuses.get(download_id)
        if status is None:
            raise UnknownDownload(f"no download has the id {download_id[:100]!r}; GET /models/downloads lists them")
        task = self._tasks.get(download_id)
        if status.state != "downloading" or task is None:
            raise DownloadFinished(f"download {download_id} of models/{status.directory}/{status.name} has already"
                                   f" ended ({status.state}); there is nothing to cancel")
        self._cancelled_by_user.add(download_id)
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_WAIT)
        return status

    async def _run(self, status: DownloadStatus, request: DownloadRequest, dest: Destination) -> None:
        def on_progress(progress: DownloadProgress) -> None:
            status.done, status.total = progress.done, progress.total
            self.post("download_progress", status.progress_message())

        try:
            result = await self.make_downloader(self.folders).download(request, on_progress)
        except asyncio.CancelledError:
            by_user = status.id in self._cancelled_by_user
            status.state = "cancelled"
            status.error = None if by_user else "the server stopped before the download finished"
            self.post("download_cancelled", {**status.progress_message(), "by_user": by_user})
            raise
        except DownloadError as exc:
            status.state, status.error = "error", str(exc)
            self.post("download_error", {**status.progress_message(), "message": str(exc)})
        except Exception as exc:  # a bug must still end the download visibly
            log.exception("download %s failed", status.id)
            status.state, status.error = "error", f"the download failed unexpectedly: {exc!r}"
            self.post("download_error", {**status.progress_message(), "message": status.error})
        else:
            status.state, status.done, status.total = "done", result.size, result.size
            status.sha256 = result.sha256
            self.post("download_done", {**status.progress_message(), "sha256": result.sha256,
                                        "already_present": result.already_present})

    def _ended(self, status: DownloadStatus, dest: Destination) -> None:
        if status.state == "downloading":  # cancelled before its first step: _run never ran
            status.state = "cancelled"
        self._active.pop(dest.path, None)
        self._tasks.pop(status.id, None)
        self._cancelled_by_user.discard(status.id)

    def _forget_old(self) -> None:
        finished = [key for key, s in self.statuses.items() if s.state != "downloading"]
        for key in finished[: max(0, len(finished) - self.keep_finished)]:
            del self.statuses[key]

    async def close(self) -> None:
        """Stops every running download; each removes its part file (see :class:`Downloader`)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            if not task.cancelling():  # a second cancel would cut short the first one's clean-up
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
