"""Inpainting in the sampler: the latent's ``noise_mask`` and the inputs of 9-channel UNets.

A LATENT may carry ``noise_mask`` (``[B | 1, 1, H, W]`` in any size; 1 = regenerate).
As ComfyUI does, the mask is resized (bilinear) to the latent, and at every step the
unmasked part of the sample is put back to the original latent noised to the current
level, so that part ends exactly at the original latent.

An inpainting UNet (9 input channels) also sees a mask and the latent of the image with
the masked pixels greyed out, in the model's space (ComfyUI's ``concat_cond``): by default
the latent's own noise mask (rounded) and the sampled latent itself (what VAEEncodeForInpaint
produces); a conditioning entry may carry its own ``concat_latent_image`` (a raw latent,
taken through ``process_in``) and ``concat_mask`` (InpaintModelConditioning).  Without any
mask the UNet is told that everything is masked over a blank (grey) image.
"""

from __future__ import annotations

import math

from .errors import SamplingError

#: SD's VAE latent of a mid-grey image (ComfyUI's blank inpaint image), per channel, in the
#: model's space (raw latent × 0.18215): what "nothing known here" looks like to the UNet.
_BLANK_LATENT = (0.8223, -0.6876, 0.6364, 0.1380)
#: The conditioning keys InpaintModelConditioning sets (ComfyUI's names).
CONCAT_KEYS = ("concat_latent_image", "concat_mask")


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
    """Channels an inpainting UNet needs besides the latent (None for ordinary UNets): the
    mask and the masked-image latent.  ``latent_image`` is the sampler's latent in the
    model's space, ``mask`` the latent's noise mask as :func:`latent_mask` gives it."""
    extra = model.in_channels - latent_image.shape[1]
    if extra <= 0:
        return None
    if extra != 1 + latent_image.shape[1]:
        raise SamplingError(f"this UNet takes {model.in_channels} input channels; Loom knows 4-channel models "
                            "and 9-channel inpainting models")
    return concat_channels(latent_image, mask)


def concat_channels(latent_image, mask, concat_image=None):
    """``[B, 1 + C, h, w]``: the (rounded) mask and the masked-image latent (model space),
    both fitted to ``latent_image``'s size and batch as ComfyUI's ``concat_cond`` fits them;
    ``concat_image`` None means the sampled latent itself.  No mask: all ones over the blank
    image (the masked-image latent is then not used, as in ComfyUI)."""
    import torch

    b, c, h, w = latent_image.shape
    if mask is None:
        blank = torch.tensor(_BLANK_LATENT[:c]).reshape(1, c, 1, 1).expand(b, c, h, w)
        return torch.cat([torch.ones(b, 1, h, w), blank], dim=1)
    image = latent_image if concat_image is None else concat_image.float().cpu()
    if tuple(image.shape[1:]) != tuple(latent_image.shape[1:]):
        if image.ndim != 4 or image.shape[1] != c:
            raise SamplingError(f"concat_latent_image must be a [batch, {c}, height, width] latent, "
                                f"got shape {list(image.shape)}")
        image = fit_bilinear(image, h, w)
    image = resize_to_batch(image, b)
    mask = torch.as_tensor(mask).float().cpu()
    if mask.ndim == 4:
        mask = mask[:, :1]
    if mask.ndim < 2:
        raise SamplingError(f"concat_mask must be [batch, height, width], got shape {list(mask.shape)}")
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    if tuple(mask.shape[-2:]) != (h, w):
        mask = fit_bilinear(mask, h, w)
    mask = resize_to_batch(mask.round(), b)
    return torch.cat([mask, image], dim=1)


def entry_concat(model, meta: dict, latent_image, mask):
    """A conditioning entry's own inpainting channels, or None when it carries neither
    ``concat_latent_image`` nor ``concat_mask``.  ``concat_mask`` replaces the noise mask;
    ``concat_latent_image`` (a raw latent) goes through the model's ``process_in``."""
    if not any(meta.get(key) is not None for key in CONCAT_KEYS):
        return None
    image = meta.get("concat_latent_image")
    if image is not None:
        image = model.latent_format.process_in(image.float().cpu())
    own_mask = meta.get("concat_mask")
    return concat_channels(latent_image, own_mask if own_mask is not None else mask, image)


