"""Sampling a flow-matching transformer (FLUX.1) as ComfyUI does, σ for σ.

The loop is the KSampler's (:func:`diffusion.k_steps.run_steps` with k-diffusion's step
rules on the model's σ); what differs for a flow ("CONST") model is ComfyUI's
model_sampling:

* LATENT samples are raw VAE latents; the model works on ``process_in`` of them
  (``(z − 0.1159)·0.3611`` for Flux) and the result goes back through ``process_out``;
* noise enters as ``σ₀·noise + (1 − σ₀)·latent`` (an all-zero latent is not shifted, as in
  ComfyUI) and a run that stops above σ 0 is divided
  by ``1 − σ_last`` (ComfyUI's noise_scaling / inverse_noise_scaling), so a KSamplerAdvanced
  hand-over with leftover noise continues where it stopped;
* the transformer predicts the velocity ``v`` and the clean latent is ``x − σ·v``; CFG mixes
  the predictions as ComfyUI's cfg_function does (the same mix in v or in x0).

The transformer sees the latent as 2×2 patches packed into a sequence (``[B, h/2·w/2, 64]``),
with position ids (0, row, column) per patch and zeros for the text tokens, the T5 features
as context, CLIP-L's pooled output, the timestep, and for guidance-distilled models (dev)
the conditioning's ``guidance`` (FluxGuidance, default 3.5).  Odd latent sizes are padded
circularly to the patch grid and cropped back, as ComfyUI's pad_to_patch_size does.

FLUX.1 Fill (``img_in`` 384 wide) also sees, per conditioning entry, the masked image's
latent and the mask folded 8×8 (:func:`fill_concat`, from InpaintModelConditioning's
``concat_latent_image`` / ``concat_mask``).  A latent ``noise_mask`` keeps the unmasked part
at the input, re-noised to each σ as a flow model noises (ComfyUI's KSamplerX0Inpaint).

``euler_ancestral`` and ``lcm`` take ComfyUI's rectified-flow forms (its
sample_euler_ancestral_RF; lcm re-noises with ``σ·noise + (1 − σ)·x0``).  The other
ancestral and SDE samplers are refused for flow models: ComfyUI has flow variants of them
Loom does not have yet, and the VE rules would be wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from .errors import SamplingError
from .flux_model import FlowModel
from .k_steps import noise_source, run_steps, step_rule
from .noise import prepare_noise

#: Step rules that are the same for flow models in ComfyUI (deterministic, written in σ and x0),
#: and the two ComfyUI switches to rectified-flow forms for CONST models (:data:`FLOW_RULES`).
FLOW_SAMPLERS = ("euler", "euler_ancestral", "heun", "dpm_2", "lms", "dpmpp_2m", "lcm", "ipndm", "ddim", "uni_pc",
                 "uni_pc_bh2")
#: ComfyUI's model_base.Flux default when a conditioning carries no guidance.
DEFAULT_GUIDANCE = 3.5


def check_flow_sampler(name: str) -> None:
    if name not in FLOW_SAMPLERS:
        raise SamplingError(f"sampler {name!r} is not available for flow-matching models (FLUX.1) in Loom; "
                            f"choose one of {', '.join(FLOW_SAMPLERS)}")


class EulerAncestralRF:
    """ComfyUI's sample_euler_ancestral_RF step (eta 1, s_noise 1): step down to
    σ_down = σ_next·(1 + (σ_next/σ − 1)·eta) along the flow, scale to σ_next's signal level and
    add fresh noise for the rest of σ_next's variance."""

    def __init__(self, eta: float = 1.0, s_noise: float = 1.0):
        self.eta, self.s_noise = eta, s_noise

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        if s_next == 0:
            return denoised, denoised
        sigma_down = s_next * (1 + (s_next / s - 1) * self.eta)
        alpha_next, alpha_down = 1 - s_next, 1 - sigma_down
        renoise = (s_next ** 2 - sigma_down ** 2 * alpha_next ** 2 / alpha_down ** 2) ** 0.5
        ratio = sigma_down / s
        x = ratio * x + (1 - ratio) * denoised
        if self.eta > 0:
            x = (alpha_next / alpha_down) * x + noise(s, s_next) * self.s_noise * renoise
        return x, denoised


class LcmRF:
    """ComfyUI's lcm step on a flow model: predict x0, re-noise it to σ_next as a flow model
    mixes noise in (``σ·noise + (1 − σ)·x0``)."""

    def __call__(self, D, x, s, s_next, noise):
        denoised = D(x, s)
        if s_next == 0:
            return denoised, denoised
        return noise(s, s_next) * s_next + denoised * (1 - s_next), denoised


