"""Upscale models (ESRGAN family and whatever else spandrel recognises) and tiled upscaling.

spandrel 0.4.2 is installed with ``--no-deps`` because its torchvision requirement cannot
be met here (there is no CPU torchvision wheel for this torch).  Two of its architectures
(LaMa, RestoreFormer) import ``torchvision.transforms.functional`` at module top, so
``import spandrel`` fails without it.  :func:`spandrel_module` therefore imports spandrel
with a minimal stand-in for that one module in ``sys.modules`` and removes it right after,
so nothing else ever sees a fake torchvision; the stand-in's functions raise a clear error
if one of those two architectures is actually used.  ESRGAN & co. never touch it.
"""

from __future__ import annotations

import enum
import functools
import importlib.util
import os
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import ModelLoadError

_STAND_IN_NAMES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional")
_IMPORT_LOCK = threading.Lock()


def _needs_torchvision(*args: Any, **kwargs: Any) -> Any:
    raise ModelLoadError("this upscale model's architecture (LaMa or RestoreFormer) needs torchvision, "
                         "which is not installed")


class _InterpolationMode(enum.Enum):
    NEAREST = "nearest"
    NEAREST_EXACT = "nearest-exact"
    BILINEAR = "bilinear"
    BICUBIC = "bicubic"
    BOX = "box"
    HAMMING = "hamming"
    LANCZOS = "lanczos"


def _stand_ins() -> dict[str, types.ModuleType]:
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.InterpolationMode = _InterpolationMode
    functional.rotate = _needs_torchvision
    functional.normalize = _needs_torchvision
    transforms.functional = functional
    root.transforms = transforms
    return dict(zip(_STAND_IN_NAMES, (root, transforms, functional)))


@functools.cache
def spandrel_module() -> Any:
    """``spandrel``, imported once (see the module docstring for the torchvision stand-in)."""
    with _IMPORT_LOCK:
        if "spandrel" in sys.modules or importlib.util.find_spec("torchvision") is not None:
            import spandrel

            return spandrel
        stand_ins = _stand_ins()
        for name in _STAND_IN_NAMES:
            if name in sys.modules:
                raise RuntimeError(f"{name} is half-imported; cannot import spandrel safely")
        sys.modules.update(stand_ins)
        try:
            import spandrel
        finally:
            for name, module in stand_ins.items():
                if sys.modules.get(name) is module:
                    del sys.modules[name]
        return spandrel


@dataclass(frozen=True, eq=False)
class UpscaleModel:
    """UPSCALE_MODEL: a spandrel image model and its scale."""

    model: Any            # spandrel.ImageModelDescriptor
    source: str = ""

    @property
    def scale(self) -> int:
        return int(self.model.scale)


def load_upscale_model(path: str | os.PathLike) -> UpscaleModel:
    """An upscale model from a ``.pth`` / ``.safetensors`` file (read without pickle)."""
    import torch

    from .lora import read_weights

    path = Path(path)
    # spandrel builds fp32 modules; fp16/bf16/fp8 files are converted as they are read,
    # so its architecture probes never see an 8-bit float.
    state = read_weights(path, torch.float32)
    if "params_ema" in state or "params" in state:  # BasicSR checkpoints nest the weights
        raise ModelLoadError(f"{path.name}: nested BasicSR checkpoint; the weights-only reader found no tensors")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    spandrel = spandrel_module()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(state)
    except spandrel.UnsupportedModelError as exc:
        raise ModelLoadError(f"{path.name} is not an upscale model spandrel recognises "
                             f"(keys like {', '.join(list(state)[:3])})") from exc
    except (KeyError, RuntimeError, ValueError) as exc:
        raise ModelLoadError(f"{path.name}: cannot be loaded as an upscale model ({exc})") from exc
    if not isinstance(descriptor, spandrel.ImageModelDescriptor):
        raise ModelLoadError(f"{path.name} is a {descriptor.architecture.name} model, not an image upscaler")
    descriptor.model.eval().requires_grad_(False)
    return UpscaleModel(descriptor, path.name)


def _starts(size: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering ``size``; the last tile ends at the edge (all tiles full-size)."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def _ramp(length: int, fade_start: int, fade_end: int) -> Any:
    """Blend weights along one tile axis: rising over ``fade_start`` pixels, falling over ``fade_end``."""
    import torch

    w = torch.ones(length)
    if fade_start:
        w[:fade_start] = torch.arange(1, fade_start + 1, dtype=torch.float32) / (fade_start + 1)
    if fade_end:
        w[length - fade_end:] = torch.minimum(
            w[length - fade_end:], torch.arange(fade_end, 0, -1, dtype=torch.float32) / (fade_end + 1))
    return w


def tiled_upscale(images: Any, fn: Callable[[Any], Any], scale: int, tile: int = 512, overlap: int = 32,
                  progress: Callable[[int, int], None] | None = None) -> Any:
    """Run ``fn`` (``[1, C, h, w]`` → ``[1, C, h·scale, w·scale]``) over overlapping tiles and
    blend them with linear ramps across the overlaps, so seams do not show and only one
    tile is in memory at a time.  ``images`` is ``[B, C, H, W]``."""
    import torch

    batch, channels, height, width = images.shape
    tile_h, tile_w = min(tile, height), min(tile, width)
    overlap = max(0, min(overlap, tile_h - 1, tile_w - 1))
    ys, xs = _starts(height, tile_h, overlap), _starts(width, tile_w, overlap)
    total, done = batch * len(ys) * len(xs), 0
    out = None
    for b in range(batch):
        acc = weight = None
        for y in ys:
            for x in xs:
                piece = fn(images[b:b + 1, :, y:y + tile_h, x:x + tile_w]).float()
                if acc is None:
                    out_channels = piece.shape[1]
                    acc = torch.zeros(out_channels, height * scale, width * scale)
                    weight = torch.zeros(1, height * scale, width * scale)
                fade = overlap * scale
                wy = _ramp(tile_h * scale, fade if y > 0 else 0, fade if y + tile_h < height else 0)
                wx = _ramp(tile_w * scale, fade if x > 0 else 0, fade if x + tile_w < width else 0)
                mask = (wy[:, None] * wx[None, :])[None]
                region = (slice(None), slice(y * scale, (y + tile_h) * scale), slice(x * scale, (x + tile_w) * scale))
                acc[region] += piece[0].cpu() * mask
                weight[region] += mask
                done += 1
                if progress is not None:
                    progress(done, total)
        result = (acc / weight)[None]
        out = result if out is None else torch.cat([out, result])
    return out


def upscale(model: UpscaleModel, image: Any, tile: int = 512, overlap: int = 32,
            progress: Callable[[int, int], None] | None = None, device: Any = None) -> Any:
    """IMAGE ``[B, H, W, C]`` upscaled by the model, tiled; halves the tile on out-of-memory."""
    import torch

    descriptor = model.model
    if device is not None:
        descriptor.to(device)
    param = next(descriptor.model.parameters())
    channels = int(descriptor.input_channels)
    pixels = image.movedim(-1, 1)[:, :channels].float()
    if pixels.shape[1] != channels:
        raise ValueError(f"upscale model '{model.source}' needs {channels}-channel images, got {pixels.shape[1]}")

    def run(piece):
        return descriptor(piece.to(param.device, param.dtype))

    while True:
        try:
            with torch.inference_mode():
                out = tiled_upscale(pixels, run, model.scale, tile, overlap, progress)
            break
        except torch.OutOfMemoryError:
            tile //= 2
            if tile < 128:
                raise
    return out.movedim(1, -1).clamp(0.0, 1.0)
