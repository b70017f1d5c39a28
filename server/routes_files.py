"""``/view`` and ``/upload/{image,mask}``: files in input/, output/, temp/.

Every name from the client goes through ``Folders.resolve``, which refuses
anything that would leave its folder.  Image work (previews, channel splits,
mask merges) runs in a thread so the event loop stays free.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from nodes.image_bounds import ImageTooLarge, open_bounded, pixel_limit

from .jsonio import json_response
from .http_errors import ApiError
from .static import content_type_for
from .uploads import (BadFolder, DiskFull, UploadRejected, masked_png, safe_filename, save_upload, sniff_image,
                      verify_image)

if TYPE_CHECKING:
    from .app import LoomServer

ROOT_TYPES = ("output", "input", "temp")
_FIELD_LIMIT = 64 * 1024


def _split_annotation(filename: str, default: str) -> tuple[str, str]:
    """ComfyUI's annotated names: ``"x.png [output]"``."""
    for root in ROOT_TYPES:
        suffix = f" [{root}]"
        if filename.endswith(suffix):
            return filename[: -len(suffix)], root
    return filename, default


def _disposition(name: str) -> str:
    safe = name.replace('"', "").replace("\r", "").replace("\n", "")
    return f'filename="{safe}"'


class FileRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server

    @property
    def max_pixels(self) -> int:
        return pixel_limit(self.server.env)

    def register(self, add) -> None:
        add("GET", "/view", self.view)
        add("POST", "/upload/image", self.upload_image)
        add("POST", "/upload/mask", self.upload_mask)

    def resolve(self, root: str, subfolder: str, filename: str) -> Path:
        from nodes.folders import UnsafePath

        if root not in ROOT_TYPES:
            raise ApiError(400, "invalid_type", f"'type' must be one of {', '.join(ROOT_TYPES)}, got {root[:40]!r}")
        try:
            return self.server.folders.resolve(root, subfolder, filename)
        except UnsafePath as exc:
            raise ApiError(403, "unsafe_path", str(exc)) from None
        except (ValueError, OSError) as exc:
            raise ApiError(400, "invalid_path", f"bad file name: {exc}") from None

    # ------------------------------------------------------------------ view
    async def view(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        filename = query.get("filename")
        if not filename:
            raise ApiError(400, "missing_filename", "'filename' is required")
        filename, root = _split_annotation(filename, query.get("type") or "output")
        path = self.resolve(root, query.get("subfolder", ""), filename)
        if not path.is_file():
            raise ApiError(404, "not_found", f"no file '{filename}' in {root}")
        preview = query.get("preview")
        channel = query.get("channel", "rgba")
        if channel not in ("rgba", "rgb", "a"):
            raise ApiError(400, "invalid_channel", "'channel' must be rgba, rgb or a")
        if preview or channel != "rgba":
            loop = asyncio.get_running_loop()
            try:
                body, ctype, name = await loop.run_in_executor(
                    None, _render, path, preview, channel, self.max_pixels)
            except UploadRejected as exc:
                raise ApiError(415, "not_an_image", str(exc)) from None
            except ImageTooLarge as exc:
                raise ApiError(413, "image_too_large", str(exc)) from None
            return web.Response(body=body, content_type=ctype,
                                headers={"Content-Disposition": _disposition(name)})
        return web.FileResponse(path, headers={"Content-Disposition": _disposition(path.name),
                                               "Content-Type": content_type_for(path.name)})

    # ---------------------------------------------------------------- upload
    async def _read_form(self, request: web.Request) -> tuple[dict[str, str], tuple[str | None, bytes] | None]:
        if not request.content_type.startswith("multipart/"):
            raise ApiError(415, "unsupported_media_type", "uploads are multipart/form-data with an 'image' file")
        limit = self.server.options.max_upload_bytes
        fields: dict[str, str] = {}
        image: tuple[str | None, bytes] | None = None
        try:
            reader = await request.multipart()
            while True:
                part = await reader.next()
                if part is None:
                    break
                if not hasattr(part, "read_chunk"):
                    continue  # nested multipart: not something we take
                is_image = part.name == "image"
                cap = limit if is_image else _FIELD_LIMIT
                data = bytearray()
                while True:
                    chunk = await part.read_chunk(65536)
                    if not chunk:
                        break
                    data += chunk
                    if len(data) > cap:
                        if is_image:
                            raise ApiError(413, "upload_too_large",
                                           f"the image is over the {limit // (1024 * 1024)} MiB upload limit")
                        raise ApiError(400, "field_too_large", f"form field '{part.name}' is too large")
                if is_image:
                    image = (part.filename, bytes(data))
                elif part.name:
                    fields[part.name] = data.decode("utf-8", "replace")
        except ApiError:
            raise
        except (ValueError, AssertionError, RuntimeError, HttpProcessingError) as exc:
            message = getattr(exc, "message", None) or str(exc)
            raise ApiError(400, "invalid_form", f"could not read the form: {message}"[:300]) from None
        return fields, image

    async def _store(self, fields: dict[str, str], image: tuple[str | None, bytes] | None,
                     transform=None) -> web.Response:
        if image is None:
            raise ApiError(400, "missing_image", "the form has no 'image' file")
        original_name, data = image
        if not original_name:
            raise ApiError(400, "missing_filename", "the 'image' file has no name")
        root = fields.get("type") or "input"
        subfolder = fields.get("subfolder", "")
        overwrite = fields.get("overwrite", "").lower() in ("true", "1")
        loop = asyncio.get_running_loop()

        max_pixels = self.max_pixels

        def work() -> str:
            fmt, ext = sniff_image(data)
            verify_image(data, max_pixels)
            name = safe_filename(original_name, fmt, ext)
            body = data
            if transform is not None:
                body = transform()
                name = safe_filename(name, "PNG", ".png")
            target = self.resolve(root, subfolder, name)
            return save_upload(target.parent, target.name, body, overwrite)

        try:
            saved = await loop.run_in_executor(None, work)
        except UploadRejected as exc:
            raise ApiError(415, "not_an_image", str(exc)) from None
        except ImageTooLarge as exc:
            raise ApiError(413, "image_too_large", str(exc)) from None
        except BadFolder as exc:
            raise ApiError(400, "invalid_subfolder", f"subfolder '{subfolder[:100]}': {exc}") from None
        except DiskFull as exc:
            raise ApiError(507, "disk_full", f"the upload was not saved: {exc.strerror}; free some space"
                                             f" in the {root} folder and try again") from None
        return json_response({"name": saved, "subfolder": subfolder, "type": root})

    async def upload_image(self, request: web.Request) -> web.Response:
        fields, image = await self._read_form(request)
        return await self._store(fields, image)

    async def upload_mask(self, request: web.Request) -> web.Response:
        fields, image = await self._read_form(request)
        try:
            ref: Any = json.loads(fields.get("original_ref", ""))
        except ValueError:
            raise ApiError(400, "invalid_original_ref",
                           "'original_ref' must be JSON: {filename, subfolder, type}") from None
        if not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
            raise ApiError(400, "invalid_original_ref", "'original_ref' needs a 'filename'")
        name, root = _split_annotation(ref["filename"], str(ref.get("type") or "input"))
        original = self.resolve(root, str(ref.get("subfolder") or ""), name)
        if not original.is_file():
            raise ApiError(404, "not_found", f"the original image '{name}' does not exist")
        mask = image[1] if image else b""
        max_pixels = self.max_pixels
        return await self._store(fields, image, transform=lambda: masked_png(original, mask, max_pixels))


def _render(path: Path, preview: str | None, channel: str, max_pixels: int) -> tuple[bytes, str, str]:
    """A converted copy of an image: a ``preview`` (``webp;90``, ``jpeg;80``)
    or one ``channel`` (``rgb``, ``a``) as PNG.  An image over ``max_pixels``
    raises :class:`ImageTooLarge` before it is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = open_bounded(path, max_pixels, f"'{path.name}'")
        try:
            image.load()
        except BaseException:
            image.close()
            raise
    except (UnidentifiedImageError, OSError) as exc:
        raise UploadRejected(f"'{path.name}' is not an image Loom can convert: {exc}") from None
    with image:
        out = io.BytesIO()
        if preview:
            parts = preview.split(";")
            fmt = parts[0].lower() if parts[0].lower() in ("webp", "jpeg") else "webp"
            if channel == "a":
                fmt = "webp"
            quality = int(parts[-1]) if parts[-1].isdigit() else 90
            quality = max(1, min(quality, 100))
            converted = image.convert("RGB") if fmt == "jpeg" or channel == "rgb" else image
            if converted.mode not in ("RGB", "RGBA", "L", "LA"):
                converted = converted.convert("RGBA")
            converted.save(out, format=fmt.upper(), quality=quality)
            stem = path.stem
            return out.getvalue(), f"image/{fmt}", f"{stem}.{fmt}"
        if channel == "rgb":
            image.convert("RGB").save(out, format="PNG")
        else:  # "a": the alpha as an RGBA image, as ComfyUI's editor expects
            alpha = image.getchannel("A") if image.mode == "RGBA" else Image.new("L", image.size, 255)
            result = Image.new("RGBA", image.size)
            result.putalpha(alpha)
            result.save(out, format="PNG")
        return out.getvalue(), "image/png", path.name
