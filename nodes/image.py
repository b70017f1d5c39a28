"""Image transforms: scale, invert, batch, blend.

Inputs, defaults and categories are ComfyUI's (``nodes.py``,
``comfy_extras/nodes_post_processing.py``).  IMAGE is ``[B, H, W, C]`` in 0..1.
"""

from __future__ import annotations

from engine.declare import Combo, Float, Int, node

from .imaging import CROP_METHODS, IMAGE, MAX_RESOLUTION, UPSCALE_METHODS, match_size, resize

_METHOD = Combo(options=UPSCALE_METHODS, default="nearest-exact")


@node(category="image/upscaling", display_name="Upscale Image")
def ImageScale(
    image: IMAGE,
    upscale_method: str = _METHOD,
    width: int = Int(512, min=0, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=0, max=MAX_RESOLUTION, step=1),
    crop: str = Combo(options=CROP_METHODS, default="disabled"),
) -> IMAGE:
    """Resizes images to a width and height; 0 for one of them keeps the aspect ratio."""
    if width == 0 and height == 0:
        return image
    if width == 0:
        width = max(1, round(image.shape[2] * height / image.shape[1]))
    elif height == 0:
        height = max(1, round(image.shape[1] * width / image.shape[2]))
    return resize(image, width, height, upscale_method, crop)


@node(category="image/upscaling", display_name="Upscale Image By")
def ImageScaleBy(
    image: IMAGE,
    upscale_method: str = _METHOD,
    scale_by: float = Float(1.0, min=0.01, max=8.0, step=0.01),
) -> IMAGE:
    """Resizes images by a factor."""
    width = max(1, round(image.shape[2] * scale_by))
    height = max(1, round(image.shape[1] * scale_by))
    return resize(image, width, height, upscale_method)


@node(category="image", display_name="Invert Image")
def ImageInvert(image: IMAGE) -> IMAGE:
    """Inverts the colours (1 - value)."""
    return 1.0 - image


@node(category="image", display_name="Batch Images")
def ImageBatch(image1: IMAGE, image2: IMAGE) -> IMAGE:
    """Joins two batches; the second is resized (bilinear, centre crop) to the first's size."""
    import torch

    if image1.shape[-1] != image2.shape[-1]:
        raise ValueError(
            f"ImageBatch: image1 has {image1.shape[-1]} channels and image2 {image2.shape[-1]}; "
            "they must match"
        )
    return torch.cat((image1, match_size(image2, image1, "bilinear").to(image1)), dim=0)


BLEND_MODES = ("normal", "multiply", "screen", "overlay", "soft_light", "difference")


def blend_pixels(base, layer, mode: str):
    """The blend-mode formula applied to ``layer`` over ``base`` (before mixing by factor)."""
    import torch

    if mode == "normal":
        return layer
    if mode == "multiply":
        return base * layer
    if mode == "screen":
        return 1 - (1 - base) * (1 - layer)
    if mode == "overlay":
        return torch.where(base <= 0.5, 2 * base * layer, 1 - 2 * (1 - base) * (1 - layer))
    if mode == "soft_light":
        # The W3C soft-light formula, as ComfyUI uses it.
        lifted = torch.where(base <= 0.25, ((16 * base - 12) * base + 4) * base, torch.sqrt(base))
        return torch.where(
            layer <= 0.5,
            base - (1 - 2 * layer) * base * (1 - base),
            base + (2 * layer - 1) * (lifted - base),
        )
    if mode == "difference":
        return base - layer
    raise ValueError(f"unknown blend mode {mode!r}; use one of {', '.join(BLEND_MODES)}")


@node(category="image/postprocessing", display_name="Image Blend")
def ImageBlend(
    image1: IMAGE,
    image2: IMAGE,
    blend_factor: float = Float(0.5, min=0.0, max=1.0, step=0.01),
    blend_mode: str = Combo(options=BLEND_MODES, default="normal"),
) -> IMAGE:
    """Blends image2 over image1 with a blend mode, mixed in by blend_factor; clamped to 0..1.
    image2 is resized (bicubic, centre crop) to image1's size when they differ."""
    if image1.shape[-1] != image2.shape[-1]:
        raise ValueError(
            f"ImageBlend: image1 has {image1.shape[-1]} channels and image2 {image2.shape[-1]}; "
            "they must match"
        )
    if image2.shape[0] not in (1, image1.shape[0]) and image1.shape[0] != 1:
        raise ValueError(
            f"ImageBlend: cannot blend a batch of {image2.shape[0]} over a batch of {image1.shape[0]}; "
            "give batches of the same size, or one image"
        )
    image2 = match_size(image2, image1, "bicubic").to(image1)
    blended = blend_pixels(image1, image2, blend_mode)
    return (image1 * (1 - blend_factor) + blended * blend_factor).clamp(0, 1)
