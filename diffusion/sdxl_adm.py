"""SDXL's ADM ("added conditions"): the pooled bigG text plus numbers, each embedded
with the 256-wide sinusoidal timestep embedding inside the UNet.

* base: six sizes — (height, width), (crop_h, crop_w), (target_height, target_width);
* refiner: five numbers — (height, width), (crop_h, crop_w), aesthetic score.

The numbers come from the conditioning's meta under ComfyUI's keys (``width``,
``height``, ``crop_w``, ``crop_h``, ``target_width``, ``target_height``,
``aesthetic_score``), with ComfyUI's defaults where a conditioning has none: the latent's size in
pixels (the target size follows it), crop (0, 0), and for the refiner an aesthetic
score of 6, or 2.5 for negative prompts — the same defaults as diffusers' pipelines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import SamplingError

#: Size conditioning when a conditioning carries none and no latent gives one (ComfyUI's encode_adm default).
BASE_DEFAULT_SIZE = 768
#: The refiner's aesthetic score when a conditioning carries none (ComfyUI's and diffusers').
POSITIVE_AESTHETIC_SCORE = 6.0
NEGATIVE_AESTHETIC_SCORE = 2.5
#: A latent pixel is this many image pixels (the SDXL VAE).
LATENT_SCALE = 8


@dataclass(frozen=True)
class AdmLayout:
    """What an SDXL UNet's ADM takes."""

    refiner: bool
    pooled_width: int
    numbers: int        # 6 (base) or 5 (refiner)

    @property
    def name(self) -> str:
        return "SDXL refiner" if self.refiner else "SDXL base"


def layout_of(unet) -> AdmLayout | None:
    """The ADM layout of a diffusers UNet, or None when it has no SDXL text/time embedding.

    The layout is read from the UNet's own sizes: the refiner's text context is bigG
    alone, whose projection is as wide as its hidden state, so its ADM is exactly the
    context width plus five embeddings; the base's context is CLIP-L + bigG, which
    never fits that sum.
    """
    config = unet.config
    if config.get("addition_embed_type") != "text_time":
        return None
    total = int(config["projection_class_embeddings_input_dim"])
    per_number = int(config["addition_time_embed_dim"])
    refiner = total == int(config["cross_attention_dim"]) + 5 * per_number
    numbers = 5 if refiner else 6
    return AdmLayout(refiner, total - numbers * per_number, numbers)


def _numbers(layout: AdmLayout, meta: dict, positive: bool, latent_size: tuple[int, int] | None) -> list[float]:
    # ComfyUI fills a missing size from the latent being sampled, for base and refiner
    # alike (comfy/samplers.py, encode_model_conds); 768 only without a latent.
    default_h, default_w = ((latent_size[0] * LATENT_SCALE, latent_size[1] * LATENT_SCALE)
                            if latent_size is not None else (BASE_DEFAULT_SIZE, BASE_DEFAULT_SIZE))
    h, w = meta.get("height", default_h), meta.get("width", default_w)
    if layout.refiner:
        score = meta.get("aesthetic_score", POSITIVE_AESTHETIC_SCORE if positive else NEGATIVE_AESTHETIC_SCORE)
        return [h, w, meta.get("crop_h", 0), meta.get("crop_w", 0), score]
    return [h, w, meta.get("crop_h", 0), meta.get("crop_w", 0), meta.get("target_height", h),
            meta.get("target_width", w)]


def added_conditions(layout: AdmLayout, meta: dict, positive: bool,
                     latent_size: tuple[int, int] | None) -> tuple[Any, Any]:
    """(text_embeds [1, P], time_ids [1, 5 | 6]) for one conditioning entry."""
    import torch

    pooled = meta.get("pooled_output")
    if pooled is None:
        raise SamplingError(f"the {layout.name} model needs a pooled text embedding: encode the prompt "
                            "with this checkpoint's CLIP")
    pooled = pooled.reshape(1, -1).float()
    if pooled.shape[1] != layout.pooled_width:
        raise SamplingError(
            f"the conditioning's pooled text embedding is {pooled.shape[1]} wide but this {layout.name} model "
            f"expects {layout.pooled_width} (its ADM is pooled text + {layout.numbers} "
            f"{'size/aesthetic-score' if layout.refiner else 'size'} embeddings): encode the prompt with the "
            "CLIP of the checkpoint that samples (an SDXL refiner needs its own CLIP, not the base's)")
    ids = [float(v) for v in _numbers(layout, meta, positive, latent_size)]
    return pooled, torch.tensor([ids], dtype=torch.float32)
