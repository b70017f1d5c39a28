"""SD3 / SD3.5 LoRA files in Stability's MMDiT layer names, renamed to diffusers' SD3 transformer.

* kohya / sd-scripts: ``lora_unet_joint_blocks_0_x_block_attn_qkv.lora_down.weight`` (MMDiT's layer
  names flattened with underscores), ``.alpha``; text-encoder layers (``lora_te1_`` …) are left to
  the general reader;
* MMDiT names with dots, as ComfyUI saves them:
  ``diffusion_model.joint_blocks.0.x_block.attn.qkv.lora_A.weight`` (or ``lora_down``/``lora_up``);
* diffusers / PEFT (``transformer.transformer_blocks.0.attn.to_q.lora_A.weight``) needs no renaming.

MMDiT fuses q, k and v (``attn.qkv``); a low-rank change ``up @ down`` of a fused layer splits
exactly: each of the three keeps ``down`` (and alpha) and takes its third of ``up``'s rows.  The
final layer's modulation, and the last block's context modulation (it has only shift and scale),
are (shift, scale) in MMDiT and (scale, shift) in diffusers: their ``up`` rows are swapped.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from .flux_lora import group_by_layer, kohya_parts

_BLOCK = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
    "x_block.attn.proj": ("attn.to_out.0",), "context_block.attn.proj": ("attn.to_add_out",),
    "x_block.attn2.proj": ("attn2.to_out.0",),
    "x_block.mlp.fc1": ("ff.net.0.proj",), "x_block.mlp.fc2": ("ff.net.2",),
    "context_block.mlp.fc1": ("ff_context.net.0.proj",), "context_block.mlp.fc2": ("ff_context.net.2",),
    "x_block.adaLN_modulation.1": ("norm1.linear",), "context_block.adaLN_modulation.1": ("norm1_context.linear",),
}
_TOP = {
    "context_embedder": "context_embedder",
    "t_embedder.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "y_embedder.mlp.0": "time_text_embed.text_embedder.linear_1",
    "y_embedder.mlp.2": "time_text_embed.text_embedder.linear_2",
    "final_layer.linear": "proj_out", "final_layer.adaLN_modulation.1": "norm_out.linear",
}
_FLAT = {name.replace(".", "_"): name for name in (*_BLOCK, *_TOP)}


def _mmdit_layer(base: str) -> str | None:
    """The MMDiT layer (``joint_blocks.0.x_block.attn.qkv``) a LoRA key's base names, or None."""
    base = base.removeprefix("model.diffusion_model.").removeprefix("diffusion_model.")
    if base.startswith("lora_unet_"):
        flat = base[len("lora_unet_"):]
        m = re.fullmatch(r"joint_blocks_(\d+)_(.+)", flat)
        if m:
            inner = _FLAT.get(m.group(2))
            return None if inner is None or inner not in _BLOCK else f"joint_blocks.{m.group(1)}.{inner}"
        inner = _FLAT.get(flat)
        return inner if inner in _TOP else None
    m = re.fullmatch(r"joint_blocks\.(\d+)\.(.+)", base)
    if m:
        return base if m.group(2) in _BLOCK else None
    return base if base in _TOP else None


def _targets(layer: str) -> tuple[str, tuple[str, ...]]:
    if layer.startswith("joint_blocks."):
        _, index, name = layer.split(".", 2)
        return f"transformer_blocks.{index}.", _BLOCK[name]
    return "", (_TOP[layer],)


def to_diffusers_names(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with its MMDiT layers renamed (and q, k, v split) to the diffusers
    SD3Transformer2DModel's; a LoRA that is not MMDiT-named comes back unchanged."""
    import torch

    from .flux_files import swap_halves

    grouped = group_by_layer(state, _mmdit_layer, "SD3")
    if grouped is None:
        return dict(state)
    layers, out = grouped
    for layer, parts in layers.items():
        up, down = parts["up"], parts["down"]
        if layer.endswith("adaLN_modulation.1") and up.shape[0] == 2 * down.shape[1]:
            up = swap_halves(up)  # (shift, scale) only: the final layer and the last block's context
        prefix, names = _targets(layer)
        out.update(kohya_parts(prefix, names, parts, torch.chunk(up, len(names), dim=0) if len(names) > 1 else (up,)))
    return out
