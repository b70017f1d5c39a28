"""Classifier-free guidance over composed CONDITIONING, with ComfyUI's semantics.

Every conditioning entry predicts over its area (the whole latent by default),
weighted by ``strength`` × its mask (or, for an area without a mask, a soft ramp of
up to 8 latent pixels at inner edges).  The positive entries' predictions are
averaged by those weights, the negative entries' likewise, then combined with CFG.
Entries outside their timestep range (``start_percent``/``end_percent``) sit out;
entries that carry a ControlNet chain add its residuals to the UNet.  Entries
sharing an area run in one batched UNet call.

:mod:`diffusion.cond_rows` turns the CONDITIONING lists into resolved rows.
"""

from __future__ import annotations

from typing import Any

from .cond_rows import CondRow, resolve_rows
from .models import DiffusionModel

#: Keeps a pixel no entry covers at 0 instead of 0/0 (ComfyUI's choice, too).
_EMPTY_WEIGHT = 1e-37


class GuidedModel:
    """``f(x, t) → guided model output`` (epsilon or v, as the UNet predicts).

    ``x`` is the UNet's (scheduler-scaled) 4-channel input ``[B, 4, h, w]``, ``t`` the
    timestep on the training scale (0..999).  ``extra_channels`` ``[B, k, h, w]`` are
    concatenated to ``x`` for inpainting UNets (never shown to ControlNets).

    ``keep_uncond``: evaluate the negative prompt even at cfg 1, for samplers that step
    with the unconditional prediction (CFG++; ComfyUI disables its cfg-1 shortcut for them),
    and read it with :meth:`with_uncond`."""

    def __init__(self, model: DiffusionModel, positive, negative, cfg: float, extra_channels=None,
                 latent_shape: tuple[int, ...] | None = None, seed: int | None = None, keep_uncond: bool = False):
        self.model = model
        self.unet = model.manager.use(model.unet)
        p = next(self.unet.parameters())
        self.device, self.dtype = p.device, p.dtype
        self.cfg = float(cfg)
        #: ComfyUI's model_options (custom nodes' hooks, diffusion.comfy_shape)
        self.options = getattr(model, "model_options", None) or {}
        self.use_negative = self.cfg != 1.0 or keep_uncond or bool(self.options.get("disable_cfg1_optimization"))
        size = None if latent_shape is None else (int(latent_shape[-2]), int(latent_shape[-1]))
        self.rows: list[CondRow] = resolve_rows(model, positive, negative, self.use_negative, size,
                                                self.device, self.dtype, seed)
        for row in self.rows:
            for node in row.control_chain():
                model.manager.use(node.control.model)
        self.extra_channels = extra_channels
        #: id(row) → that conditioning entry's own inpainting channels (InpaintModelConditioning's
        #: concat_latent_image/concat_mask), set by the sampler; other rows use extra_channels
        self.row_extra: dict[int, Any] = {}
        self._plain = all(r.area is None and r.mask is None and r.control is None for r in self.rows)

    # -- one step ---------------------------------------------------------------------------
    def __call__(self, x, t):
        return self._outputs(x, t)[0]

    def with_uncond(self, x, t):
        """(guided output, the negative prompt's output) at one step."""
        guided, uncond = self._outputs(x, t)
        if uncond is None:
            raise ValueError("with_uncond needs a GuidedModel built with keep_uncond=True")
        return guided, uncond

    def _outputs(self, x, t):
        """(guided output, unconditional output or None when the negative is skipped)."""
        cond, uncond = self.parts(x, t)
        if uncond is None:
            return cond, None
        return uncond + self.cfg * (cond - uncond), uncond

    def parts(self, x, t):
        """(the positive entries' output, the negative entries' or None when skipped), before
        CFG: what a custom node's ``sampler_cfg_function`` combines instead."""
        import torch

        t_value = float(torch.as_tensor(t).reshape(-1)[0])
        active = [r for r in self.rows if r.active_at(t_value)]
        x = x.to(self.device, self.dtype)
        extra = None if self.extra_channels is None else self.extra_channels.to(x)
        with torch.inference_mode():
            if self._plain and len(active) == len(self.rows) == 1 + self.use_negative:
                # the usual one cond (+ one uncond): one call, no averaging to do
                out = self._predict(active, x, extra, t, None)
                b = x.shape[0]
                return out[:b], (out[b:] if self.use_negative else None)
            cond, uncond = self._averaged(active, x, extra, t)
        return cond, (uncond if self.use_negative else None)

    def _averaged(self, active: list[CondRow], x, extra, t):
        import torch

        full = x.shape[-2:]
        sums = {True: torch.zeros(x.shape, dtype=torch.float32, device=x.device), False: None}
        weights = {True: torch.full(x.shape, _EMPTY_WEIGHT, dtype=torch.float32, device=x.device), False: None}
        if self.use_negative:
            sums[False] = torch.zeros_like(sums[True])
            weights[False] = torch.full_like(weights[True], _EMPTY_WEIGHT)
        groups: dict[tuple, list[CondRow]] = {}
        for row in active:
            groups.setdefault(row.box(full), []).append(row)
        b = x.shape[0]
        for (h, w, y0, x0), rows in groups.items():
            region = (slice(None), slice(None), slice(y0, y0 + h), slice(x0, x0 + w))
            x_area = x[region]
            extra_area = None if extra is None else extra[region]
            out = self._predict(rows, x_area, extra_area, t, (h, w, y0, x0))
            for j, row in enumerate(rows):
                mult = row.weight((h, w, y0, x0), full, b).to(x.device)
                sums[row.positive][region] += out[j * b:(j + 1) * b] * mult
                weights[row.positive][region] += mult.expand(b, x.shape[1], h, w)
        cond = sums[True] / weights[True]
        uncond = None if sums[False] is None else sums[False] / weights[False]
        return cond, uncond

    def _predict(self, rows: list[CondRow], x, extra, t, box):
        """The UNet's output for ``rows`` on ``x`` (one batch of ``len(rows) × B``), as float32."""
        import torch

        b = x.shape[0]
        n = len(rows)
        if extra is not None and self.row_extra:
            x_in = torch.cat([torch.cat([x, self._row_extra(r, extra, box)], dim=1) for r in rows])
        else:
            x_in = x if extra is None else torch.cat([x, extra], dim=1)
            x_in = x_in.repeat(n, 1, 1, 1)
        context = torch.cat([r.context.expand(b, -1, -1) for r in rows])
        added = None
        if rows[0].added is not None:
            added = {k: torch.cat([r.added[k].expand(b, -1) for r in rows]) for k in rows[0].added}
        t_in = torch.as_tensor(t, device=self.device).float().reshape(-1)[:1].expand(n * b)
        kwargs = self._control(rows, x, t_in[:1], b)
        if any(r.meta.get("gligen") is not None for r in rows):  # GLIGEN text boxes
            from .gligen import unet_kwargs

            kwargs.update(unet_kwargs(self.unet, rows, x, b))
        if rows[0].class_labels is not None:  # unCLIP's image embedding (adm)
            kwargs["class_labels"] = torch.cat([r.class_labels.expand(b, -1) for r in rows])
        wrapper = self.options.get("model_function_wrapper")
        if wrapper is None:
            return self.unet(x_in, t_in, encoder_hidden_states=context, added_cond_kwargs=added,
                             return_dict=False, **kwargs)[0].float()

        # A custom node's UNet wrapper (ComfyUI's model_function_wrapper): it gets the
        # function to call and its arguments, and may change or split them.  Loom passes the
        # UNet's own input (scaled latent, training timestep) and expects its raw output.
        def apply_model(input_x, timestep, **c):
            return self.unet(input_x, timestep, encoder_hidden_states=c["c_crossattn"],
                             added_cond_kwargs=c.get("added_cond_kwargs"), return_dict=False,
                             **c.get("unet_kwargs", {}))[0]

        c = {"c_crossattn": context, "added_cond_kwargs": added, "unet_kwargs": kwargs,
             "transformer_options": dict(self.options.get("transformer_options", {}))}
        return wrapper(apply_model, {"input": x_in, "timestep": t_in, "c": c,
                                     "cond_or_uncond": [0 if r.positive else 1 for r in rows]}).float()

    def _row_extra(self, row: CondRow, extra, box):
        """``row``'s own inpainting channels over ``box`` (the whole latent when None), else ``extra``."""
        own = self.row_extra.get(id(row))
        if own is None:
            return extra
        if box is not None:
            h, w, y0, x0 = box
            own = own[..., y0:y0 + h, x0:x0 + w]
        return own.to(extra)

    def _control(self, rows: list[CondRow], x, t, b) -> dict[str, Any]:
        """ControlNet residuals for the batch of ``rows`` (zeros for rows without one)."""
        import torch

        if all(r.control is None for r in rows):
            return {}
        per_row: list[tuple | None] = []
        for row in rows:
            if row.control is None:
                per_row.append(None)
                continue
            added = None if row.added is None else {k: v.expand(b, -1) for k, v in row.added.items()}
            per_row.append(row.control.residuals(x, t, row.context.expand(b, -1, -1), added))
        found = next((r for r in per_row if r is not None), None)
        if found is None:  # every chain is outside its percent range at this step
            return {}
        down_ref, mid_ref = found
        downs, mids = [], []
        for res in per_row:
            if res is None:
                downs.append([torch.zeros_like(d) for d in down_ref])
                mids.append(torch.zeros_like(mid_ref))
            else:
                downs.append(list(res[0]))
                mids.append(res[1])
        down = [torch.cat([d[i] for d in downs]).to(self.dtype) for i in range(len(down_ref))]
        return {"down_block_additional_residuals": down,
                "mid_block_additional_residual": torch.cat(mids).to(self.dtype)}
