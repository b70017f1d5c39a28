"""Masks and masked compositing: LoadImageMask, InvertMask, GrowMask, FeatherMask,
MaskComposite, SolidMask, ThresholdMask, ImageToMask, MaskToImage,
ImageCompositeMasked, ImagePadForOutpaint.

Names, inputs, defaults and categories are ComfyUI's (``nodes.py``,
``comfy_extras/nodes_mask.py``) so shared workflows run unchanged.  MASK is
``[B, H, W]`` in 0..1 (a ``[H, W]`` mask from a custom node is accepted too).
"""

from __future__ import annotations

from typing import Any

from engine.declare import Boolean, Combo, Float, Int, node
from engine.node import NodeContext

from .image_bounds import DEFAULT_MAX_IMAGE_PIXELS, open_bounded, pixel_limit
from .imaging import IMAGE, MASK, MAX_RESOLUTION
from .io import _check_image, _image_digest, _image_file, _input_images

MASK_CHANNELS = ("alpha", "red", "green", "blue")
COMPOSITE_OPERATIONS = ("multiply", "add", "subtract", "and", "or", "xor")


def as_batch(mask: Any) -> Any:
    """A mask as ``[B, H, W]`` (custom nodes sometimes pass ``[H, W]``)."""
    if mask.ndim < 2:
        raise ValueError(f"a mask needs at least height and width, got shape {list(mask.shape)}")
    return mask.reshape((-1, mask.shape[-2], mask.shape[-1]))