def fit_bilinear(samples, height: int, width: int):
    """``[B, C, H, W]`` centre-cropped to the aspect of ``width``×``height`` and resized
    bilinearly to it (ComfyUI's ``common_upscale(..., "bilinear", "center")``)."""
    import torch.nn.functional as F

    from .image_crop import center_crop

    return F.interpolate(center_crop(samples, width, height).float(), size=(height, width), mode="bilinear")


def resize_to_batch(tensor, batch: int):
    """``tensor`` with ``batch`` items as ComfyUI's ``resize_to_batch_size`` makes it: a
    smaller batch spread evenly over the larger one (each item repeated in place, the item
    nearest each slot's centre), a larger one sampled evenly from first to last."""
    import torch

    have = tensor.shape[0]
    if have == batch:
        return tensor
    if batch <= 1:
        return tensor[:batch]
    if batch < have:
        scale = (have - 1) / (batch - 1)
        index = [min(round(i * scale), have - 1) for i in range(batch)]
    else:
        scale = have / batch
        index = [min(math.floor((i + 0.5) * scale), have - 1) for i in range(batch)]
    return tensor[torch.tensor(index)]


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


def inpaint_model_conditioning(positive, negative, vae, pixels, mask, noise_mask: bool = True):
    """InpaintModelConditioning: (positive, negative, LATENT).  The LATENT is the raw latent of
    ``pixels`` (with the pixel-sized mask as its ``noise_mask`` when ``noise_mask``); every
    conditioning entry gets ``concat_latent_image`` — the raw latent of the image with the
    masked pixels grey — and ``concat_mask``, which an inpainting UNet reads instead of the
    latent's own (ComfyUI's crop to multiples of 8 and grey fill)."""
    import torch.nn.functional as F

    from .vae import encode

    if getattr(pixels, "ndim", None) != 4:
        raise SamplingError(f"pixels must be an IMAGE [batch, height, width, channels], "
                            f"got {list(getattr(pixels, 'shape', ()))}")
    if getattr(mask, "ndim", 0) < 2:
        raise SamplingError(f"mask must be [batch, height, width], got shape {list(getattr(mask, 'shape', ()))}")
    h, w = pixels.shape[1], pixels.shape[2]
    hc, wc = (h // 8) * 8, (w // 8) * 8
    if hc == 0 or wc == 0:
        raise SamplingError(f"image of {w}×{h} is smaller than 8×8 pixels")
    mask = F.interpolate(mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1]), size=(h, w), mode="bilinear")
    y0, x0 = (h % 8) // 2, (w % 8) // 2
    cropped = pixels[:, y0:y0 + hc, x0:x0 + wc, :3].float()
    mask = mask[:, :, y0:y0 + hc, x0:x0 + wc]
    keep = (1.0 - mask.round()).squeeze(1).unsqueeze(-1)
    if keep.shape[0] not in (1, cropped.shape[0]):
        raise SamplingError(f"mask batch {keep.shape[0]} does not match the image batch {cropped.shape[0]}")
    concat_latent = encode(vae, (cropped - 0.5) * keep + 0.5)
    latent = {"samples": encode(vae, pixels)}
    if noise_mask:
        latent["noise_mask"] = mask
    out = []
    for conditioning in (positive, negative):
        entries = []
        for pair in conditioning:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[1], dict):
                raise SamplingError("conditioning must be a list of [tensor, dict] pairs")
            entries.append([pair[0], {**pair[1], "concat_latent_image": concat_latent, "concat_mask": mask}])
        out.append(entries)
    return out[0], out[1], latent


def set_noise_mask(latent: dict, mask) -> dict:
    """SetLatentNoiseMask: the LATENT with ``mask`` as its noise mask."""
    if mask.ndim < 2:
        raise SamplingError(f"mask must be [batch, height, width], got shape {list(mask.shape)}")
    out = dict(latent)
    out["noise_mask"] = mask.float().reshape(-1, 1, mask.shape[-2], mask.shape[-1])
    return out
