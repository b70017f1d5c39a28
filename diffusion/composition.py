"""Conditioning composition: the pure list operations behind ComfyUI's Conditioning* nodes.

CONDITIONING is a list of ``[tensor [1, T, D], meta]``; every function returns a new
list with new meta dicts and never changes its input.  How the sampler reads the meta
keys set here (area, mask, strength, timestep range) is in :mod:`diffusion.cond_rows`.
"""

from __future__ import annotations

from typing import Any, Sequence

from .errors import SamplingError


def _checked(conditioning: Any, name: str = "conditioning") -> list:
    if not isinstance(conditioning, (list, tuple)) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[1], dict) for p in conditioning):
        raise SamplingError(f"{name} must be a CONDITIONING (a list of [tensor, dict] pairs)")
    return list(conditioning)


def with_values(conditioning: Sequence, **values) -> list:
    """Each entry with ``values`` set in its meta."""
    return [[cond, {**meta, **values}] for cond, meta in _checked(conditioning)]


def combine(first: Sequence, second: Sequence) -> list:
    """Both lists: the sampler averages their predictions (ConditioningCombine)."""
    return _checked(first, "conditioning_1") + _checked(second, "conditioning_2")


def _first(conditioning: Sequence, name: str):
    entries = _checked(conditioning, name)
    if not entries:
        raise SamplingError(f"{name} is empty")
    return entries[0]


def concat(to: Sequence, source: Sequence) -> list:
    """Each entry of ``to`` with the tokens of ``source``'s first entry appended (ConditioningConcat)."""
    import torch

    extra = _first(source, "conditioning_from")[0]
    out = []
    for cond, meta in _checked(to, "conditioning_to"):
        if cond.shape[-1] != extra.shape[-1]:
            raise SamplingError(f"cannot concatenate {extra.shape[-1]}-wide conditioning to {cond.shape[-1]}-wide "
                                "conditioning: encode both with the same CLIP")
        out.append([torch.cat([cond, extra.to(cond)], dim=1), dict(meta)])
    return out


def average(to: Sequence, source: Sequence, to_strength: float) -> list:
    """``to_strength``·to + (1 − to_strength)·source, token by token, pooled outputs likewise;
    ``source`` is cut or zero-padded to each entry's length (ConditioningAverage)."""
    import torch

    source_cond, source_meta = _first(source, "conditioning_from")
    source_pooled = source_meta.get("pooled_output")
    out = []
    for cond, meta in _checked(to, "conditioning_to"):
        if cond.shape[-1] != source_cond.shape[-1]:
            raise SamplingError(f"cannot average {source_cond.shape[-1]}-wide conditioning with "
                                f"{cond.shape[-1]}-wide conditioning: encode both with the same CLIP")
        other = source_cond[:, : cond.shape[1]].to(cond)
        if other.shape[1] < cond.shape[1]:
            pad = torch.zeros(other.shape[0], cond.shape[1] - other.shape[1], cond.shape[2], dtype=cond.dtype)
            other = torch.cat([other, pad], dim=1)
        new = dict(meta)
        pooled = meta.get("pooled_output", source_pooled)
        if source_pooled is not None and pooled is not None:
            new["pooled_output"] = pooled * to_strength + source_pooled * (1.0 - to_strength)
        elif source_pooled is not None:
            new["pooled_output"] = source_pooled
        out.append([cond * to_strength + other * (1.0 - to_strength), new])
    return out


def set_area(conditioning: Sequence, width: int, height: int, x: int, y: int, strength: float) -> list:
    """Restrict to a pixel rectangle (stored in latent pixels, /8) with a strength (ConditioningSetArea)."""
    if width < 8 or height < 8:
        raise SamplingError(f"area must be at least 8×8 pixels, got {width}×{height}")
    if x < 0 or y < 0:
        raise SamplingError(f"area position must not be negative, got ({x}, {y})")
    return with_values(conditioning, area=(height // 8, width // 8, y // 8, x // 8), strength=float(strength),
                       set_area_to_bounds=False)


def set_area_percentage(conditioning: Sequence, width: float, height: float, x: float, y: float,
                        strength: float) -> list:
    """Restrict to a rectangle given as fractions of the image (ConditioningSetAreaPercentage)."""
    for name, value in (("width", width), ("height", height), ("x", x), ("y", y)):
        if not 0.0 <= value <= 1.0:
            raise SamplingError(f"area {name} must be a fraction between 0 and 1, got {value}")
    return with_values(conditioning, area=("percentage", height, width, y, x), strength=float(strength),
                       set_area_to_bounds=False)


def set_mask(conditioning: Sequence, mask: Any, strength: float, set_cond_area: str) -> list:
    """Weight the conditioning by a mask; ``"mask bounds"`` also restricts it to the mask's
    bounding box (ConditioningSetMask)."""
    if set_cond_area not in ("default", "mask bounds"):
        raise SamplingError(f"set_cond_area must be 'default' or 'mask bounds', got {set_cond_area!r}")
    if mask.ndim < 2 or mask.ndim > 3:
        raise SamplingError(f"mask must be [batch, height, width], got shape {list(mask.shape)}")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    return with_values(conditioning, mask=mask, set_area_to_bounds=set_cond_area != "default",
                       mask_strength=float(strength))


def zero_out(conditioning: Sequence) -> list:
    """All zeros, pooled output included: "no prompt at all" (ConditioningZeroOut)."""
    import torch

    out = []
    for cond, meta in _checked(conditioning):
        new = dict(meta)
        if new.get("pooled_output") is not None:
            new["pooled_output"] = torch.zeros_like(new["pooled_output"])
        out.append([torch.zeros_like(cond), new])
    return out


def set_timestep_range(conditioning: Sequence, start: float, end: float) -> list:
    """Active only from ``start`` to ``end`` of sampling (0 = first step, 1 = last)
    (ConditioningSetTimestepRange)."""
    if not 0.0 <= start <= 1.0 or not 0.0 <= end <= 1.0:
        raise SamplingError(f"start and end must be between 0 and 1, got {start} and {end}")
    if start > end:
        raise SamplingError(f"start ({start}) must not be after end ({end})")
    return with_values(conditioning, start_percent=float(start), end_percent=float(end))
