"""Live sampling previews, encoded as a small JPEG.

Two ways to make one (ComfyUI's ``--preview-method``):

* ``latent2rgb`` — a linear latent→RGB map per family; free, blurry, 1/8 size;
* ``taesd`` — the tiny TAESD decoder (:mod:`diffusion.taesd`) from
  ``models/vae_approx``; close to the real decode at full size, one small network
  pass per preview;
* ``auto`` picks ``taesd`` when the family's decoder file is there, else ``latent2rgb``;
  ``none`` makes none.

Every previewer takes the **model-space** latent the sampler's step callback gives
(the prediction of the clean latent, as the UNet sees it — for SD1.x/SDXL the VAE's
latent times its scale factor), never the raw VAE latent a LATENT may hold.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .latent_formats import LatentFormat

MAX_PREVIEW_SIZE = 512
METHODS = ("auto", "latent2rgb", "taesd", "none")

log = logging.getLogger("loom.preview")
_warned: set[str] = set()


def latent_to_rgb(latent, fmt: LatentFormat):
    """[C, h, w] latent → [h, w, 3] uint8 image."""
    import torch

    factors = torch.tensor(fmt.rgb_factors, dtype=torch.float32)
    bias = torch.tensor(fmt.rgb_bias, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent.float().cpu(), factors) + bias
    return ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)


def jpeg(rgb, quality: int = 85) -> bytes:
    """[h, w, 3] uint8 → JPEG bytes, shrunk to at most ``MAX_PREVIEW_SIZE`` on a side."""
    from PIL import Image

    image = Image.fromarray(rgb.numpy())
    if max(image.size) > MAX_PREVIEW_SIZE:
        image.thumbnail((MAX_PREVIEW_SIZE, MAX_PREVIEW_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def preview_jpeg(latent, fmt: LatentFormat, quality: int = 85) -> bytes:
    """JPEG bytes previewing the first image of a latent batch (latent2rgb)."""
    return jpeg(latent_to_rgb(latent[0], fmt), quality)


@dataclass(frozen=True)
class Previewer:
    """Makes the preview JPEG of a model-space latent batch (its first image)."""

    method: str                     # "taesd" | "latent2rgb"
    fmt: LatentFormat
    decoder: Any = None             # the TAESD decoder module, for "taesd"

    def __call__(self, latent) -> bytes:
        if self.method == "taesd":
            from .taesd import decode

            return jpeg(decode(self.decoder, latent, MAX_PREVIEW_SIZE))
        return preview_jpeg(latent, self.fmt)


def choose_previewer(method: str, fmt: LatentFormat, decoder_path: Path | None,
                     load_decoder: Callable[[Path], Any]) -> Previewer | None:
    """The previewer ``method`` asks for.

    ``decoder_path`` is the family's TAESD file in vae_approx (None when there is
    none); ``load_decoder(path)`` gives its module (the caller caches it).  Asking
    for ``taesd`` without the file logs one warning line per decoder name and falls
    back to latent2rgb, as ComfyUI does.
    """
    if method not in METHODS:
        raise ValueError(f"unknown preview method {method!r}; use one of {', '.join(METHODS)}")
    if method == "none":
        return None
    if method in ("taesd", "auto") and decoder_path is not None:
        return Previewer("taesd", fmt, load_decoder(decoder_path))
    if method == "taesd":
        from .taesd import DECODER_NAMES

        name = DECODER_NAMES.get(fmt.name, f"(no TAESD decoder for {fmt.name} latents)")
        if name not in _warned:
            _warned.add(name)
            log.warning("TAESD previews asked for, but models/vae_approx has no %s.safetensors: "
                        "using latent2rgb previews", name)
    return Previewer("latent2rgb", fmt)
