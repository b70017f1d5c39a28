"""Upload helpers: what kind of image the bytes are, a safe file name, a
non-clobbering save.  Pure functions plus one file write; no HTTP here."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path

from nodes.image_bounds import DEFAULT_MAX_IMAGE_PIXELS, ImageTooLarge, open_bounded

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
#: Bidirectional controls (RLO and friends) make ``gnp.exe`` look like
#: ``exe.png``; they are dropped from names, as are lone surrogates (which no
#: file system encoding takes).
_DROPPED_CHARS = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
#: Bytes (UTF-8) of a saved name: under the 255 file systems allow, with room for " (12).ext".
MAX_NAME_BYTES = 200


class UploadRejected(ValueError):
    """The upload is not an image we accept (the message says why)."""


class DiskFull(OSError):
    """The upload could not be written: no space left (nothing partial is kept)."""


class BadFolder(ValueError):
    """The upload's folder cannot be made (a file is in the way)."""


def sniff_image(data: bytes) -> tuple[str, str]:
    """(format, extension) from the bytes themselves, never from the name."""
    for magic, offset, fmt, ext in _SIGNATURES:
        if data[offset:offset + len(magic)] == magic and (fmt != "WEBP" or data[:4] == b"RIFF"):
            return fmt, ext
    raise UploadRejected("the file is not a PNG, JPEG, WEBP, GIF, BMP or TIFF image")


def verify_image(data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
    """Let Pillow parse the header too: a valid signature on garbage is refused,
    and so is an image declaring more than ``max_pixels`` (:class:`ImageTooLarge`)."""
    from PIL import UnidentifiedImageError

    try:
        with open_bounded(io.BytesIO(data), max_pixels, "the image") as image:
            image.verify()
    except ImageTooLarge:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UploadRejected(f"the image is damaged or unreadable: {exc}") from None


def safe_filename(name: str | None, fmt: str, default_ext: str) -> str:
    """A plain file name: no folders, no control or reserved characters, no
    leading dots, and an extension matching the image's real format."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = _DROPPED_CHARS.sub("", base)
    base = _UNSAFE_CHARS.sub("_", base).strip().lstrip(".")
    stem, ext = os.path.splitext(base)
    stem = stem.strip() or "upload"
    if ext.lower() not in _EXTENSIONS.get(fmt, ()):
        ext = default_ext
    room = MAX_NAME_BYTES - len(ext.encode("utf-8"))
    # Cut on a character boundary: 85 CJK characters are 255 bytes.
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip() or "upload"
    return stem + ext


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_upload(folder: Path, filename: str, data: bytes, overwrite: bool) -> str:
    """Write ``data`` as ``folder/filename``; returns the name used.

    Without ``overwrite`` an existing different file is kept and the upload
    gets ``name (1).ext``, ``name (2).ext``...; the same bytes uploaded again
    reuse the existing file.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BadFolder(f"cannot make the folder '{folder.name}': a file of that name is in the way") from None
    except OSError as exc:
        _raise_disk_full(exc)
        raise
    if not folder.is_dir():
        raise BadFolder(f"'{folder.name}' is a file, not a folder")
    if overwrite:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, folder / filename)
        except OSError as exc:
            _remove(Path(tmp))
            _raise_disk_full(exc)
            raise
        return filename
    stem, ext = os.path.splitext(filename)
    digest = None
    for attempt in range(10000):
        candidate = filename if attempt == 0 else f"{stem} ({attempt}){ext}"
        path = folder / candidate
        try:
            with open(path, "xb") as handle:
                try:
                    handle.write(data)
                    handle.flush()
                except OSError:
                    try:
                        handle.close()
                    except OSError:
                        pass
                    _remove(path)  # never leave a truncated image under the name
                    raise
            return candidate
        except FileExistsError:
            if path.is_file() and path.stat().st_size == len(data):
                digest = digest or _digest(data)
                if _digest(path.read_bytes()) == digest:
                    return candidate
        except OSError as exc:
            _raise_disk_full(exc)
            raise
    raise UploadRejected(f"too many files named like '{filename}'")


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _raise_disk_full(exc: OSError) -> None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        raise DiskFull(exc.errno, "no space left on the disk holding the upload folder") from None


def masked_png(original: Path, mask_data: bytes, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> bytes:
    """ComfyUI's mask upload: the original image with the mask's alpha."""
    from PIL import UnidentifiedImageError
    from PIL.PngImagePlugin import PngInfo

    try:
        with open_bounded(original, max_pixels, f"the original image '{original.name}'") as image:
            info = PngInfo()
            for key, value in getattr(image, "text", {}).items():
                info.add_text(key, value)
            rgba = image.convert("RGBA")
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise UploadRejected(f"the original image '{original.name}' is not an image that can be read: {exc}") from None
    with open_bounded(io.BytesIO(mask_data), max_pixels, "the mask") as mask:
        alpha = mask.convert("RGBA").getchannel("A")
    if alpha.size != rgba.size:
        alpha = alpha.resize(rgba.size)
    rgba.putalpha(alpha)
    out = io.BytesIO()
    rgba.save(out, format="PNG", pnginfo=info, compress_level=4)
    return out.getvalue()
