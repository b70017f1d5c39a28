"""VAE decode/encode between IMAGE ([B,H,W,C] in 0..1) and latents ([B,C,H/8,W/8]),
plus tiled decode and encode that blend overlapping tiles so large images fit in memory.

Latents here are the VAE's *raw* latents, as in ComfyUI: ``encode`` returns the mean of the
encoder's distribution unscaled, ``decode`` takes it as is.  The diffusion model's scaling
(and shift) is :meth:`diffusion.latent_formats.LatentFormat.process_in`, applied inside the
sampler, never here."""

from __future__ import annotations

from .errors import SamplingError
from .models import VaeModel


def _module(vae: VaeModel):
    module = vae.manager.use(vae.vae)
    p = next(module.parameters())
    return module, p.device, p.dtype


def decode(vae: VaeModel, latent):
    """Raw latent (as VAEEncode and the samplers give it) → IMAGE."""
    import torch

    if latent.ndim != 4:
        raise SamplingError(f"latent must be [batch, channels, height, width], got {list(latent.shape)}")
    module, device, dtype = _module(vae)
    if latent.shape[1] != module.config.latent_channels:
        raise SamplingError(f"latent has {latent.shape[1]} channels; this VAE expects {module.config.latent_channels}")
    with torch.inference_mode():
        images = []
        for item in latent.split(1):  # one at a time: decoding is memory-bound
            z = item.float().to(device, dtype)
            images.append(module.decode(z, return_dict=False)[0].float().cpu())
    image = torch.cat(images)
    return (image / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def encode(vae: VaeModel, image):
    """IMAGE → raw latent (the distribution's mean, unscaled), centre-cropped to multiples of
    the VAE's factor as ComfyUI's ``vae_encode_crop_pixels`` crops."""
    import torch

    module, device, dtype = _module(vae)
    f = vae.downscale
    h, w = (image.shape[1] // f) * f, (image.shape[2] // f) * f
    if h == 0 or w == 0:
        raise SamplingError(f"image of {image.shape[2]}×{image.shape[1]} is smaller than {f}×{f} pixels")
    y0, x0 = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    pixels = image[:, y0:y0 + h, x0:x0 + w, :3].permute(0, 3, 1, 2).float() * 2 - 1
    with torch.inference_mode():
        out = [module.encode(p.to(device, dtype), return_dict=False)[0].mode().float().cpu() for p in pixels.split(1)]
    return torch.cat(out)


def _ramp(size: int, overlap: int, at_start: bool, at_end: bool):
    """1-D blend weights: rising over ``overlap`` where a tile meets a neighbour."""
    import torch

    w = torch.ones(size)
    ramp = torch.linspace(0, 1, overlap + 2)[1:-1] if overlap > 0 else torch.ones(0)
    if not at_start and overlap:
        w[:overlap] = ramp
    if not at_end and overlap:
        w[-overlap:] = torch.minimum(w[-overlap:], ramp.flip(0))
    return w


def _starts(n: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering ``n`` with tiles of ``tile`` overlapping by ``overlap``."""
    if n <= tile:
        return [0]
    stride = max(1, tile - overlap)
    return sorted(set(list(range(0, n - tile, stride)) + [n - tile]))


def decode_tiled(vae: VaeModel, latent, tile_size: int = 512, overlap: int = 64):
    """Decode in overlapping pixel tiles of ``tile_size`` (``overlap`` pixels blended)."""
    import torch

    f = vae.downscale
    tile = max(1, tile_size // f)
    ov = max(0, min(overlap // f, tile // 2))
    _, _, h, w = latent.shape
    if h <= tile and w <= tile:
        return decode(vae, latent)
    ys, xs = _starts(h, tile, ov), _starts(w, tile, ov)
    out = torch.zeros(latent.shape[0], h * f, w * f, 3)
    weight = torch.zeros(1, h * f, w * f, 1)
    for y in ys:
        for x in xs:
            part = decode(vae, latent[:, :, y:y + tile, x:x + tile])
            th, tw = part.shape[1], part.shape[2]
            wy = _ramp(th, ov * f, y == 0, y + tile >= h)
            wx = _ramp(tw, ov * f, x == 0, x + tile >= w)
            mask = (wy[:, None] * wx[None, :])[None, :, :, None]
            out[:, y * f:y * f + th, x * f:x * f + tw] += part * mask
            weight[:, y * f:y * f + th, x * f:x * f + tw] += mask
    return out / weight.clamp_min(1e-6)


def encode_tiled(vae: VaeModel, image, tile_size: int = 512, overlap: int = 64):
    """IMAGE → raw latent, encoding overlapping pixel tiles of ``tile_size`` and blending
    their latents over ``overlap`` pixels (VAEEncodeTiled); the same centre crop as
    :func:`encode`, and equal to it when the image fits in one tile."""
    import torch

    if image.ndim != 4:
        raise SamplingError(f"pixels must be an IMAGE [batch, height, width, channels], got {list(image.shape)}")
    f = vae.downscale
    h, w = (image.shape[1] // f) * f, (image.shape[2] // f) * f
    if h == 0 or w == 0:
        raise SamplingError(f"image of {image.shape[2]}×{image.shape[1]} is smaller than {f}×{f} pixels")
    y0, x0 = (image.shape[1] - h) // 2, (image.shape[2] - w) // 2
    image = image[:, y0:y0 + h, x0:x0 + w]
    tile = max(f, (tile_size // f) * f)  # whole latent pixels per tile
    if h <= tile and w <= tile:
        return encode(vae, image)
    ov = max(0, min((overlap // f) * f, tile // 2))
    lh, lw = h // f, w // f
    out = weight = None
    for y in _starts(h, tile, ov):
        for x in _starts(w, tile, ov):
            y, x = (y // f) * f, (x // f) * f
            part = encode(vae, image[:, y:y + tile, x:x + tile])
            if out is None:
                out = torch.zeros(part.shape[0], part.shape[1], lh, lw)
                weight = torch.zeros(1, 1, lh, lw)
            th, tw = part.shape[2], part.shape[3]
            ly, lx = y // f, x // f
            wy = _ramp(th, ov // f, ly == 0, ly + th >= lh)
            wx = _ramp(tw, ov // f, lx == 0, lx + tw >= lw)
            mask = (wy[:, None] * wx[None, :])[None, None]
            out[:, :, ly:ly + th, lx:lx + tw] += part * mask
            weight[:, :, ly:ly + th, lx:lx + tw] += mask
    return out / weight.clamp_min(1e-6)
