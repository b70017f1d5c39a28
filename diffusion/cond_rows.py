"""CONDITIONING lists → resolved rows the guidance can run, following ComfyUI's rules.

A CONDITIONING entry is ``[tensor [1, T, D], meta]``; the meta keys read here are
ComfyUI's: ``strength``, ``area`` (``(h, w, y, x)`` in latent pixels, or
``("percentage", h, w, y, x)`` as fractions), ``mask`` (``[B, H, W]``), ``mask_strength``,
``set_area_to_bounds``, ``start_percent``/``end_percent``, ``control`` (a ControlNet
chain), ``control_apply_to_uncond`` and, for SDXL, ``pooled_output`` and the size (refiner: and
aesthetic-score) keys read by :mod:`sdxl_adm`.

Before sampling, as ComfyUI does: percentages and masks are resolved to the latent
size; every area entry gets an opposite entry (from the other side's text) over the
same area, so the guidance compares like with like; and a positive ControlNet
marked ``control_apply_to_uncond`` is given to the negative entries when none of
them has one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import SamplingError
from .models import DiffusionModel
from .sdxl_adm import AdmLayout, added_conditions, layout_of

#: How many latent pixels an area's inner edges fade over (ComfyUI's "fuzz").
AREA_FEATHER = 8
#: Smallest area (latent pixels) a mask's bounds are widened to.
MIN_BOUNDS = 8


@dataclass
class CondRow:
    """One conditioning entry ready for the UNet."""

    context: Any                    # [1, T, D] on the compute device
    added: dict[str, Any] | None    # SDXL: text_embeds [1, P], time_ids [1, 6]
    positive: bool
    strength: float = 1.0
    area: tuple[int, int, int, int] | None = None   # (h, w, y, x) latent pixels
    mask: Any = None                # [1 | B, h, w] over the whole latent, × mask_strength
    t_max: float = math.inf         # active while t_min <= t <= t_max (training timesteps)
    t_min: float = -math.inf
    control: Any = None             # diffusion.controlnet.ControlApplication
    meta: dict = field(default_factory=dict, repr=False)
    class_labels: Any = None        # unCLIP: the adm vector [1, W] (diffusion.unclip)

    def active_at(self, t: float) -> bool:
        return self.t_min <= t <= self.t_max

    def control_chain(self) -> list:
        return [] if self.control is None else self.control.chain()

    def box(self, full: tuple[int, int]) -> tuple[int, int, int, int]:
        """(h, w, y, x) this row predicts over, clipped to the latent."""
        if self.area is None:
            return (int(full[0]), int(full[1]), 0, 0)
        h, w, y, x = self.area
        return (min(h, full[0] - y), min(w, full[1] - x), y, x)

    def weight(self, box: tuple[int, int, int, int], full: tuple[int, int], batch: int):
        """``[1 | B, 1, h, w]``: how much this row's prediction counts at each pixel of ``box``."""
        import torch

        h, w, y, x = box
        if self.mask is not None:
            mask = self.mask[:, y:y + h, x:x + w]
            if mask.shape[0] not in (1, batch):
                mask = mask.repeat(-(-batch // mask.shape[0]), 1, 1)[:batch]
            return mask.unsqueeze(1).float() * self.strength
        mult = torch.full((1, 1, h, w), float(self.strength))
        if self.area is None:
            return mult
        for dim, (size, offset, whole) in enumerate(((h, y, full[0]), (w, x, full[1]))):
            ramp = min(AREA_FEATHER, size // 4)
            for i in range(ramp):
                fade = (i + 1) / ramp
                if offset != 0:
                    mult.narrow(2 + dim, i, 1).mul_(fade)
                if offset + size < whole:
                    mult.narrow(2 + dim, size - 1 - i, 1).mul_(fade)
        return mult


# -- resolving ---------------------------------------------------------------------------


def _percent_timestep(percent: float) -> float:
    return (1.0 - percent) * 999.0


def _resolve_area(meta: dict, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    area = meta.get("area")
    if area is None:
        return None
    if len(area) == 5 and area[0] == "percentage":
        _, h, w, y, x = area
        area = (max(1, round(h * size[0])), max(1, round(w * size[1])), round(y * size[0]), round(x * size[1]))
    if len(area) != 4:
        raise SamplingError(f"conditioning area must be (height, width, y, x), got {area!r}")
    h, w, y, x = (int(v) for v in area)
    if h < 1 or w < 1 or y < 0 or x < 0:
        raise SamplingError(f"conditioning area {h}×{w} at ({x}, {y}) (latent pixels) is empty or negative")
    if y >= size[0] or x >= size[1]:
        raise SamplingError(f"conditioning area at ({x * 8}, {y * 8}) px lies outside the "
                            f"{size[1] * 8}×{size[0] * 8} image")
    return (h, w, y, x)


def _resolve_mask(meta: dict, size: tuple[int, int]):
    """Mask resized (bilinear) to the latent; and the area of its bounds when asked."""
    import torch
    import torch.nn.functional as F

    mask = meta.get("mask")
    if mask is None:
        return None, None
    mask = torch.as_tensor(mask).float().cpu()
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.ndim != 3:
        raise SamplingError(f"conditioning mask must be [batch, height, width], got shape {list(mask.shape)}")
    if tuple(mask.shape[1:]) != size:
        mask = F.interpolate(mask.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
    area = None
    if meta.get("set_area_to_bounds", False):
        bounds = mask.abs().amax(dim=0)
        ys, xs = torch.nonzero(bounds > 0, as_tuple=True)
        if len(ys) == 0:  # an all-zero mask contributes nothing: keep its area minimal
            area = (MIN_BOUNDS, MIN_BOUNDS, 0, 0)
        else:
            y0, y1, x0, x1 = int(ys.min()), int(ys.max()), int(xs.min()), int(xs.max())
            area = (max(MIN_BOUNDS, y1 - y0 + 1), max(MIN_BOUNDS, x1 - x0 + 1), y0, x0)
    return mask * float(meta.get("mask_strength", 1.0)), area


#: Text-context widths of the full-size text encoders, to say where a mismatched conditioning came from.
_CONTEXT_SOURCES = {768: "an SD1.x CLIP-L", 1024: "an SD2.x OpenCLIP ViT-H",
                    1280: "an SDXL refiner's OpenCLIP bigG", 2048: "an SDXL base's CLIP-L + bigG"}


def _model_name(model: DiffusionModel, layout: AdmLayout | None) -> str:
    return layout.name if layout is not None else model.family


def _width_mismatch(model: DiffusionModel, layout: AdmLayout | None, given: int, width: int) -> SamplingError:
    source = _CONTEXT_SOURCES.get(given)
    origin = f" (as from {source})" if source is not None and _CONTEXT_SOURCES.get(width) != source else ""
    return SamplingError(
        f"conditioning is {given} wide{origin} but this {_model_name(model, layout)} model expects {width}: "
        "encode the prompt with the CLIP of the same checkpoint"
        + (" (SDXL base and refiner each need their own)" if layout is not None else ""))


@dataclass
class _Entry:
    cond: Any
    meta: dict
    positive: bool
    area: tuple[int, int, int, int] | None = None
    mask: Any = None


def _contains(outer: tuple | None, inner: tuple) -> bool:
    if outer is None:
        return True
    h, w, y, x = inner
    oh, ow, oy, ox = outer
    return y >= oy and y + h <= oy + oh and x >= ox and x + w <= ox + ow


def _add_opposite_areas(entries: list[_Entry]) -> None:
    """Each area entry gets an entry of the other side over the same area, taking the text
    of that side's smallest entry containing it (ComfyUI's create_cond_with_same_area_if_none)."""
    for entry in list(entries):
        if entry.area is None:
            continue
        others = [e for e in entries if e.positive != entry.positive and _contains(e.area, entry.area)]
        if not others:
            continue
        smallest = min(others, key=lambda e: math.inf if e.area is None else e.area[0] * e.area[1])
        if smallest.area == entry.area:
            continue
        meta = dict(entry.meta)
        for key in ("pooled_output",):
            if key in smallest.meta:
                meta[key] = smallest.meta[key]
        entries.append(_Entry(smallest.cond, meta, smallest.positive, entry.area, entry.mask))


def _control_to_uncond(entries: list[_Entry]) -> None:
    """A positive ControlNet marked ``control_apply_to_uncond`` also guides the negative
    entries (whole-image ones), when none of them has its own (ComfyUI's rule)."""
    negatives = [e for e in entries if not e.positive and e.area is None]
    if any(e.meta.get("control") is not None for e in negatives) or not negatives:
        return
    controls = [e.meta["control"] for e in entries
                if e.positive and e.area is None and e.meta.get("control") is not None
                and e.meta.get("control_apply_to_uncond", False)]
    for i, control in enumerate(controls):
        target = negatives[i % len(negatives)]
        if target.meta.get("control") is None:
            target.meta = {**target.meta, "control": control}
        else:
            entries.append(_Entry(target.cond, {**target.meta, "control": control}, False, None, target.mask))


def resolve_rows(model: DiffusionModel, positive: Sequence, negative: Sequence, use_negative: bool,
                 size: tuple[int, int] | None, device, dtype, seed: int | None = None) -> list[CondRow]:
    """The rows of ``positive`` (and ``negative`` with CFG) for a latent of ``size`` (h, w);
    ``seed`` (the sampler's) draws unCLIP's noise augmentation."""
    from .unclip import class_labels_for

    if not positive:
        raise SamplingError("positive conditioning is empty")
    if use_negative and not negative:
        raise SamplingError("negative conditioning is empty")
    width = int(model.unet.config.cross_attention_dim)
    layout = layout_of(model.unet) if model.family == "sdxl" else None
    entries: list[_Entry] = []
    for sign, conds in ((True, positive), (False, negative if use_negative else ())):
        for pair in conds:
            if not isinstance(pair, (list, tuple)) or len(pair) != 2 or not isinstance(pair[1], dict):
                raise SamplingError("conditioning must be a list of [tensor, dict] pairs")
            cond, meta = pair
            if cond.ndim != 3:
                raise SamplingError(f"conditioning tensor must be [batch, tokens, width], got {list(cond.shape)}")
            if cond.shape[-1] != width:
                raise _width_mismatch(model, layout, int(cond.shape[-1]), width)
            area, mask = None, None
            if size is not None:
                mask, bounds = _resolve_mask(meta, size)
                area = bounds or _resolve_area(meta, size)
            entries.append(_Entry(cond, dict(meta), sign, area, mask))
    if use_negative:
        _add_opposite_areas(entries)
        _control_to_uncond(entries)
    length = math.lcm(*(int(e.cond.shape[1]) for e in entries))
    rows = []
    for e in entries:
        context = e.cond[:1].float()
        context = context.repeat(1, length // context.shape[1], 1)  # attention over k repeats = over one
        added = None
        if layout is not None:
            embeds, ids = added_conditions(layout, e.meta, e.positive, size)
            added = {"text_embeds": embeds.to(device, dtype), "time_ids": ids.to(device, dtype)}
        start, end = float(e.meta.get("start_percent", 0.0)), float(e.meta.get("end_percent", 1.0))
        labels = class_labels_for(model, e.meta, seed)
        rows.append(CondRow(
            context=context.to(device, dtype), added=added, positive=e.positive,
            strength=float(e.meta.get("strength", 1.0)), area=e.area,
            mask=None if e.mask is None else e.mask.to(device),
            t_max=_percent_timestep(start) if start > 0 else math.inf,
            t_min=_percent_timestep(end) if end < 1 else -math.inf,
            control=e.meta.get("control"), meta=e.meta,
            class_labels=None if labels is None else labels.to(device, dtype)))
    return rows
