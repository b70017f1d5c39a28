"""Latent images: EmptyLatentImage, the VAE nodes (decode, encode, tiled decode and encode)
and the inpainting ones (VAEEncodeForInpaint, SetLatentNoiseMask, InpaintModelConditioning).

LATENT ``samples`` are the VAE's raw latents, as in ComfyUI: VAEEncode returns the encoder's
mean unscaled and VAEDecode takes it as is; the diffusion model's scale (and shift) is
applied inside the samplers (:mod:`diffusion.latent_formats`)."""

from __future__ import annotations

from engine.declare import Boolean, Input, Int, Socket, node

LATENT, VAE, IMAGE, MASK = Socket("LATENT"), Socket("VAE"), Socket("IMAGE"), Socket("MASK")
CONDITIONING = Socket("CONDITIONING")
MAX_RESOLUTION = 16384


@node(category="latent", display_name="Empty Latent Image",
      description="Create a new batch of empty latent images to be denoised via sampling.")
def EmptyLatentImage(width: int = Int(512, min=16, max=MAX_RESOLUTION, step=8),
                     height: int = Int(512, min=16, max=MAX_RESOLUTION, step=8),
                     batch_size: int = Int(1, min=1, max=4096)) -> LATENT:
    import torch

    # SD1.x, SD2.x and SDXL all use 4 latent channels at 1/8 of the image size.
    return {"samples": torch.zeros([batch_size, 4, height // 8, width // 8])}


@node(category="latent", display_name="VAE Decode",
      description="Decodes latent images back into pixel space images.")
def VAEDecode(samples: LATENT = Input(tooltip="The latent to be decoded."),
              vae: VAE = Input(tooltip="The VAE model used for decoding the latent.")) -> IMAGE:
    from diffusion.vae import decode

    return decode(vae, samples["samples"])


@node(category="latent", display_name="VAE Encode")
def VAEEncode(pixels: IMAGE, vae: VAE) -> LATENT:
    """Encodes images into latents (cropped to a multiple of 8 pixels)."""
    from diffusion.vae import encode

    return {"samples": encode(vae, pixels)}


@node(category="_for_testing", display_name="VAE Decode (Tiled)")
def VAEDecodeTiled(samples: LATENT, vae: VAE,
                   tile_size: int = Int(512, min=64, max=4096, step=32),
                   overlap: int = Int(64, min=0, max=4096, step=32),
                   temporal_size: int = Int(64, min=8, max=4096, step=4),
                   temporal_overlap: int = Int(8, min=4, max=4096, step=4)) -> IMAGE:
    """Decodes large latents tile by tile, blending ``overlap`` pixels between tiles.
    (temporal_* apply to video VAEs and are accepted for workflow compatibility.)"""
    from diffusion.vae import decode_tiled

    if tile_size < overlap * 4:  # ComfyUI's limit: the overlap is at most a quarter of a tile
        overlap = tile_size // 4
    return decode_tiled(vae, samples["samples"], tile_size, overlap)


@node(category="_for_testing", display_name="VAE Encode (Tiled)")
def VAEEncodeTiled(pixels: IMAGE, vae: VAE,
                   tile_size: int = Int(512, min=64, max=4096, step=64),
                   overlap: int = Int(64, min=0, max=4096, step=32),
                   temporal_size: int = Int(64, min=8, max=4096, step=4,
                                            tooltip="Only used for video VAEs: Amount of frames to encode at a time."),
                   temporal_overlap: int = Int(8, min=4, max=4096, step=4,
                                               tooltip="Only used for video VAEs: Amount of frames to overlap.")
                   ) -> LATENT:
    """Encodes large images tile by tile (tiles of ``tile_size`` pixels, their latents blended
    over ``overlap`` pixels), so they fit in memory; an image within one tile is encoded whole."""
    from diffusion.vae import encode_tiled

    return {"samples": encode_tiled(vae, pixels, tile_size, overlap)}


@node(category="latent/inpaint", display_name="VAE Encode (for Inpainting)")
def VAEEncodeForInpaint(pixels: IMAGE, vae: VAE, mask: MASK,
                        grow_mask_by: int = Int(6, min=0, max=64, step=1)) -> LATENT:
    """Encodes the image with the masked pixels greyed out and sets the (grown) mask as the
    latent's noise mask: the sampler regenerates only the masked part."""
    from diffusion.inpaint import encode_for_inpaint

    return encode_for_inpaint(vae, pixels, mask, grow_mask_by)


@node(category="latent/inpaint", display_name="Set Latent Noise Mask")
def SetLatentNoiseMask(samples: LATENT, mask: MASK) -> LATENT:
    """Restricts sampling to the masked part of the latent; the rest keeps the input."""
    from diffusion.inpaint import set_noise_mask

    return set_noise_mask(samples, mask)


@node(category="conditioning/inpaint", display_name="InpaintModelConditioning",
      output_names=("positive", "negative", "latent"))
def InpaintModelConditioning(positive: CONDITIONING, negative: CONDITIONING, vae: VAE, pixels: IMAGE, mask: MASK,
                             noise_mask: bool = Boolean(
                                 True, tooltip="Add a noise mask to the latent so sampling will only happen within "
                                 "the mask. Might improve results or completely break things depending on the model.")
                             ) -> tuple[CONDITIONING, CONDITIONING, LATENT]:
    """Conditions an inpainting model on the image with the masked part greyed out (and the
    mask); the latent is the whole image's, with the mask as its noise mask."""
    from diffusion.inpaint import inpaint_model_conditioning

    return inpaint_model_conditioning(positive, negative, vae, pixels, mask, noise_mask)
