"""unCLIP: conditioning an SD2.1 unCLIP UNet on CLIP image embeddings, as ComfyUI does.

An unCLIP UNet (sd21-unclip-h / -l) has an extra input, the "adm" vector: the CLIP
image embedding, noise-augmented, concatenated with a sinusoidal embedding of the
augmentation's noise level.  In the original checkpoint that input is
``model.diffusion_model.label_emb``; in diffusers it is the UNet's
``class_embedding`` (``class_embed_type="projection"``) fed through ``class_labels``.

unCLIPConditioning only records ``{"clip_vision_output", "strength",
"noise_augmentation"}`` in each conditioning entry's ``unclip_conditioning`` list;
the sampler turns that into the adm vector (:func:`adm_vector`) because the noise
it adds is drawn from the sampling seed (ComfyUI: ``seed - 10``).  Entries without
it get zeros, which is what the negative prompt sees.

The noise augmentor holds no learned state in ComfyUI: a squaredcos_cap_v2 schedule
of 1000 levels, and unit statistics (ComfyUI does not read the CLIP stats the -l
model was trained with), so it follows from the UNet's adm width alone.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import ModelLoadError, SamplingError

#: Where the image tower sits in an original unCLIP checkpoint.
UNCLIP_VISION_PREFIX = "embedder.model.visual."
#: Noise levels of the augmentation schedule (``noise_schedule_config.timesteps``).
MAX_NOISE_LEVEL = 1000
#: ComfyUI's ``unclip_noise_augment_merge``: how much noise re-augments a sum of several images.
MERGE_NOISE_AUGMENTATION = 0.05
#: ComfyUI draws the augmentation noise from the sampling seed minus this.
SEED_OFFSET = 10


# -- conditioning -------------------------------------------------------------------------------


def apply_unclip(conditioning: Sequence, clip_vision_output: Any, strength: float,
                 noise_augmentation: float) -> list:
    """unCLIPConditioning: each entry gets the image appended to its ``unclip_conditioning``."""
    if strength == 0:
        return list(conditioning)
    if not hasattr(clip_vision_output, "image_embeds"):
        raise SamplingError("clip_vision_output must come from CLIP Vision Encode (it has no image_embeds)")
    image = {"clip_vision_output": clip_vision_output, "strength": float(strength),
             "noise_augmentation": float(noise_augmentation)}
    out = []
    for pair in conditioning:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[1], dict):
            raise SamplingError("conditioning must be a list of [tensor, dict] pairs")
        meta = dict(pair[1])
        meta["unclip_conditioning"] = [*meta.get("unclip_conditioning", ()), image]
        out.append([pair[0], meta])
    return out


# -- the model side -----------------------------------------------------------------------------


def adm_width(unet) -> int | None:
    """Width of the UNet's image-embedding (adm) input; None when it has none."""
    config = unet.config
    if config.get("class_embed_type") != "projection":
        return None
    return int(config.get("projection_class_embeddings_input_dim") or 0) or None


def require_adm_input(model) -> int:
    """The adm width of ``model``'s UNet, or a clear error saying unCLIP needs an unCLIP model."""
    width = adm_width(model.unet)
    if width is None:
        raise SamplingError(
            f"unCLIP conditioning was given to a {model.family} model without an image-embedding (adm) "
            "input: it needs an SD2.1 unCLIP checkpoint (e.g. sd21-unclip-h), loaded with "
            "unCLIPCheckpointLoader or Load Checkpoint. Remove unCLIPConditioning or change the model.")
    return width


@functools.cache
def _schedule_sqrt_alphas(levels: int = MAX_NOISE_LEVEL) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """sqrt(ᾱ) and sqrt(1-ᾱ) of the squaredcos_cap_v2 schedule (betas capped at 0.999)."""
    def alpha_bar(t: float) -> float:
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    cumulative, a, b = 1.0, [], []
    for i in range(levels):
        beta = min(1 - alpha_bar((i + 1) / levels) / alpha_bar(i / levels), 0.999)
        cumulative *= 1 - beta
        a.append(math.sqrt(cumulative))
        b.append(math.sqrt(1 - cumulative))
    return tuple(a), tuple(b)