def repeat_to_batch(tensor: Any, size: int) -> Any:
    """``tensor`` with its first dimension cycled (or cut) to ``size``, as ComfyUI does."""
    if tensor.shape[0] == size:
        return tensor
    if tensor.shape[0] > size:
        return tensor[:size]
    reps = -(-size // tensor.shape[0])
    return tensor.repeat((reps,) + (1,) * (tensor.ndim - 1))[:size]


# -- loading --------------------------------------------------------------------------


def load_mask(path, channel: str, max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> Any:
    """One channel of an image file as a ``[1, H, W]`` mask; alpha is inverted (1 = transparent).
    An image over ``max_pixels`` fails before it is decoded (:class:`ImageTooLarge`)."""
    import numpy as np
    import torch
    from PIL import ImageOps, UnidentifiedImageError

    if channel not in MASK_CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(MASK_CHANNELS)}")
    try:
        picture = open_bounded(path, max_pixels, f"'{path.name}'")
    except UnidentifiedImageError:
        raise ValueError(f"'{path.name}' is not an image file that can be read") from None
    with picture:
        picture = ImageOps.exif_transpose(picture)
        if picture.getbands() != ("R", "G", "B", "A"):
            if picture.mode == "I":  # 16-bit greyscale into 8-bit range, as LoadImage does
                picture = picture.point(lambda value: value * (1 / 255))
            picture = picture.convert("RGBA")
        band = channel[0].upper()
        values = torch.from_numpy(np.asarray(picture.getchannel(band), dtype=np.float32) / 255.0)
    if band == "A":
        values = 1.0 - values
    return values.unsqueeze(0)


@node(category="mask", display_name="Load Image (as Mask)",
      fingerprint=_image_digest, validate=_check_image)
def LoadImageMask(
    ctx: NodeContext,
    image: str = Combo(options=_input_images, extra={"image_upload": True}),
    channel: str = Combo(options=MASK_CHANNELS, default="alpha"),
) -> MASK:
    """Loads one channel of an image from the input folder as a mask (alpha: 1 where transparent)."""
    return load_mask(_image_file(ctx.env, image), channel, pixel_limit(ctx.env))


# -- mask arithmetic ------------------------------------------------------------------


@node(category="mask", display_name="InvertMask")
def InvertMask(mask: MASK) -> MASK:
    """1 - mask."""
    return 1.0 - mask


@node(category="mask", display_name="SolidMask")
def SolidMask(
    value: float = Float(1.0, min=0.0, max=1.0, step=0.01),
    width: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
    height: int = Int(512, min=1, max=MAX_RESOLUTION, step=1),
) -> MASK:
    """A mask of one value everywhere."""
    import torch

    return torch.full((1, height, width), float(value), dtype=torch.float32)


@node(category="mask", display_name="ThresholdMask")
def ThresholdMask(mask: MASK, value: float = Float(0.5, min=0.0, max=1.0, step=0.01)) -> MASK:
    """1 where the mask is above the value, else 0."""
    return (mask > value).float()


def grow(mask: Any, expand: int, tapered_corners: bool) -> Any:
    """Dilate (expand > 0) or erode (expand < 0) by |expand| steps of a 3x3 kernel;
    tapered corners use the plus-shaped kernel, so diagonals grow more slowly."""
    import torch
    import torch.nn.functional as F

    masks = as_batch(mask).float()
    if expand == 0:
        return masks.clone()
    x = masks.unsqueeze(1)
    sign = 1.0 if expand > 0 else -1.0
    x = x * sign  # erosion is dilation of the negated mask
    for _ in range(abs(expand)):
        # Out-of-image neighbours never win (-inf padding), as with scipy's mirrored
        # border where the outside neighbour is the edge pixel itself.
        padded = F.pad(x, (1, 1, 1, 1), value=float("-inf"))
        if tapered_corners:
            rows = F.max_pool2d(padded[:, :, 1:-1, :], (1, 3), stride=1)
            cols = F.max_pool2d(padded[:, :, :, 1:-1], (3, 1), stride=1)
            x = torch.maximum(rows, cols)
        else:
            x = F.max_pool2d(padded, 3, stride=1)
    return (x * sign).squeeze(1)


@node(category="mask", display_name="GrowMask")
def GrowMask(
    mask: MASK,
    expand: int = Int(0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION, step=1),
    tapered_corners: bool = Boolean(True),
) -> MASK:
    """Grows (positive expand) or shrinks (negative) the mask by that many pixels."""
    return grow(mask, expand, tapered_corners)


def feather(mask: Any, left: int, top: int, right: int, bottom: int) -> Any:
    """Linear fade-in over the given number of pixels at each edge (ComfyUI's ramps:
    the outermost pixel gets 1/n, the n-th gets 1)."""
    import torch

    out = as_batch(mask).clone().float()
    height, width = out.shape[-2], out.shape[-1]
    left, right = min(left, width), min(right, width)
    top, bottom = min(top, height), min(bottom, height)

    def ramp(n: int) -> Any:
        return torch.arange(1, n + 1, dtype=out.dtype) / n

    if left:
        out[:, :, :left] *= ramp(left)
    if right:
        # ComfyUI indexes the right edge as -x for x in 0..n-1, so its weakest factor
        # lands on column 0 and the rest on the last n-1 columns; kept for identical output.
        factors = ramp(right)
        out[:, :, 0] *= factors[0]
        if right > 1:
            out[:, :, width - right + 1:] *= factors[1:].flip(0)
    if top:
        out[:, :top, :] *= ramp(top)[:, None]
    if bottom:
        factors = ramp(bottom)
        out[:, 0, :] *= factors[0]
        if bottom > 1:
            out[:, height - bottom + 1:, :] *= factors[1:].flip(0)[:, None]
    return out


@node(category="mask", display_name="FeatherMask")
def FeatherMask(
    mask: MASK,
    left: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    top: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    right: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    bottom: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
) -> MASK:
    """Fades the mask out towards the chosen edges."""
    return feather(mask, left, top, right, bottom)


def composite_masks(destination: Any, source: Any, x: int, y: int, operation: str) -> Any:
    import torch

    if operation not in COMPOSITE_OPERATIONS:
        raise ValueError(f"unknown operation {operation!r}; use one of {', '.join(COMPOSITE_OPERATIONS)}")
    out = as_batch(destination).clone().float()
    source = as_batch(source).to(out)
    height, width = out.shape[-2], out.shape[-1]
    right, bottom = min(x + source.shape[-1], width), min(y + source.shape[-2], height)
    if right <= x or bottom <= y:
        return out
    src = source[:, : bottom - y, : right - x]
    dst = out[:, y:bottom, x:right]
    if operation == "multiply":
        result = dst * src
    elif operation == "add":
        result = dst + src
    elif operation == "subtract":
        result = dst - src
    else:
        logic = {"and": torch.logical_and, "or": torch.logical_or, "xor": torch.logical_xor}[operation]
        result = logic(dst.round().bool(), src.round().bool()).float()
    out[:, y:bottom, x:right] = result
    return out.clamp(0.0, 1.0)


@node(category="mask", display_name="MaskComposite")
def MaskComposite(
    destination: MASK,
    source: MASK,
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    operation: str = Combo(options=COMPOSITE_OPERATIONS, default="multiply"),
) -> MASK:
    """Combines source into destination at (x, y) with an operation; clamped to 0..1."""
    return composite_masks(destination, source, x, y, operation)


# -- image <-> mask -------------------------------------------------------------------

IMAGE_CHANNELS = ("red", "green", "blue", "alpha")


@node(category="mask", display_name="Convert Image to Mask")
def ImageToMask(image: IMAGE, channel: str = Combo(options=IMAGE_CHANNELS, default="red")) -> MASK:
    """One channel of the images as a mask."""
    index = IMAGE_CHANNELS.index(channel)
    if index >= image.shape[-1]:
        raise ValueError(f"ImageToMask: the image has {image.shape[-1]} channels, so it has no {channel} channel")
    return image[..., index]


@node(category="mask", display_name="Convert Mask to Image")
def MaskToImage(mask: MASK) -> IMAGE:
    """The mask as a grey RGB image."""
    return as_batch(mask).unsqueeze(-1).expand(-1, -1, -1, 3)


def composite(destination: Any, source: Any, x: int, y: int, mask: Any = None, multiplier: int = 1,
              resize_source: bool = False) -> Any:
    """Paste ``source`` over ``destination`` (both ``[B, C, H, W]``) at (x, y) in units of
    ``multiplier`` pixels, through ``mask`` (resized bilinearly to the source) when given."""
    import torch
    import torch.nn.functional as F

    source = source.to(destination)
    if resize_source:
        source = F.interpolate(source, size=destination.shape[2:], mode="bilinear")
    source = repeat_to_batch(source, destination.shape[0])
    x = max(-source.shape[3] * multiplier, min(x, destination.shape[3] * multiplier))
    y = max(-source.shape[2] * multiplier, min(y, destination.shape[2] * multiplier))
    left, top = x // multiplier, y // multiplier
    right, bottom = left + source.shape[3], top + source.shape[2]
    if mask is None:
        mask = torch.ones_like(source)
    else:
        mask = as_batch(mask).to(destination).unsqueeze(1)
        mask = F.interpolate(mask, size=source.shape[2:], mode="bilinear")
        mask = repeat_to_batch(mask, source.shape[0])
    visible_w = destination.shape[3] - left + min(0, x)
    visible_h = destination.shape[2] - top + min(0, y)
    mask = mask[:, :, :visible_h, :visible_w]
    part = source[:, :, :visible_h, :visible_w]
    region = destination[:, :, max(top, 0):bottom, max(left, 0):right]
    destination[:, :, max(top, 0):bottom, max(left, 0):right] = mask * part + (1 - mask) * region
    return destination


def _alpha_fix(destination: Any, source: Any) -> tuple[Any, Any]:
    """Give the one without alpha an opaque alpha channel when only one has it."""
    import torch.nn.functional as F

    d, s = destination.shape[-1], source.shape[-1]
    if d < s:
        destination = F.pad(destination, (0, s - d), value=1.0)
    elif s < d:
        source = F.pad(source, (0, d - s), value=1.0)
    return destination, source


@node(category="image", display_name="ImageCompositeMasked")
def ImageCompositeMasked(
    destination: IMAGE,
    source: IMAGE,
    x: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    y: int = Int(0, min=0, max=MAX_RESOLUTION, step=1),
    resize_source: bool = Boolean(False),
    mask: MASK | None = None,
) -> IMAGE:
    """Pastes source onto destination at (x, y), through the mask when one is given."""
    destination, source = _alpha_fix(destination, source)
    out = composite(destination.clone().movedim(-1, 1), source.movedim(-1, 1), x, y, mask, 1, resize_source)
    return out.movedim(1, -1)


def pad_for_outpaint(image: Any, left: int, top: int, right: int, bottom: int, feathering: int) -> tuple[Any, Any]:
    """Grey (0.5) border around the images plus the mask to inpaint: 1 on the border,
    and inside, when feathering, ``((f - d) / f)²`` within ``f`` pixels of a padded side."""
    import torch

    batch, height, width, channels = image.shape
    out = torch.full((batch, height + top + bottom, width + left + right, channels), 0.5, dtype=torch.float32)
    out[:, top:top + height, left:left + width, :] = image
    mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
    inner = torch.zeros((height, width), dtype=torch.float32)
    if feathering > 0 and feathering * 2 < height and feathering * 2 < width:
        i = torch.arange(height, dtype=torch.float32)[:, None].expand(height, width)
        j = torch.arange(width, dtype=torch.float32)[None, :].expand(height, width)
        far_h, far_w = torch.full_like(i, height), torch.full_like(j, width)
        distance = torch.stack([
            i if top else far_h, (height - i) if bottom else far_h,
            j if left else far_w, (width - j) if right else far_w,
        ]).amin(0)
        ramp = ((feathering - distance) / feathering).clamp(min=0.0)
        inner = torch.where(distance < feathering, ramp * ramp, inner)
    mask[top:top + height, left:left + width] = inner
    return out, mask.unsqueeze(0)


@node(category="image", display_name="Pad Image for Outpainting")
def ImagePadForOutpaint(
    image: IMAGE,
    left: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    top: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    right: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    bottom: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
    feathering: int = Int(40, min=0, max=MAX_RESOLUTION, step=1),
) -> tuple[IMAGE, MASK]:
    """Adds a border to outpaint into, and the mask that marks it."""
    return pad_for_outpaint(image, left, top, right, bottom, feathering)
