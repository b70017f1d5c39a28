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

from .flux_lora import _split_key

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


def is_sd3_lora(state: Mapping[str, Any]) -> bool:
    for key in state:
        split = _split_key(key)
        if split is not None and _mmdit_layer(split[0]) is not None:
            return True
    return False


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

    if not is_sd3_lora(state):
        return dict(state)
    layers: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {}
    for key, tensor in state.items():
        split = _split_key(key)
        layer = None if split is None else _mmdit_layer(split[0])
        if layer is None:
            out[key] = tensor
            continue
        layers.setdefault(layer, {})[split[1]] = tensor
    for layer, parts in layers.items():
        up, down = parts.get("up"), parts.get("down")
        if up is None or down is None:
            raise ValueError(f"SD3 LoRA layer {layer!r} lacks its {'up' if up is None else 'down'} weight")
        modulation = layer.endswith("adaLN_modulation.1")
        if modulation and up.shape[0] == 2 * down.shape[1]:  # (shift, scale) only: the final layer, the last block
            up = swap_halves(up)
        prefix, names = _targets(layer)
        for name, piece in zip(names, torch.chunk(up, len(names), dim=0) if len(names) > 1 else (up,)):
            base = f"transformer.{prefix}{name}"
            out[base + ".lora_down.weight"] = down
            out[base + ".lora_up.weight"] = piece.contiguous()
            if "alpha" in parts:
                out[base + ".alpha"] = parts["alpha"]
    return out