FLOW_RULES = {"euler_ancestral": EulerAncestralRF(), "lcm": LcmRF()}


# -- packing ------------------------------------------------------------------------------------

def pack(x):
    """[B, C, H, W] (H, W even) → [B, H/2·W/2, 4C], 2×2 patches row-major, (c, ph, pw) inside."""
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(x, h: int, w: int):
    """The inverse of :func:`pack` for a [B, H/2·W/2, 4C] sequence."""
    b, _, d = x.shape
    c = d // 4
    return x.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c, h, w)


def image_ids(h2: int, w2: int, device=None, dtype=None):
    """Position ids (0, row, column) of each packed patch."""
    import torch

    ids = torch.zeros(h2, w2, 3, device=device, dtype=dtype)
    ids[..., 1] = torch.arange(h2, device=device, dtype=dtype)[:, None]
    ids[..., 2] = torch.arange(w2, device=device, dtype=dtype)[None, :]
    return ids.reshape(h2 * w2, 3)


# -- conditioning -------------------------------------------------------------------------------

@dataclass
class FlowCond:
    context: Any        # [1, T, D] T5 features
    pooled: Any         # [1, P] CLIP-L pooled
    guidance: float
    strength: float
    sigma_start: float = float("inf")
    sigma_end: float = -1.0
    meta: dict | None = None
    concat: Any = None  # FLUX.1 Fill: [B, 80, h, w] masked-image latent + 8×8 mask, beside x

    def active_at(self, sigma: float) -> bool:
        return self.sigma_end <= sigma <= self.sigma_start


_UNSUPPORTED = ("area", "mask", "control", "gligen")


_FAMILY = {"flux": ("FLUX.1", "DualCLIPLoader type flux (clip_l + t5xxl)", "T5-XXL", "CLIP-L"),
           "sd3": ("SD3", "TripleCLIPLoader or DualCLIPLoader type sd3", "CLIP-L/G + T5-XXL", "CLIP-L + CLIP-G")}


def _context_for(model: FlowModel, context, which: str):
    """The text features at the model's context width.  Features wider than the model takes
    are accepted when the extra columns are zeros: ComfyUI pads SD3's CLIP-only features to
    4096, and a zero column contributes nothing to the context projection."""
    import torch

    name, loader, text, _ = _FAMILY.get(model.family, _FAMILY["flux"])
    width = int(model.unet.config.joint_attention_dim)
    context = torch.as_tensor(context)
    if context.shape[-1] > width and not bool(context[..., width:].any()):
        context = context[..., :width]
    if context.shape[-1] != width:
        raise SamplingError(f"{which} has {context.shape[-1]}-wide text features; this {name} model takes "
                            f"{width} ({text}) — encode with {loader}")
    return context


def flow_conds(model: FlowModel, conditioning: Sequence, which: str) -> list[FlowCond]:
    import torch

    if not isinstance(conditioning, (list, tuple)) or not conditioning:
        raise SamplingError(f"{which} must be a non-empty CONDITIONING")
    name, loader, _, pooled_text = _FAMILY.get(model.family, _FAMILY["flux"])
    table = model.sigma_table()
    rows = []
    for i, entry in enumerate(conditioning):
        try:
            context, meta = entry[0], dict(entry[1])
        except (TypeError, IndexError, KeyError):
            raise SamplingError(f"{which} entry {i} is not a [tensor, dict] pair") from None
        used = [k for k in _UNSUPPORTED if meta.get(k) is not None]
        if used:
            raise SamplingError(f"{which}: {', '.join(used)} conditioning is not supported for {name} models in Loom yet")
        pooled = meta.get("pooled_output")
        if pooled is None:
            raise SamplingError(f"{which} has no pooled {pooled_text} output: {name} needs a prompt encoded with "
                                f"its text encoders ({loader})")
        context = _context_for(model, context, which)
        if pooled.shape[-1] != model.unet.config.pooled_projection_dim:
            raise SamplingError(f"{which} has a {pooled.shape[-1]}-wide pooled output; this {name} model takes "
                                f"{model.unet.config.pooled_projection_dim} ({pooled_text})")
        start = table.percent_to_sigma(float(meta.get("start_percent", 0.0)))
        end = table.percent_to_sigma(float(meta.get("end_percent", 1.0)))
        rows.append(FlowCond(context, torch.as_tensor(pooled).reshape(1, -1),
                             float(meta.get("guidance", DEFAULT_GUIDANCE)), float(meta.get("strength", 1.0)),
                             start if "start_percent" in meta else float("inf"),
                             end if "end_percent" in meta else -1.0, meta))
    return rows


