"""Inpainting in the sampler: the latent's ``noise_mask`` and the inputs of 9-channel UNets.

A LATENT may carry ``noise_mask`` (``[B | 1, 1, H, W]`` in any size; 1 = regenerate).
As ComfyUI does, the mask is resized (bilinear) to the latent, and at every step the
unmasked part of the sample is put back to the original latent noised to the current
level, so that part ends exactly at the original latent.

An inpainting UNet (9 input channels) also sees the mask and the latent of the
image with the masked pixels greyed out (what VAEEncodeForInpaint produces); without
a noise mask it is told that everything is masked over a blank (grey) image.
"""

from __future__ import annotations

import math

from .errors import SamplingError

#: SD's VAE latent of a mid-grey image (ComfyUI's blank inpaint image), per channel,
#: already scaled by the VAE factor: what "nothing known here" looks like to the UNet.
_BLANK_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)


def latent_mask(noise_mask, shape):
    """``noise_mask`` as ``[B, 1, h, w]`` float for a latent of ``shape`` [B, C, h, w]."""
    import torch
    import torch.nn.functional as F

    mask = torch.as_tensor(noise_mask).float().cpu()
    if mask.ndim < 2 or mask.ndim > 4 or (mask.ndim == 4 and mask.shape[1] != 1):
        raise SamplingError(f"noise_mask must be [batch, 1, height, width] or [batch, height, width], "
                            f"got shape {list(mask.shape)}")
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    if tuple(mask.shape[-2:]) != tuple(shape[-2:]):
        mask = F.interpolate(mask, size=tuple(shape[-2:]), mode="bilinear", align_corners=False)
    batch = int(shape[0])
    if mask.shape[0] != batch:
        mask = mask.repeat(-(-batch // mask.shape[0]), 1, 1, 1)[:batch]
    return mask.clamp(0, 1)


def unet_extra_channels(model, latent_image, mask):
    """Channels an inpainting UNet needs besides the latent (None for ordinary UNets):
    the mask and the masked-image latent."""
    import torch

    extra = model.in_channels - latent_image.shape[1]
    if extra <= 0:
        return None
    if extra != 1 + latent_image.shape[1]:
        raise SamplingError(f"this UNet takes {model.in_channels} input channels; Loom knows 4-channel models "
                            "and 9-channel inpainting models")
    b, c, h, w = latent_image.shape
    if mask is None:
        blank = torch.tensor(_BLANK_LATENT[:c]).reshape(1, c, 1, 1).expand(b, c, h, w)
        return torch.cat([torch.ones(b, 1, h, w), blank], dim=1)
    # the latent of an image whose masked pixels are grey: VAEEncodeForInpaint's output
    return torch.cat([mask, latent_image], dim=1)


def keep_unmasked(x, mask, original):
    """``x`` where the mask is 1, ``original`` where it is 0 (blended in between)."""
    return x * mask + original * (1 - mask)


def grow(mask, by: int):
    """Mask ``[B, 1, H, W]`` rounded and dilated by a ``by``×``by`` box (0 = as is, rounded)."""
    import torch
    import torch.nn.functional as F

    if by <= 0:
        return mask.round()
    kernel = torch.ones((1, 1, by, by))
    grown = F.conv2d(mask.round(), kernel, padding=math.ceil((by - 1) / 2))
    return grown[..., : mask.shape[-2], : mask.shape[-1]].clamp(0, 1)


def encode_for_inpaint(vae, pixels, mask, grow_mask_by: int = 6) -> dict:
    """VAEEncodeForInpaint: the LATENT of ``pixels`` with the masked pixels set to grey
    (0.5), and a ``noise_mask`` grown by ``grow_mask_by`` pixels so the seam is regenerated."""
    import torch.nn.functional as F

    from .vae import encode

    if pixels.ndim != 4:
        raise SamplingError(f"pixels must be an IMAGE [batch, height, width, channels], got {list(pixels.shape)}")
    if mask.ndim < 2:
        raise SamplingError(f"mask must be [batch, height, width], got shape {list(mask.shape)}")
    if grow_mask_by < 0:
        raise SamplingError(f"grow_mask_by must be 0 or more, got {grow_mask_by}")
    f = vae.downscale
    h, w = pixels.shape[1], pixels.shape[2]
    mask = F.interpolate(mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1]), size=(h, w), mode="bilinear")
    hc, wc = (h // f) * f, (w // f) * f
    y0, x0 = (h % f) // 2, (w % f) // 2  # the same centre crop vae.encode makes
    pixels = pixels[:, y0:y0 + hc, x0:x0 + wc, :3].float()
    mask = mask[:, :, y0:y0 + hc, x0:x0 + wc]
    keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)
    if keep.shape[0] not in (1, pixels.shape[0]):
        raise SamplingError(f"mask batch {keep.shape[0]} does not match the image batch {pixels.shape[0]}")
    greyed = (pixels - 0.5) * keep + 0.5
    return {"samples": encode(vae, greyed), "noise_mask": grow(mask, grow_mask_by).round()}


def set_noise_mask(latent: dict, mask) -> dict:
    """SetLatentNoiseMask: the LATENT with ``mask`` as its noise mask."""
    if mask.ndim < 2:
        raise SamplingError(f"mask must be [batch, height, width], got shape {list(mask.shape)}")
    out = dict(latent)
    out["noise_mask"] = mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    return out
