"""Cropping an image batch to an aspect ratio around its centre, as ComfyUI's
``common_upscale`` crops (its arithmetic): used by image and latent resizing and by
ControlNet hints. Torch-free to import; it works on the tensors it is given."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def center_crop(samples: "torch.Tensor", width: int, height: int) -> "torch.Tensor":
    """Crop ``[B, C, H, W]`` to the target aspect ratio around the centre (ComfyUI's arithmetic)."""
    old_height, old_width = samples.shape[-2], samples.shape[-1]
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    return samples.narrow(-2, y, old_height - y * 2).narrow(-1, x, old_width - x * 2)
