"""Image helpers shared by the image nodes: socket types, tensor <-> PIL, resampling.

Data conventions are ComfyUI's so custom nodes interoperate: IMAGE is a float
tensor ``[B, H, W, C]`` in 0..1, MASK ``[B, H, W]``.  torch, numpy and PIL are
imported inside the functions: ``import nodes`` must stay free of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from diffusion.image_crop import center_crop
from engine.declare import Socket

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from PIL import Image

IMAGE = Socket("IMAGE")
MASK = Socket("MASK")

#: Largest width/height a node accepts (ComfyUI's MAX_RESOLUTION).
MAX_RESOLUTION = 16384

UPSCALE_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "lanczos")
CROP_METHODS = ("disabled", "center")


def to_uint8(image: "torch.Tensor") -> Any:
    """One image ``[H, W, C]`` as a uint8 numpy array.

    Truncates like ComfyUI does (``clip(255 * x).astype(uint8)``), so the same
    tensor gives the same PNG bytes in both.
    """
    import numpy as np
    import torch

    array = image.detach().to("cpu", dtype=torch.float32).numpy()
    return np.clip(255.0 * array, 0, 255).astype(np.uint8)


def to_pil(image: "torch.Tensor") -> "Image.Image":
    """One image ``[H, W, C]`` (C = 1, 3 or 4) as a PIL image."""
    from PIL import Image

    array = to_uint8(image)
    channels = array.shape[-1]
    if channels == 1:
        return Image.fromarray(array[..., 0], mode="L")
    if channels in (3, 4):
        return Image.fromarray(array, mode="RGB" if channels == 3 else "RGBA")
    raise ValueError(f"cannot make a picture from an image with {channels} channels (need 1, 3 or 4)")


def from_pil(picture: "Image.Image") -> "torch.Tensor":
    """A PIL image (any mode) as an RGB tensor ``[H, W, 3]`` in 0..1."""
    import numpy as np
    import torch

    rgb = np.asarray(picture.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(rgb.copy())


def alpha_mask(picture: "Image.Image") -> "torch.Tensor | None":
    """ComfyUI's mask from transparency: ``1 - alpha`` (1 = transparent), ``[H, W]``;
    None for pictures without transparency."""
    import numpy as np
    import torch

    if "A" in picture.getbands():
        alpha = picture.getchannel("A")
    elif picture.mode == "P" and "transparency" in picture.info:
        alpha = picture.convert("RGBA").getchannel("A")
    else:
        return None
    return 1.0 - torch.from_numpy(np.asarray(alpha, dtype=np.float32) / 255.0)


def _lanczos(samples: "torch.Tensor", width: int, height: int) -> "torch.Tensor":
    # PIL's float mode keeps full precision (no round trip through uint8) and
    # works for any channel count; Lanczos rings, so clamp back into range.
    import numpy as np
    import torch
    from PIL import Image

    batch, channels = samples.shape[0], samples.shape[1]
    out = np.empty((batch, channels, height, width), dtype=np.float32)
    source = samples.detach().to("cpu", dtype=torch.float32).numpy()
    for b in range(batch):
        for c in range(channels):
            plane = Image.fromarray(np.ascontiguousarray(source[b, c]), mode="F")
            out[b, c] = np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS))
    result = torch.from_numpy(out).clamp_(0.0, 1.0)
    return result.to(samples.device, samples.dtype)


def resize(image: "torch.Tensor", width: int, height: int, method: str, crop: str = "disabled") -> "torch.Tensor":
    """Resample ``[B, H, W, C]`` to ``width`` x ``height`` (ComfyUI's ``common_upscale``).

    ``method`` is one of :data:`UPSCALE_METHODS`; ``crop="center"`` first crops
    to the target aspect ratio instead of stretching.
    """
    import torch.nn.functional as F

    if method not in UPSCALE_METHODS:
        raise ValueError(f"unknown upscale method {method!r}; use one of {', '.join(UPSCALE_METHODS)}")
    if crop not in CROP_METHODS:
        raise ValueError(f"unknown crop {crop!r}; use one of {', '.join(CROP_METHODS)}")
    if width < 1 or height < 1:
        raise ValueError(f"cannot resize to {width}x{height}: width and height must be at least 1")
    samples = image.movedim(-1, 1)
    if crop == "center":
        samples = center_crop(samples, width, height)
    if method == "lanczos":
        resized = _lanczos(samples, width, height)
    else:
        resized = F.interpolate(samples, size=(height, width), mode=method)
    return resized.movedim(1, -1)


def match_size(image: "torch.Tensor", like: "torch.Tensor", method: str) -> "torch.Tensor":
    """``image`` resized (centre-cropped) to the height and width of ``like``."""
    if image.shape[1:3] == like.shape[1:3]:
        return image
    return resize(image, like.shape[2], like.shape[1], method, "center")
