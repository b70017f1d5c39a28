"""Upscaling images: to a pixel budget (ImageScaleToTotalPixels) and with ESRGAN-family
models (UpscaleModelLoader, ImageUpscaleWithModel), ComfyUI's names and inputs.

The model runtime is :mod:`diffusion.upscale` (spandrel), imported lazily.
"""

from __future__ import annotations

import math

from engine.declare import Combo, Float, Int, Socket, node
from engine.node import NodeContext

from .imaging import IMAGE, UPSCALE_METHODS, resize
from .model_files import ModelFile

UPSCALE_MODEL = Socket("UPSCALE_MODEL")


@node(category="image/upscaling", display_name="ImageScaleToTotalPixels")
def ImageScaleToTotalPixels(
    image: IMAGE,
    upscale_method: str = Combo(options=UPSCALE_METHODS, default="nearest-exact"),
    megapixels: float = Float(1.0, min=0.01, max=16.0, step=0.01),
    resolution_steps: int | None = Int(1, min=1, max=256),
) -> IMAGE:
    """Resizes images to about ``megapixels`` million pixels (x 1024²), keeping the aspect
    ratio; width and height are rounded to multiples of resolution_steps."""
    steps = resolution_steps or 1
    total = megapixels * 1024 * 1024
    scale = math.sqrt(total / (image.shape[2] * image.shape[1]))
    width = max(steps, round(image.shape[2] * scale / steps) * steps)
    height = max(steps, round(image.shape[1] * scale / steps) * steps)
    return resize(image, int(width), int(height), upscale_method)


@node(category="loaders", display_name="Load Upscale Model")
def UpscaleModelLoader(ctx: NodeContext, model_name: str = ModelFile("upscale_models")) -> UPSCALE_MODEL:
    """Loads an ESRGAN-family upscale model (.pth or .safetensors) from models/upscale_models."""
    from diffusion.upscale import load_upscale_model

    from .interrupts import watch_interrupts

    watch_interrupts()  # this loader never creates the model manager, which would install it
    return load_upscale_model(ctx.env.folders.model_path("upscale_models", model_name))


@node(category="image/upscaling", display_name="Upscale Image (using Model)")
def ImageUpscaleWithModel(ctx: NodeContext, upscale_model: UPSCALE_MODEL, image: IMAGE) -> IMAGE:
    """Upscales images with a model, tile by tile (512 px tiles, 32 px blended overlap)."""
    from diffusion.upscale import upscale

    from .interrupts import watch_interrupts

    watch_interrupts()
    device = ctx.env.models.device if ctx.env is not None and ctx.env.device != "cpu" else None
    return upscale(upscale_model, image, progress=lambda done, total: ctx.progress(done, total), device=device)