def _fit(t, batch: int):
    return t if t.shape[0] == batch else t.repeat(-(-batch // t.shape[0]), 1, 1, 1)[:batch]


def fill_concat(model: FlowModel, meta: dict, shape, denoise_mask=None):
    """What FLUX.1 Fill sees beside the latent (ComfyUI's Flux concat_cond): the masked image's
    latent (``concat_latent_image``, raw, through process_in; zeros when absent) and the mask
    (``concat_mask``, else the latent's noise mask, else all ones) averaged over channels, taken
    to pixel size and folded 8×8 into 64 channels.  The Canny/Depth models (twice the latent's
    channels) see the image latent alone."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = shape
    image = meta.get("concat_latent_image")
    image = torch.zeros(shape) if image is None else torch.as_tensor(image).float().cpu()
    if image.ndim != 4 or image.shape[1] != c:
        raise SamplingError(f"concat_latent_image must be a [batch, {c}, height, width] latent, "
                            f"got shape {list(image.shape)}")
    if tuple(image.shape[-2:]) != (h, w):
        image = F.interpolate(image, size=(h, w), mode="bilinear")
    image = model.latent_format.process_in(_fit(image, b))
    if model.unet.config.in_channels // 4 <= 2 * c:  # Canny/Depth control models: the image latent only
        return image
    mask = meta.get("concat_mask", denoise_mask)
    mask = torch.ones(b, 1, h, w) if mask is None else torch.as_tensor(mask).float().cpu()
    if mask.ndim == 3:
        mask = mask[:, None]
    if mask.ndim != 4:
        raise SamplingError(f"concat_mask must be [batch, height, width], got shape {list(mask.shape)}")
    mask = F.interpolate(mask.mean(dim=1, keepdim=True), size=(h * 8, w * 8), mode="bilinear")
    mask = mask.view(mask.shape[0], h, 8, w, 8).permute(0, 2, 4, 1, 3).reshape(mask.shape[0], 64, h, w)
    return torch.cat([image, _fit(mask, b)], dim=1)


class FlowDenoiser:
    """D(x, σ): the guided clean-latent prediction of a flow transformer (ComfyUI's CFGGuider)."""

    def __init__(self, model: FlowModel, positive, negative, cfg: float):
        import torch

        self.model = model
        from .flux_offload import place_for_sampling

        self.transformer = place_for_sampling(model)  # whole, or blocks streamed when VRAM is short
        self.device = model.manager.device
        self.dtype = model.compute_dtype or torch.float32
        self.table = model.sigma_table()
        self.cfg = float(cfg)
        self.positive = flow_conds(model, positive, "positive")
        self.negative = flow_conds(model, negative, "negative") if self.cfg != 1.0 and negative is not None else None
        self.mask = self.original = self.noise = None
        self.fill = model.family == "flux" and model.unet.config.in_channels > 4 * model.latent_format.channels
        self._call = self._call_sd3 if model.family == "sd3" else self._call_flux

    def prepare(self, shape, denoise_mask=None) -> None:
        """Per-row Fill inputs for a latent of ``shape`` (FLUX.1 Fill only)."""
        if self.fill:
            for row in self.positive + (self.negative or []):
                row.concat = fill_concat(self.model, row.meta or {}, shape, denoise_mask)

    def inpaint(self, mask, original, noise) -> None:
        """Keep the unmasked part at ``original`` (ComfyUI's KSamplerX0Inpaint, flow noising)."""
        self.mask, self.original, self.noise = mask, original, noise

    def _mix(self, rows: list[FlowCond], velocities: dict, x):
        """Strength-weighted mean of the active rows' velocities (ComfyUI's cond averaging)."""
        import torch

        total, weight = None, 0.0
        for row in rows:
            if id(row) in velocities:
                v = velocities[id(row)] * row.strength
                total = v if total is None else total + v
                weight += row.strength
        return torch.zeros_like(x) if total is None else total / max(weight, 1e-37)

    def _velocities(self, rows: list[FlowCond], x, sigma: float) -> dict:
        """id(row) → velocity for every row active at σ.  Rows whose texts have the same number
        of tokens run as one batch (as ComfyUI batches cond and uncond): one transformer call
        per step instead of one per prompt."""
        groups: dict[tuple, list[FlowCond]] = {}
        for row in rows:
            if row.active_at(sigma):
                groups.setdefault((tuple(row.context.shape[1:]), row.concat is None), []).append(row)
        out = {}
        for group in groups.values():
            for row, v in zip(group, self._predict(group, x, sigma)):
                out[id(row)] = v
        return out

    def _predict(self, rows: list[FlowCond], x, sigma: float):
        """The transformer's velocity for ``x`` under each row, in one batch; ``x`` is padded
        circularly to the 2×2 patch grid and cropped back (ComfyUI's pad_to_patch_size)."""
        import torch
        import torch.nn.functional as F

        b, _, h, w = x.shape
        ph, pw = h % 2, w % 2
        xin = torch.cat([x if r.concat is None else torch.cat([x, r.concat.to(x)], dim=1) for r in rows])
        xin = F.pad(xin, (0, pw, 0, ph), mode="circular") if (ph or pw) else xin
        dt, dev = self.dtype, self.device
        context = torch.cat([r.context.to(dev, dt).expand(b, -1, -1) for r in rows])
        pooled = torch.cat([r.pooled.to(dev, dt).expand(b, -1) for r in rows])
        guidance = torch.tensor([r.guidance for r in rows for _ in range(b)], device=dev, dtype=dt)
        t = torch.full((b * len(rows),), self.table.timestep(sigma), device=dev, dtype=dt)
        with torch.inference_mode():
            out = self._call(xin.to(dev, dt), context, pooled, t, guidance)
        return out.float()[:, :, :h, :w].to(x.device).chunk(len(rows))

    def _call_flux(self, x, context, pooled, t, guidance):
        """FLUX.1: the latent as packed 2×2 patches with (0, row, column) position ids."""
        import torch

        _, _, hp, wp = x.shape
        kwargs = {"guidance": guidance} if self.model.guidance_embed else {}
        out = self.transformer(hidden_states=pack(x), encoder_hidden_states=context, pooled_projections=pooled,
                               timestep=t, img_ids=image_ids(hp // 2, wp // 2, x.device, x.dtype),
                               txt_ids=torch.zeros(context.shape[1], 3, device=x.device, dtype=x.dtype),
                               return_dict=False, **kwargs)[0]
        return unpack(out, hp, wp)

    def _call_sd3(self, x, context, pooled, t, guidance):
        """SD3: the MMDiT patches the latent itself (learned position table, centre-cropped)."""
        return self.transformer(hidden_states=x, encoder_hidden_states=context, pooled_projections=pooled,
                                timestep=t, return_dict=False)[0]

    def __call__(self, x, sigma: float):
        if self.mask is not None:
            keep = self.noise * sigma + self.original * (1.0 - sigma)
            x = x * self.mask + keep * (1 - self.mask)
        velocities = self._velocities(self.positive + (self.negative or []), x, sigma)
        v = self._mix(self.positive, velocities, x)
        if self.negative is not None:
            uncond = self._mix(self.negative, velocities, x)
            v = uncond + self.cfg * (v - uncond)
        out = x - v * sigma
        return out if self.mask is None else out * self.mask + self.original * (1 - self.mask)


def run_flow_sampler(model: FlowModel, name: str, sigmas: list[float], *, seed: int, add_noise: bool, cfg: float,
                     positive: Sequence, negative: Sequence, latent: dict, callback=None) -> tuple[dict, dict]:
    """The KSampler / SamplerCustom loop for a flow model; returns (LATENT, denoised LATENT),
    both raw VAE latents."""
    import torch

    from .inpaint import latent_mask

    check_flow_sampler(name)
    samples = latent["samples"].float().cpu()
    out = dict(latent)
    if len(sigmas) == 0:
        out["samples"] = samples
        return out, dict(out)
    fmt = model.latent_format
    start = fmt.sampler_input(samples)  # an empty latent stays 0, as in ComfyUI
    noise = prepare_noise(samples, seed, latent.get("batch_index")) if add_noise else torch.zeros_like(samples)
    mask = None if latent.get("noise_mask") is None else latent_mask(latent["noise_mask"], samples.shape)
    D = FlowDenoiser(model, positive, negative, cfg)
    D.prepare(tuple(samples.shape), mask)
    if mask is not None:
        D.inpaint(mask.to(D.device), start.to(D.device), noise.to(D.device))
    s0 = float(sigmas[0])
    x = (noise * s0 + start * (1.0 - s0)).to(D.device)
    rule = FLOW_RULES.get(name) or step_rule(name, sigmas)
    step_noise = noise_source(name, x, sigmas, seed)
    with torch.inference_mode():
        x, denoised = run_steps(rule, D, x, sigmas, step_noise, callback)
    last = float(sigmas[-1])
    if mask is not None and last == 0.0:  # the unmasked part exactly as it came in
        x = x * D.mask + D.original * (1 - D.mask)
    if last != 0.0:
        x = x / (1.0 - last)
    out["samples"] = fmt.process_out(x.float().cpu())
    denoised_out = dict(latent)
    denoised_out["samples"] = fmt.process_out(denoised.float().cpu())
    return out, denoised_out
