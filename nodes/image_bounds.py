"""How large a decoded image may be: one bound for every place that decodes
an image from outside (uploads, ``/view`` previews and channels, mask
merges, LoadImage).

A PNG of a few hundred kilobytes can declare 12000x12000 pixels and cost
gigabytes once decoded, so the size an image *declares* is checked right
after :func:`PIL.Image.open` read its header and before any pixel is
decoded.  Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, raising
``DecompressionBombError`` at twice that) is a process-wide global that only
warns below 2x; we leave it alone and check ``image.size`` against the
host's own limit instead, and turn Pillow's error into ours too.
"""

from __future__ import annotations

from typing import Any

#: 64 MiP: 8192x8192, an RGBA float tensor of 1 GiB at most.
DEFAULT_MAX_IMAGE_PIXELS = 64 * 1024 * 1024


class ImageTooLarge(ValueError):
    """An image whose decoded size is over the host's limit (the message says how large)."""


def pixel_limit(env: Any = None) -> int:
    """The host's limit (``LoomEnv.max_image_pixels``), else the default; 0 or less: none."""
    limit = getattr(env, "max_image_pixels", None)
    return DEFAULT_MAX_IMAGE_PIXELS if limit is None else int(limit)


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def check_size(width: int, height: int, limit: int, what: str = "the image", frames: int = 1) -> None:
    """Raise :class:`ImageTooLarge` if ``frames`` images of ``width`` x ``height`` exceed ``limit`` pixels."""
    if limit <= 0:
        return
    pixels = int(width) * int(height) * max(1, frames)
    if pixels > limit:
        extra = f" over {frames} frames" if frames > 1 else ""
        raise ImageTooLarge(
            f"{what} is {width}x{height} pixels{extra} ({_megapixels(pixels)}), over this server's limit of"
            f" {_megapixels(limit)} (--max-image-pixels); scale it down first")


def open_bounded(source: Any, limit: int, what: str = "the image") -> Any:
    """``PIL.Image.open(source)`` with its declared size checked before decoding.

    Raises :class:`ImageTooLarge` (a ``ValueError``) for an image over
    ``limit`` pixels, including those Pillow itself calls decompression bombs;
    Pillow's own errors for unreadable files pass through unchanged.
    """
    from PIL import Image

    try:
        image = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"{what} declares a size far over any limit (a decompression bomb): {exc}") from None
    try:
        width, height = image.size
        check_size(width, height, limit, what)
    except BaseException:
        image.close()
        raise
    return image
