"""Upload helpers: what kind of image the bytes are, a safe file name, a
non-clobbering save.  Pure functions plus one file write; no HTTP here."""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

#: Magic bytes → (format name, file extension).
_SIGNATURES: tuple[tuple[bytes, int, str, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", 0, "PNG", ".png"),
    (b"\xff\xd8\xff", 0, "JPEG", ".jpg"),
    (b"GIF87a", 0, "GIF", ".gif"),
    (b"GIF89a", 0, "GIF", ".gif"),
    (b"WEBP", 8, "WEBP", ".webp"),
    (b"BM", 0, "BMP", ".bmp"),
    (b"II*\x00", 0, "TIFF", ".tiff"),
    (b"MM\x00*", 0, "TIFF", ".tiff"),
)
_EXTENSIONS = {
    "PNG": {".png"}, "JPEG": {".jpg", ".jpeg", ".jfif"}, "GIF": {".gif"}, "WEBP": {".webp"},
    "BMP": {".bmp"}, "TIFF": {".tif", ".tiff"},
}
_UNSAFE_CHARS = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/]')
MAX_NAME = 180


class UploadRejected(ValueError):
    """The upload is not an image we accept (the message says why)."""


def sniff_image(data: bytes) -> tuple[str, str]:
    """(format, extension) from the bytes themselves, never from the name."""
    for magic, offset, fmt, ext in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic and (fmt != "WEBP" or data[:4] == b"RIFF"):
            return fmt, ext
    raise UploadRejected("the file is not a PNG, JPEG, WEBP, GIF, BMP or TIFF image")


def verify_image(data: bytes) -> None:
    """Let Pillow parse the header too: a valid signature on garbage is refused."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"the image is damaged or unreadable: {exc}") from None


def safe_filename(name: str | None, fmt: str, default_ext: str) -> str:
    """A plain file name: no folders, no control or reserved characters, no
    leading dots, and an extension matching the image's real format."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE_CHARS.sub("_", base).strip().lstrip(".")
    stem, ext = os.path.splitext(base)
    stem = stem.strip() or "upload"
    if ext.lower() not in _EXTENSIONS.get(fmt, ()):
        ext = default_ext
    return stem[: MAX_NAME - len(ext)] + ext


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_upload(folder: Path, filename: str, data: bytes, overwrite: bool) -> str:
    """Write ``data`` as ``folder/filename``; returns the name used.

    Without ``overwrite`` an existing different file is kept and the upload
    gets ``name (1).ext``, ``name (2).ext``...; the same bytes uploaded again
    reuse the existing file.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if overwrite:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, folder / filename)
        return filename
    stem, ext = os.path.splitext(filename)
    digest = None
    for attempt in range(10000):
        candidate = filename if attempt == 0 else f"{stem} ({attempt}){ext}"
        path = folder / candidate
        try:
            with open(path, "xb") as handle:
                handle.write(data)
            return candidate
        except FileExistsError:
            if path.is_file() and path.stat().st_size == len(data):
                digest = digest or _digest(data)
                if _digest(path.read_bytes()) == digest:
                    return candidate
    raise UploadRejected(f"too many files named like '{filename}'")


def masked_png(original: Path, mask_data: bytes) -> bytes:
    """ComfyUI's mask upload: the original image with the mask's alpha."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    with Image.open(original) as image:
        info = PngInfo()
        for key, value in getattr(image, "text", {}).items():
            info.add_text(key, value)
        rgba = image.convert("RGBA")
    with Image.open(io.BytesIO(mask_data)) as mask:
        alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != rgba.size:
        alpha = alpha.resize(rgba.size)
    rgba.putalpha(alpha)
    out = io.BytesIO()
    rgba.save(out, format="PNG", pnginfo=info, compress_level=4)
    return out.getvalue()
