"""What a model download may be: the checks on a request (an http(s) URL, a known model
kind, a name that stays in its folder, a sha256 and size that make sense) and on where
it may connect (public addresses only unless allowed; webhooks share this), and the
errors that say what was wrong. :mod:`server.model_downloads` does the fetching."""

from __future__ import annotations

import errno
import os
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from nodes.folders import MODEL_EXTENSIONS, MODEL_KINDS, Folders, UnsafePath, canonical_kind, safe_parts

MAX_URL_LENGTH = 4096
PART_SUFFIX = ".part"
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


class DownloadError(Exception):
    """A download that could not be done; the message says why, for people."""

    kind = "download_failed"


class BadDownloadRequest(DownloadError):
    """The request itself is wrong (URL, kind, name, hash); nothing was fetched."""

    kind = "invalid_download"


class PrivateAddress(BadDownloadRequest):
    """The URL points at this machine or a private network (SSRF); refused
    unless the server was started with ``--allow-private-downloads``."""

    kind = "private_address"


class DownloadConflict(DownloadError):
    """The same destination is being downloaded already."""

    kind = "already_downloading"


class UnknownDownload(DownloadError):
    """No download has that id (or it was forgotten, being one of the oldest finished)."""

    kind = "unknown_download"


class DownloadFinished(DownloadError):
    """The download ended already (done, failed or cancelled); there is nothing to cancel."""

    kind = "download_finished"


class DownloadInterrupted(DownloadError):
    """The connection broke; the ``.part`` file is kept and the next try resumes it."""

    kind = "download_interrupted"


@dataclass(frozen=True)
class DownloadRequest:
    """What to fetch and where: ``directory`` is a model kind (``checkpoints``...),
    ``name`` the file name inside it (``sub/name.safetensors`` allowed)."""

    url: str
    directory: str
    name: str
    sha256: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class Destination:
    directory: str  # the canonical model kind
    name: str  # relative POSIX name inside the kind's folder
    path: Path
    part: Path


# ------------------------------------------------------------------ validation

def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise BadDownloadRequest("'url' must be a non-empty http:// or https:// URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise BadDownloadRequest(f"'url' is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) < 32 or c == "\x7f" for c in url):
        raise BadDownloadRequest("'url' contains control characters")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as exc:
        raise BadDownloadRequest(f"'url' {url[:200]!r} is not a valid URL: {exc}") from None
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "none"
        raise BadDownloadRequest(f"only http:// and https:// URLs can be downloaded, not {scheme}: ({url[:200]!r})")
    if not parts.hostname:
        raise BadDownloadRequest(f"'url' {url[:200]!r} names no host")
    return url


def _private_ip(text: str) -> bool:
    """Whether ``text`` is an IP address that is not on the public internet
    (loopback, private ranges, link-local such as cloud metadata, unspecified...)."""
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:
        address = mapped
    return not address.is_global or address.is_multicast


_ALLOW_HINT = "; start the server with --allow-private-downloads to allow local addresses"


