"""ControlNet: loading (original single-file layout or diffusers folder), the control
entries carried in CONDITIONING, and the residuals the UNet adds.

Single files hold ``control_model.*`` (or unprefixed) keys: the UNet encoder
(``input_blocks``, ``middle_block``, ``time_embed``), ``input_hint_block``,
``zero_convs`` and ``middle_block_out``.  Every size is read from the tensor
shapes; diffusers' ``convert_controlnet_checkpoint`` renames the keys and the
weights are assigned into a ``ControlNetModel`` built on the meta device.

As in ComfyUI, ControlNetApply(Advanced) put a :class:`ControlApplication` under
``cond_dict["control"]``; applying another chains it (``previous``), and the
sampler sums the residuals of the whole chain (:meth:`ControlApplication.residuals`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

_PREFIX = "control_model."


@dataclass(frozen=True, eq=False)
class ControlNet:
    """CONTROL_NET: a loaded diffusers ``ControlNetModel`` and where it came from."""

    model: Any
    source: str = ""

    @property
    def cross_attention_dim(self) -> int:
        return int(self.model.config.cross_attention_dim)


# -- loading ------------------------------------------------------------------------------


def _indices(keys, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in keys if (m := pattern.match(k))})


def controlnet_config(shapes: dict[str, tuple[int, ...]], name: str) -> dict[str, Any]:
    """ControlNetModel config from the shapes of unprefixed original-layout keys."""
    try:
        conv_in = shapes["input_blocks.0.0.weight"]
        in_channels = int(conv_in[1])
        blocks = _indices(shapes, "input_blocks.")
        downsamplers = [i for i in blocks if f"input_blocks.{i}.0.op.weight" in shapes]
        per_level = (downsamplers[0] if downsamplers else len(blocks)) - 1
        levels = len(downsamplers) + 1
        widths, types, depth = [], [], []
        for level in range(levels):
            first = (per_level + 1) * level + 1
            widths.append(int(shapes[f"input_blocks.{first}.0.out_layers.3.weight"][0]))
            tb = _indices(shapes, f"input_blocks.{first}.1.transformer_blocks.")
            types.append("CrossAttnDownBlock2D" if tb else "DownBlock2D")
            depth.append(len(tb) or 1)
        attn_k = next(k for k in shapes if k.endswith("attn2.to_k.weight"))
        proj_in = next(k for k in shapes if k.endswith(".proj_in.weight"))
        hint = [int(shapes[f"input_hint_block.{i}.weight"][0]) for i in (0, 4, 8, 12)]
        hint_in = int(shapes["input_hint_block.0.weight"][1])
    except (KeyError, StopIteration, IndexError) as exc:
        raise ModelLoadError(f"{name}: not a complete ControlNet (cannot find {exc})") from exc
    linear = len(shapes[proj_in]) == 2
    config: dict[str, Any] = dict(
        in_channels=in_channels, conditioning_channels=hint_in, block_out_channels=tuple(widths),
        down_block_types=tuple(types), layers_per_block=per_level,
        cross_attention_dim=int(shapes[attn_k][1]), use_linear_projection=linear,
        # SD1 uses 8 heads; SD2/SDXL 64-wide heads (tiny models still get one head).
        attention_head_dim=tuple(max(1, w // 64) for w in widths) if linear else 8,
        transformer_layers_per_block=tuple(depth), conditioning_embedding_out_channels=tuple(hint),
    )
    if "label_emb.0.0.weight" in shapes:  # SDXL: pooled text + 6 size numbers
        adm = int(shapes["label_emb.0.0.weight"][1])
        if adm != 2816:
            raise ModelLoadError(f"{name}: SDXL ControlNet with an unusual size embedding ({adm}); "
                                 "load it as a diffusers folder instead")
        config.update(addition_embed_type="text_time", addition_time_embed_dim=256,
                      projection_class_embeddings_input_dim=adm)
    return config


def _strip(state: dict[str, Any], name: str) -> dict[str, Any]:
    if any(k.startswith(_PREFIX) for k in state):
        return {k[len(_PREFIX):]: v for k, v in state.items() if k.startswith(_PREFIX)}
    if "input_hint_block.0.weight" in state:
        return dict(state)
    if any(k.startswith("controlnet_cond_embedding.") for k in state):
        raise ModelLoadError(f"{name}: a diffusers-layout ControlNet file; put it in a folder with its "
                             "config.json (a diffusers ControlNet folder) instead")
    if any(k.startswith(("model.diffusion_model.", "lora_unet_")) for k in state):
        raise ModelLoadError(f"{name} is not a ControlNet: it looks like a checkpoint or LoRA "
                             "(no control_model.* / input_hint_block weights)")
    raise ModelLoadError(f"{name} is not a ControlNet (no control_model.* / input_hint_block weights)")


def load_controlnet_file(path: str | os.PathLike, dtype: Any = None) -> ControlNet:
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    from .lora import read_weights

    path = Path(path)
    state = _strip(read_weights(path, dtype), path.name)
    if "input_hint_block.0.weight" not in state:
        raise ModelLoadError(f"{path.name}: a ControlNet without input_hint_block is not supported "
                             "(T2I adapters and control LoRAs are other formats)")
    config = controlnet_config({k: tuple(v.shape) for k, v in state.items()}, path.name)
    # diffusers' converter fills absent source keys with None: count those as missing
    converted = {k: v for k, v in convert_controlnet_checkpoint(state, config).items() if v is not None}
    with init_empty_weights():
        model = ControlNetModel.from_config(config)
    expected = set(model.state_dict())
    missing = sorted(expected - set(converted))
    if missing:
        raise ModelLoadError(f"{path.name}: ControlNet weights are incomplete: {len(missing)} tensors missing, "
                             f"e.g. {missing[:3]}")
    model.load_state_dict({k: converted[k] for k in expected}, strict=True, assign=True)
    return ControlNet(model.eval().requires_grad_(False), path.name)


def load_controlnet_folder(folder: str | os.PathLike) -> ControlNet:
    from diffusers import ControlNetModel

    from .loading import load_pretrained_folder

    folder = Path(folder)
    return ControlNet(load_pretrained_folder(ControlNetModel, folder, "diffusers ControlNet"), folder.name)


def load_controlnet(path: str | os.PathLike, dtype: Any = None) -> ControlNet:
    """A ControlNet from a single file (original layout) or a diffusers folder; with
    ``dtype``, a single file's weights are converted to it as they are read."""
    path = Path(path)
    return load_controlnet_folder(path) if path.is_dir() else load_controlnet_file(path, dtype)


