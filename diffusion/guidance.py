"""Turning CONDITIONING into one batched UNet call with classifier-free guidance."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from .errors import SamplingError
from .models import DiffusionModel

#: SDXL size conditioning defaults when a conditioning carries none (ComfyUI's).
SDXL_DEFAULT_SIZE = 768


@dataclass
class PreparedConds:
    """Conditioning rows ready for the UNet: ``context`` [n, T, D] and per-row weights."""

    context: Any
    added: dict[str, Any] | None
    strengths: list[float]
    n_positive: int


def _repeat_to(t, length: int):
    # Cross-attention over a token sequence repeated k times equals attention over the
    # original, so conds of different lengths (77·n) share one batch at their LCM.
    return t.repeat(1, length // t.shape[1], 1)


def _sdxl_added(meta: dict, width: int) -> tuple[Any, Any]:
    import torch

    pooled = meta.get("pooled_output")
    if pooled is None:
        raise SamplingError("SDXL needs a pooled text embedding: encode the prompt with this model's CLIP")
    h = meta.get("height", SDXL_DEFAULT_SIZE)
    w = meta.get("width", SDXL_DEFAULT_SIZE)
    ids = [h, w, meta.get("crop_h", 0), meta.get("crop_w", 0), meta.get("target_height", h), meta.get("target_width", w)]
    return pooled.reshape(1, -1), torch.tensor([ids], dtype=torch.float32)


def prepare(model: DiffusionModel, positive: Sequence, negative: Sequence, use_negative: bool) -> PreparedConds:
    import torch

    pairs = list(positive) + (list(negative) if use_negative else [])
    if not positive:
        raise SamplingError("positive conditioning is empty")
    if use_negative and not negative:
        raise SamplingError("negative conditioning is empty")
    width = int(model.unet.config.cross_attention_dim)
    for cond, _ in pairs:
        if cond.shape[-1] != width:
            raise SamplingError(
                f"conditioning is {cond.shape[-1]} wide but this {model.family} model expects {width}: "
                "encode the prompt with the CLIP of the same checkpoint")
    length = math.lcm(*(int(c.shape[1]) for c, _ in pairs))
    context = torch.cat([_repeat_to(c.float(), length) for c, _ in pairs])
    added = None
    if model.family == "sdxl":
        embeds, ids = zip(*(_sdxl_added(m, width) for _, m in pairs))
        added = {"text_embeds": torch.cat(embeds).float(), "time_ids": torch.cat(ids)}
    strengths = [float(m.get("strength", 1.0)) for _, m in pairs]
    return PreparedConds(context, added, strengths, len(positive))


class GuidedModel:
    """``f(x, t) → guided model output`` (epsilon or v, as the UNet predicts)."""

    def __init__(self, model: DiffusionModel, positive, negative, cfg: float, extra_channels=None):
        import torch

        self.model = model
        self.unet = model.manager.use(model.unet)
        p = next(self.unet.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.cfg = float(cfg)
        self.use_negative = self.cfg != 1.0
        conds = prepare(model, positive, negative, self.use_negative)
        self.n_pos = conds.n_positive
        self.strengths = torch.tensor(conds.strengths, dtype=torch.float32, device=self.device)
        self.context = conds.context.to(self.device, self.dtype)
        self.added = None if conds.added is None else {k: v.to(self.device, self.dtype) for k, v in conds.added.items()}
        self.extra_channels = extra_channels  # [B, k, h, w] concatenated to x (inpainting models)

    def __call__(self, x, t):
        import torch

        rows = self.context.shape[0]
        b = x.shape[0]
        x_in = x
        if self.extra_channels is not None:
            x_in = torch.cat([x, self.extra_channels.to(x)], dim=1)
        x_in = x_in.to(self.device, self.dtype).repeat(rows, 1, 1, 1)
        context = self.context.repeat_interleave(b, dim=0)
        added = None if self.added is None else {k: v.repeat_interleave(b, dim=0) for k, v in self.added.items()}
        t_in = torch.as_tensor(t, device=self.device).float().reshape(-1)[:1].expand(rows * b)
        with torch.inference_mode():
            out = self.unet(x_in, t_in, encoder_hidden_states=context, added_cond_kwargs=added,
                            return_dict=False)[0].float()
        out = out.reshape(rows, b, *out.shape[1:])
        if rows == 1 + self.use_negative:  # one cond (and one uncond): no averaging to do
            return out[0] if not self.use_negative else out[1] + self.cfg * (out[0] - out[1])
        w = self.strengths.reshape(rows, 1, 1, 1, 1)
        cond = (out[: self.n_pos] * w[: self.n_pos]).sum(0) / w[: self.n_pos].sum(0)
        if not self.use_negative:
            return cond
        uncond = (out[self.n_pos:] * w[self.n_pos:]).sum(0) / w[self.n_pos:].sum(0)
        return uncond + self.cfg * (cond - uncond)
