"""Resizing latents: LatentUpscale and LatentUpscaleBy (ComfyUI's names and inputs),
the middle step of a hires-fix workflow.

LATENT is ``{"samples": [B, C, h, w], ...}``; other keys (``batch_index``,
``noise_mask``) are carried over.  A ``noise_mask`` keeps its own resolution (the
sampler scales it to the latent, as ComfyUI's does) but is centre-cropped along with
the samples, so it still covers the same part of the picture.
"""

from __future__ import annotations

from typing import Any

from engine.declare import Combo, Float, Int, Socket, node

from diffusion.image_crop import center_crop

from .imaging import CROP_METHODS, MAX_RESOLUTION, resize

LATENT = Socket("LATENT")
LATENT_METHODS = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")


def _slerp(a: Any, b: Any, t: Any) -> Any:
    """Spherical interpolation between channel vectors ``a`` and ``b`` ([N, C]) by ``t`` ([N, 1]);
    the length is interpolated linearly.  Near-parallel or zero vectors fall back to a lerp."""
    import torch

    norm_a, norm_b = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    unit_a = a / norm_a.clamp_min(1e-12)
    unit_b = b / norm_b.clamp_min(1e-12)
    cos = (unit_a * unit_b).sum(1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    safe = sin.abs() > 1e-4
    sin_safe = torch.where(safe, sin, torch.ones_like(sin))
    direction = (torch.sin((1 - t) * omega) / sin_safe) * unit_a + (torch.sin(t * omega) / sin_safe) * unit_b
    result = direction * (norm_a * (1 - t) + norm_b * t)
    linear = a * (1 - t) + b * t
    degenerate = ~safe | (norm_a < 1e-12) | (norm_b < 1e-12)
    return torch.where(degenerate, linear, result)


def _bislerp_axis(samples: Any, size: int, axis: int) -> Any:
    """Resample ``[B, C, H, W]`` to ``size`` along ``axis`` (2 or 3) with slerp between neighbours."""
    import torch

    old = samples.shape[axis]
    coords = ((torch.arange(size, dtype=torch.float64) + 0.5) * (old / size) - 0.5).clamp(0, old - 1)
    low = coords.floor().long()
    high = (low + 1).clamp(max=old - 1)
    frac = (coords - low).to(samples.dtype)
    moved = samples.movedim(axis, -1)  # [B, C, other, old]
    a = moved.index_select(-1, low).movedim(1, -1)  # [B, other, size, C]
    b = moved.index_select(-1, high).movedim(1, -1)
    shape = a.shape
    t = frac.reshape(1, 1, size, 1).expand(shape[0], shape[1], size, 1).reshape(-1, 1)
    out = _slerp(a.reshape(-1, shape[-1]), b.reshape(-1, shape[-1]), t).reshape(shape)
    return out.movedim(-1, 1).movedim(-1, axis)


def bislerp(samples: Any, width: int, height: int) -> Any:
    """Bilinear resampling where each blend is a slerp of the channel vectors, which keeps
    latent magnitudes (plain bilinear shrinks them where neighbours disagree)."""
    x = samples.float()
    x = _bislerp_axis(x, width, 3)
    x = _bislerp_axis(x, height, 2)
    return x.to(samples.dtype)


def resize_latent(samples: Any, width: int, height: int, method: str, crop: str) -> Any:
    """``[B, C, h, w]`` resized to ``width`` x ``height`` latent pixels."""
    if method not in LATENT_METHODS:
        raise ValueError(f"unknown upscale method {method!r}; use one of {', '.join(LATENT_METHODS)}")
    if crop not in CROP_METHODS:
        raise ValueError(f"unknown crop {crop!r}; use one of {', '.join(CROP_METHODS)}")
    if method == "bislerp":
        cropped = center_crop(samples, width, height) if crop == "center" else samples
        return bislerp(cropped, width, height)
    return resize(samples.movedim(1, -1), width, height, method, crop).movedim(-1, 1)


def _with_samples(latent: dict, samples: Any, crop: str, width: int, height: int) -> dict:
    out = dict(latent)
    out["samples"] = samples
    mask = latent.get("noise_mask")
    if mask is not None and crop == "center":
        shaped = mask.reshape((-1, 1, mask.shape[-2], mask.shape[-1]))
        out["noise_mask"] = center_crop(shaped, width, height)
    return out


def _check(latent: Any) -> Any:
    if not isinstance(latent, dict) or "samples" not in latent:
        raise ValueError(f"expected a LATENT ({{'samples': tensor, ...}}), got {type(latent).__name__}")
    samples = latent["samples"]
    if samples.ndim != 4:
        raise ValueError(f"latent samples must be [batch, channels, height, width], got {list(samples.shape)}")
    return samples


@node(category="latent", display_name="Upscale Latent")
def LatentUpscale(
    samples: LATENT,
    upscale_method: str = Combo(options=LATENT_METHODS, default="nearest-exact"),
    width: int = Int(512, min=0, max=MAX_RESOLUTION, step=8),
    height: int = Int(512, min=0, max=MAX_RESOLUTION, step=8),
    crop: str = Combo(options=CROP_METHODS, default="disabled"),
) -> LATENT:
    """Resizes latents to a pixel width and height (at least 64; 0 keeps the aspect ratio)."""
    latent = _check(samples)
    if width == 0 and height == 0:
        return samples
    h, w = latent.shape[-2], latent.shape[-1]
    if width == 0:
        height = max(64, height)
        width = max(64, round(w * height / h))
    elif height == 0:
        width = max(64, width)
        height = max(64, round(h * width / w))
    else:
        width, height = max(64, width), max(64, height)
    resized = resize_latent(latent, width // 8, height // 8, upscale_method, crop)
    return _with_samples(samples, resized, crop, width // 8, height // 8)


@node(category="latent", display_name="Upscale Latent By")
def LatentUpscaleBy(
    samples: LATENT,
    upscale_method: str = Combo(options=LATENT_METHODS, default="nearest-exact"),
    scale_by: float = Float(1.5, min=0.01, max=8.0, step=0.01),
) -> LATENT:
    """Resizes latents by a factor."""
    latent = _check(samples)
    width = max(1, round(latent.shape[-1] * scale_by))
    height = max(1, round(latent.shape[-2] * scale_by))
    resized = resize_latent(latent, width, height, upscale_method, "disabled")
    return _with_samples(samples, resized, "disabled", width, height)