def noise_level_embedding(level: int, dim: int):
    """Sinusoidal embedding of the noise level, cos half first (ComfyUI's Timestep / diffusers'
    ``get_timestep_embedding(flip_sin_to_cos=True, downscale_freq_shift=0)``)."""
    import torch

    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = torch.tensor([float(level)])[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


@dataclass(frozen=True)
class NoiseAugmentor:
    """CLIPEmbeddingNoiseAugmentation with ComfyUI's (unit) statistics."""

    dim: int
    max_noise_level: int = MAX_NOISE_LEVEL

    def level(self, amount: float) -> int:
        """Noise level for a noise_augmentation of 0..1."""
        return round((self.max_noise_level - 1) * float(amount))

    def __call__(self, embeds, level: int, seed: int):
        """``embeds [1, dim]`` → (noised embeds ``[1, dim]``, noise-level embedding ``[1, dim]``)."""
        import torch

        x = embeds.reshape(1, -1).float()
        # a fresh generator per call, as ComfyUI re-seeds for every image
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(int(seed)), dtype=torch.float32)
        a, b = _schedule_sqrt_alphas(self.max_noise_level)
        noised = a[level] * x + b[level] * noise
        return noised, noise_level_embedding(level, self.dim)


def adm_vector(width: int, unclip_conditioning: Sequence[dict], seed: int):
    """The adm input ``[1, width]`` for one conditioning entry (ComfyUI's ``unclip_adm``):
    each image embedding noised and joined with its noise-level embedding, times its
    strength; several images are summed and the sum re-augmented a little."""
    import torch

    augment = NoiseAugmentor(width // 2)
    parts, noise_seed = [], int(seed) - SEED_OFFSET
    for item in unclip_conditioning:
        embeds = item["clip_vision_output"].image_embeds
        strength = float(item.get("strength", 1.0))
        level = augment.level(item.get("noise_augmentation", 0.0))
        for row in embeds.reshape(-1, embeds.shape[-1]):
            if row.shape[-1] != augment.dim:
                raise SamplingError(
                    f"the CLIP vision embedding is {row.shape[-1]} wide but this unCLIP model takes "
                    f"{augment.dim}: encode the image with the CLIP vision model of the same unCLIP "
                    "checkpoint (ViT-H/14 for sd21-unclip-h, ViT-L/14 for sd21-unclip-l)")
            noised, level_emb = augment(row.cpu(), level, noise_seed)
            parts.append(torch.cat([noised, level_emb], dim=1) * strength)
    if not parts:
        return torch.zeros(1, width)
    if len(parts) == 1:
        return parts[0]
    total = torch.stack(parts).sum(0)
    # ComfyUI draws this noise unseeded; Loom uses the seed so a prompt reproduces
    noised, level_emb = augment(total[:, :augment.dim], augment.level(MERGE_NOISE_AUGMENTATION), noise_seed)
    return torch.cat([noised, level_emb], dim=1)


def class_labels_for(model, meta: dict, seed: int | None):
    """The UNet's ``class_labels`` for a conditioning entry, or None for a model without adm.

    Raises a clear :class:`SamplingError` when the entry carries unCLIP conditioning the
    model cannot take."""
    import torch

    unclip = meta.get("unclip_conditioning")
    if unclip and model.family == "sdxl":  # SDXL's adm is its pooled text + sizes
        raise SamplingError("unCLIP conditioning on SDXL (\"Revision\") is not supported yet")
    width = adm_width(model.unet)
    if width is None:
        if unclip:
            require_adm_input(model)
        return None
    if not unclip:
        return torch.zeros(1, width)
    return adm_vector(width, unclip, 0 if seed is None else seed)


# -- checkpoint -----------------------------------------------------------------------------------


def load_unclip_checkpoint(path, manager):
    """unCLIPCheckpointLoader: MODEL, CLIP, VAE of the checkpoint and its CLIP vision tower."""
    from pathlib import Path

    from .clip_vision import find_vision_layout, load_checkpoint_clip_vision
    from .loading import WeightSource

    path = Path(path)
    shapes = WeightSource(path).shapes()
    if find_vision_layout(shapes, UNCLIP_VISION_PREFIX) is None:
        raise ModelLoadError(
            f"{path.name} is not an unCLIP checkpoint: it has no CLIP vision model ({UNCLIP_VISION_PREFIX}*). "
            "Load it with Load Checkpoint instead.")
    model, clip, vae = manager.load_checkpoint(path)
    if adm_width(model.unet) is None:
        raise ModelLoadError(f"{path.name}: its UNet has no image-embedding input (label_emb), so it is "
                             "not an unCLIP model")
    vision = load_checkpoint_clip_vision(path, UNCLIP_VISION_PREFIX, manager)
    return model, clip, vae, vision
