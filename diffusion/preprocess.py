"""Model-free ControlNet preprocessors on IMAGE tensors (``[B, H, W, C]`` in 0..1).

Canny follows the classic recipe (and kornia's, which ComfyUI's Canny node uses):
greyscale, 5x5 Gaussian blur (sigma 1), Sobel gradients, non-maximum suppression
along the gradient direction rounded to 45°, double threshold, and hysteresis that
keeps weak edges only where they connect to strong ones.  Pure torch: no OpenCV.
"""

from __future__ import annotations

import math
from typing import Any

#: ITU-R BT.601 luma weights (kornia's rgb_to_grayscale).
_LUMA = (0.299, 0.587, 0.114)


def grayscale(image: Any) -> Any:
    """``[B, H, W, C]`` → ``[B, 1, H, W]`` luma (a 1-channel image is taken as is)."""
    import torch

    x = image.movedim(-1, 1).float()
    if x.shape[1] == 1:
        return x
    if x.shape[1] < 3:
        raise ValueError(f"expected an RGB image, got {x.shape[1]} channels")
    weights = torch.tensor(_LUMA, dtype=x.dtype).reshape(1, 3, 1, 1)
    return (x[:, :3] * weights).sum(1, keepdim=True)


def gaussian_blur(x: Any, size: int = 5, sigma: float = 1.0) -> Any:
    """Separable Gaussian blur of ``[B, 1, H, W]`` with mirrored borders."""
    import torch
    import torch.nn.functional as F

    half = size // 2
    offsets = torch.arange(size, dtype=x.dtype) - half
    kernel = torch.exp(-(offsets ** 2) / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    mode = "reflect" if min(x.shape[-2:]) > half else "replicate"
    x = F.pad(x, (half, half, half, half), mode=mode)
    x = F.conv2d(x, kernel.reshape(1, 1, 1, size))
    return F.conv2d(x, kernel.reshape(1, 1, size, 1))


def sobel(x: Any) -> tuple[Any, Any]:
    """Unnormalised Sobel gradients (d/dx, d/dy) of ``[B, 1, H, W]``, edges replicated."""
    import torch
    import torch.nn.functional as F

    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=x.dtype)
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, kx.reshape(1, 1, 3, 3))
    gy = F.conv2d(padded, kx.t().reshape(1, 1, 3, 3))
    return gx, gy


# Neighbour offsets (dy, dx) for the gradient direction in 45° steps: 0°, 45°, 90°, 135°.
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1))


def _shift(x: Any, dy: int, dx: int) -> Any:
    """``x`` moved so that out[i, j] = x[i + dy, j + dx] (zero outside)."""
    import torch.nn.functional as F

    padded = F.pad(x, (1, 1, 1, 1))
    h, w = x.shape[-2:]
    return padded[..., 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]


def non_maximum_suppression(magnitude: Any, gx: Any, gy: Any) -> Any:
    """Keep only pixels that are the largest along their gradient direction."""
    import torch

    angle = torch.atan2(gy, gx) * (180.0 / math.pi)
    sector = torch.round(angle / 45.0).long() % 4  # opposite directions share a sector
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for index, (dy, dx) in enumerate(_DIRECTIONS):
        ahead, behind = _shift(magnitude, dy, dx), _shift(magnitude, -dy, -dx)
        local_max = (magnitude > ahead) & (magnitude >= behind)
        keep |= (sector == index) & local_max
    return torch.where(keep, magnitude, torch.zeros_like(magnitude))


def hysteresis(strong: Any, weak: Any) -> Any:
    """Grow the strong edges through 8-connected weak ones until nothing changes."""
    import torch.nn.functional as F

    edges = strong.float()
    candidates = (weak | strong).float()
    while True:
        grown = F.max_pool2d(edges, 3, stride=1, padding=1) * candidates
        grown = (grown > 0).float()
        if bool((grown == edges).all()):
            return edges
        edges = grown


def canny(image: Any, low_threshold: float, high_threshold: float) -> Any:
    """Edges of ``[B, H, W, C]`` images as a ``[B, H, W, 3]`` black/white image."""
    import torch

    if not 0 < low_threshold <= high_threshold:
        raise ValueError(
            f"Canny thresholds must satisfy 0 < low <= high (got low={low_threshold}, high={high_threshold})")
    with torch.no_grad():
        gray = gaussian_blur(grayscale(image))
        gx, gy = sobel(gray)
        magnitude = torch.sqrt(gx * gx + gy * gy + 1e-6)
        thin = non_maximum_suppression(magnitude, gx, gy)
        edges = hysteresis(thin > high_threshold, thin > low_threshold)
    return edges.movedim(1, -1).expand(-1, -1, -1, 3).contiguous().to(image.dtype)


def threshold(image: Any, value: float) -> Any:
    """1 where a pixel's luma is above ``value``, else 0, as an RGB image."""
    gray = grayscale(image)
    return (gray > value).float().movedim(1, -1).expand(-1, -1, -1, 3).contiguous()