def check_public_url(url: str) -> None:
    """Refuse a URL whose host is a loopback or private-range address or a
    ``localhost`` name (:class:`PrivateAddress`).  Names that *resolve* to
    such addresses are refused when connecting (:class:`PublicOnlyResolver`)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost") or _private_ip(host):
        raise PrivateAddress(f"refusing to download from {host!r}: it is this machine or a private network"
                             + _ALLOW_HINT)


def _public_only_session(**options: Any) -> Any:
    """An aiohttp session that connects to public addresses only, also after
    redirects and whatever a name resolves to (DNS rebinding included: the
    check is on the addresses actually connected to)."""
    import aiohttp
    import yarl

    class PublicOnlyResolver(aiohttp.DefaultResolver):  # type: ignore[misc,valid-type]
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
            hosts = await super().resolve(host, port, family)
            for entry in hosts:
                if _private_ip(entry["host"]):
                    raise OSError(errno.EACCES, f"{host} resolves to {entry['host']}, a private address"
                                                + _ALLOW_HINT)
            return hosts

    async def on_redirect(session: Any, context: Any, params: Any) -> None:
        # IP literals (a redirect to http://127.0.0.1/) never reach the resolver.
        location = params.response.headers.get("Location")
        if location:
            check_public_url(str(params.url.join(yarl.URL(location))))

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(on_redirect)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=PublicOnlyResolver()),
                                 trace_configs=[trace], **options)


def known_kinds(folders: Folders) -> list[str]:
    return sorted({*MODEL_KINDS, *folders.extra_model_dirs, *folders.preferred_model_dirs})


def plan_destination(folders: Folders, directory: Any, name: Any) -> Destination:
    """Where ``name`` of kind ``directory`` goes: ``models/<kind>/<name>``; refuses
    unknown kinds and any name that could leave the folder."""
    if not isinstance(directory, str) or not directory:
        raise BadDownloadRequest("'directory' must name a model folder, e.g. 'checkpoints'")
    kinds = known_kinds(folders)
    try:
        kind = canonical_kind(directory)
    except ValueError:
        kind = None
    if kind not in kinds:
        raise BadDownloadRequest(f"unknown model folder {directory[:60]!r}; known: {', '.join(kinds)}")
    if kind == "diffusers":
        raise BadDownloadRequest("diffusers models are folders of files; download them into models/diffusers by hand")
    if not isinstance(name, str) or not name.strip():
        raise BadDownloadRequest("'name' must be a file name such as 'model.safetensors'")
    try:
        parts = safe_parts(name, "model file name")
    except UnsafePath as exc:
        raise BadDownloadRequest(str(exc)) from None
    if not parts:
        raise BadDownloadRequest(f"model file name {name!r} names no file")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise BadDownloadRequest(f"model file name {name!r} contains control characters")
    if any(part.startswith(".") for part in parts):
        raise BadDownloadRequest(f"model file name {name!r} has a part starting with '.'; such files are hidden from the loaders")
    if any(len(part.encode("utf-8")) > 240 for part in parts):
        raise BadDownloadRequest(f"model file name {name[:80]!r}... has a part longer than 240 bytes")
    extension = os.path.splitext(parts[-1])[1].lower()
    if extension not in MODEL_EXTENSIONS:
        raise BadDownloadRequest(f"model file name {name!r} must end in one of {', '.join(sorted(MODEL_EXTENSIONS))}"
                                 " (other files are not listed by the loaders)")
    folder = folders.models / kind
    path = folder.joinpath(*parts)
    part = path.with_name(path.name + PART_SUFFIX)
    _check_inside(folder, path)
    return Destination(kind, "/".join(parts), path, part)


def _check_inside(folder: Path, path: Path) -> None:
    # resolve() follows the symlinks that exist; one pointing outside shows.
    real_folder = folder.resolve()
    for candidate in (path, path.parent):
        if not candidate.resolve().is_relative_to(real_folder):
            raise BadDownloadRequest(f"'{path.relative_to(folder).as_posix()}' points outside the models folder {folder.name}/")


def check_sha256(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or not _SHA256.match(value.strip()):
        raise BadDownloadRequest("'sha256' must be 64 hexadecimal digits")
    return value.strip().lower()


def check_size(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadDownloadRequest("'size' must be a whole number of bytes (0 or more)")
    return value


def check_request(folders: Folders, request: DownloadRequest) -> tuple[DownloadRequest, Destination]:
    """The request normalised (clean URL, lower-case hash) and its destination."""
    clean = DownloadRequest(url=check_url(request.url), directory=request.directory, name=request.name,
                            sha256=check_sha256(request.sha256), size=check_size(request.size))
    return clean, plan_destination(folders, request.directory, request.name)


def name_from_url(url: str) -> str:
    """The file name at the end of a URL's path (``.../v1-5.safetensors?download=true``)."""
    path = urlsplit(url).path
    return unquote(path.rstrip("/").rpartition("/")[2])
