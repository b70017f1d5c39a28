"""Live sampling previews: a linear latent→RGB map, encoded as a small JPEG."""

from __future__ import annotations

import io

from .latent_formats import LatentFormat

MAX_PREVIEW_SIZE = 512


def latent_to_rgb(latent, fmt: LatentFormat):
    """[C, h, w] latent → [h, w, 3] uint8 image."""
    import torch

    factors = torch.tensor(fmt.rgb_factors, dtype=torch.float32)
    bias = torch.tensor(fmt.rgb_bias, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", latent.float().cpu(), factors) + bias
    return ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8)


def preview_jpeg(latent, fmt: LatentFormat, quality: int = 85) -> bytes:
    """JPEG bytes previewing the first image of a latent batch."""
    from PIL import Image

    image = Image.fromarray(latent_to_rgb(latent[0], fmt).numpy())
    if max(image.size) > MAX_PREVIEW_SIZE:
        image.thumbnail((MAX_PREVIEW_SIZE, MAX_PREVIEW_SIZE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()
