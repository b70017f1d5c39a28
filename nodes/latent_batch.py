"""Latent batches: LatentBatch, RepeatLatentBatch and LatentFromBatch (ComfyUI's names,
inputs and outputs).

A LATENT's ``batch_index`` lists, per item, which slot of a batch its noise comes from (the
sampler draws the seed's noise for the largest index and takes those slots), so an item
picked out of a batch, or a batch repeated, keeps the noise it had.  These nodes keep and
extend it exactly as ComfyUI's do; a ``noise_mask`` follows the items it belongs to.
"""

from __future__ import annotations

import math
from typing import Any

from engine.declare import Int, Socket, node

from .latent_resize import _check

LATENT = Socket("LATENT")
MAX_RESOLUTION = 16384


@node(category="latent/batch", display_name="Latent From Batch")
def LatentFromBatch(samples: LATENT,
                    batch_index: int = Int(0, min=-MAX_RESOLUTION, max=MAX_RESOLUTION),
                    length: int = Int(1, min=1, max=64)) -> LATENT:
    """Picks ``length`` items starting at ``batch_index`` (negative counts from the end;
    clamped to the batch) and remembers which slots they were, so they keep their noise."""
    latent = _check(samples)
    size = latent.shape[0]
    if batch_index < 0:
        batch_index += size
    start = max(0, min(size - 1, batch_index))
    count = min(size - start, length)
    out = dict(samples)
    out["samples"] = latent[start:start + count].clone()
    masks = samples.get("noise_mask")
    if masks is not None:
        if masks.shape[0] == 1:
            out["noise_mask"] = masks.clone()
        else:
            if masks.shape[0] < size:
                masks = masks.repeat(math.ceil(size / masks.shape[0]), 1, 1, 1)[:size]
            out["noise_mask"] = masks[start:start + count].clone()
    if "batch_index" in samples:
        out["batch_index"] = list(samples["batch_index"])[start:start + count]
    else:
        out["batch_index"] = list(range(start, start + count))
    return out


@node(category="latent/batch", display_name="Repeat Latent Batch")
def RepeatLatentBatch(samples: LATENT, amount: int = Int(1, min=1, max=64)) -> LATENT:
    """Repeats the whole batch ``amount`` times; repeated items get new noise slots past the
    original ones."""
    latent = _check(samples)
    out = dict(samples)
    out["samples"] = latent.repeat((amount,) + (1,) * (latent.ndim - 1))
    masks = samples.get("noise_mask")
    if masks is not None and masks.shape[0] > 1:
        # ComfyUI repeats the mask batch as given (a shorter one is not first spread over the items)
        out["noise_mask"] = masks.repeat((amount,) + (1,) * (masks.ndim - 1))
    if "batch_index" in samples:
        indices = list(samples["batch_index"])
        offset = max(indices) - min(indices) + 1
        out["batch_index"] = indices + [x + i * offset for i in range(1, amount) for x in indices]
    return out


def _fit_to(target: Any, latent: Any) -> Any:
    """``latent`` resized (bilinear, centre-cropped to the aspect) to ``target``'s height and width."""
    if tuple(latent.shape[1:]) == tuple(target.shape[1:]):
        return latent
    if latent.shape[1] != target.shape[1]:
        raise ValueError(f"cannot batch latents with {target.shape[1]} and {latent.shape[1]} channels "
                         "(they come from different model families)")
    from diffusion.inpaint import fit_bilinear

    return fit_bilinear(latent, int(target.shape[-2]), int(target.shape[-1])).to(latent.dtype)


@node(category="latent/batch", display_name="LatentBatch")
def LatentBatch(samples1: LATENT, samples2: LATENT) -> LATENT:
    """Joins two latent batches into one (the second resized to the first's size if needed)."""
    import torch

    first, second = _check(samples1), _check(samples2)
    second = _fit_to(first, second)
    out = dict(samples1)
    out["samples"] = torch.cat((first, second), dim=0)
    out["batch_index"] = (list(samples1.get("batch_index", range(first.shape[0])))
                          + list(samples2.get("batch_index", range(second.shape[0]))))
    return out