# -- in CONDITIONING ----------------------------------------------------------------------


def prepare_hint(image: Any, width: int, height: int, batch: int) -> Any:
    """IMAGE ``[B, H, W, C]`` → the hint ``[batch, 3, height, width]`` in 0..1: resized
    (nearest-exact, centre crop, as ComfyUI) and repeated to the batch."""
    import torch.nn.functional as F

    hint = image[..., :3].movedim(-1, 1).float()
    if hint.shape[-2:] != (height, width):
        from .image_crop import center_crop

        hint = F.interpolate(center_crop(hint, width, height), size=(height, width), mode="nearest-exact")
    if hint.shape[0] != batch:
        reps = -(-batch // hint.shape[0])
        hint = hint.repeat(reps, 1, 1, 1)[:batch]
    return hint


def percent_to_timestep(percent: float, num_train_timesteps: int = 1000) -> float:
    """Sampling progress (0 = start, pure noise; 1 = end) as a training timestep (ComfyUI's
    ``percent_to_sigma`` measured in timesteps)."""
    return (1.0 - percent) * (num_train_timesteps - 1)


@dataclass(frozen=True, eq=False)
class ControlApplication:
    """One ControlNet applied to a conditioning: hint image, strength, active range, and the
    ControlNet applied before it on the same conditioning (chained, as in ComfyUI)."""

    control: ControlNet
    image: Any                       # IMAGE [B, H, W, C] in 0..1, as given to the node
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    previous: "ControlApplication | None" = None
    _hints: dict = field(default_factory=dict, repr=False)

    def chain(self) -> list["ControlApplication"]:
        out, node = [], self
        while node is not None:
            out.append(node)
            node = node.previous
        return out[::-1]

    def active_at(self, timestep: float) -> bool:
        """Whether this ControlNet acts at ``timestep`` (training scale, 999 = most noise)."""
        return percent_to_timestep(self.end_percent) <= float(timestep) <= percent_to_timestep(self.start_percent)

    def hint(self, width: int, height: int, batch: int, device: Any, dtype: Any) -> Any:
        key = (width, height, batch, str(device), str(dtype))
        if key not in self._hints:
            self._hints[key] = prepare_hint(self.image, width, height, batch).to(device, dtype)
        return self._hints[key]

    def residuals(self, latents: Any, timestep: Any, context: Any, added_cond_kwargs: dict | None = None):
        """Summed ``(down_residuals, mid_residual)`` of the chain for one UNet call, or None
        when no ControlNet of the chain is active at this timestep.

        ``latents`` is the UNet input ``[B, 4, h, w]`` (already scaled by the scheduler),
        ``context`` the matching ``encoder_hidden_states``; the same call diffusers'
        StableDiffusionControlNetPipeline makes, with ``conditioning_scale = strength``."""
        import torch

        t = float(torch.as_tensor(timestep).reshape(-1)[0])
        down_sum, mid_sum = None, None
        for node in self.chain():
            if node.strength == 0 or not node.active_at(t):
                continue
            model = node.control.model
            p = next(model.parameters())
            hint = node.hint(latents.shape[-1] * 8, latents.shape[-2] * 8, latents.shape[0], p.device, p.dtype)
            kwargs = {}
            if added_cond_kwargs is not None and model.config.addition_embed_type is not None:
                kwargs["added_cond_kwargs"] = added_cond_kwargs
            down, mid = model(latents.to(p.device, p.dtype), timestep, encoder_hidden_states=context.to(p.device, p.dtype),
                              controlnet_cond=hint, conditioning_scale=float(node.strength), guess_mode=False,
                              return_dict=False, **kwargs)
            if down_sum is None:
                down_sum, mid_sum = list(down), mid
            else:
                down_sum = [a + b for a, b in zip(down_sum, down)]
                mid_sum = mid_sum + mid
        return None if down_sum is None else (down_sum, mid_sum)


def apply_control(conditioning: list, control: ControlNet, image: Any, strength: float, start_percent: float,
                  end_percent: float, apply_to_uncond: bool) -> list:
    """New CONDITIONING with ``control`` chained onto each entry's ``"control"``."""
    if strength == 0:
        return conditioning
    if image is None or getattr(image, "ndim", 0) != 4:
        raise ValueError("the ControlNet image must be an IMAGE batch [B, H, W, C]")
    if not 0.0 <= start_percent <= end_percent <= 1.0:
        raise ValueError(f"start_percent ({start_percent}) must not be after end_percent ({end_percent})")
    out = []
    for cond, meta in conditioning:
        width = int(cond.shape[-1])
        if width != control.cross_attention_dim:
            raise ValueError(f"ControlNet '{control.source}' expects {control.cross_attention_dim}-wide text "
                             f"conditioning but got {width}-wide: it belongs to another model family")
        new = dict(meta)
        new["control"] = ControlApplication(control, image, float(strength), float(start_percent),
                                            float(end_percent), meta.get("control"))
        new["control_apply_to_uncond"] = apply_to_uncond
        out.append([cond, new])
    return out
