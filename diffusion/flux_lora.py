"""FLUX.1 LoRA files in the layouts people have, renamed to the diffusers transformer's layers.

* kohya / sd-scripts: ``lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight`` (BFL's
  layer names, flattened with underscores), ``.alpha``; text-encoder layers
  (``lora_te1_*`` for CLIP-L) are left to the general LoRA reader;
* BFL names with dots, as ComfyUI and ai-toolkit save them:
  ``diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight`` (or ``lora_down``);
* XLabs: ``double_blocks.0.processor.qkv_lora1.down.weight`` (``qkv_lora1`` image,
  ``qkv_lora2`` text, ``proj_lora1/2``; single blocks ``qkv_lora`` / ``proj_lora``);
* diffusers / PEFT (``transformer.transformer_blocks.0.attn.to_q.lora_A.weight``) needs no
  renaming: :mod:`diffusion.lora` reads it as it is.

BFL fuses layers that diffusers keeps apart (``qkv``; a single block's ``linear1`` is
q, k, v and the MLP input).  A low-rank change of a fused layer, ``up @ down``, splits
exactly: each part keeps ``down`` (and alpha, so the same alpha/rank scale) and takes its
rows of ``up``.  The final modulation's two halves are swapped as for the weights.
The output uses kohya's part names under ``transformer.<diffusers layer>``, which
:func:`diffusion.lora.parse_lora` reads.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

_DOUBLE = {
    "img_attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "txt_attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "img_attn.proj": ("attn.to_out.0",), "txt_attn.proj": ("attn.to_add_out",),
    "img_mlp.0": ("ff.net.0.proj",), "img_mlp.2": ("ff.net.2",),
    "txt_mlp.0": ("ff_context.net.0.proj",), "txt_mlp.2": ("ff_context.net.2",),
    "img_mod.lin": ("norm1.linear",), "txt_mod.lin": ("norm1_context.linear",),
}
_SINGLE = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",), "modulation.lin": ("norm.linear",),
}
_TOP = {
    "img_in": "x_embedder", "txt_in": "context_embedder",
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "final_layer.linear": "proj_out", "final_layer.adaLN_modulation.1": "norm_out.linear",
}
_XLABS = {"qkv_lora1": "img_attn.qkv", "qkv_lora2": "txt_attn.qkv", "proj_lora1": "img_attn.proj",
          "proj_lora2": "txt_attn.proj", "qkv_lora": "linear1.qkv", "proj_lora": "linear2"}

# kohya flattens the dots: each BFL layer name as it appears after the block number
_FLAT = {name.replace(".", "_"): name for name in (*_DOUBLE, *_SINGLE, *_TOP)}
_PARTS = {"lora_down.weight": "down", "lora_A.weight": "down", "down.weight": "down",
          "lora_up.weight": "up", "lora_B.weight": "up", "up.weight": "up", "alpha": "alpha"}


def _bfl_layer(base: str) -> str | None:
    """The BFL layer (``double_blocks.0.img_attn.qkv``) a LoRA key's base names, or None."""
    base = base.removeprefix("diffusion_model.").removeprefix("model.diffusion_model.").removeprefix("transformer.")
    if base.startswith("lora_unet_"):
        flat = base[len("lora_unet_"):]
        m = re.fullmatch(r"(double_blocks|single_blocks)_(\d+)_(.+)", flat)
        if m:
            inner = _FLAT.get(m.group(3))
            return None if inner is None else f"{m.group(1)}.{m.group(2)}.{inner}"
        return _FLAT.get(flat)
    m = re.fullmatch(r"(double_blocks|single_blocks)\.(\d+)\.processor\.(\w+)", base)
    if m:  # XLabs
        inner = _XLABS.get(m.group(3))
        return None if inner is None else f"{m.group(1)}.{m.group(2)}.{inner}"
    m = re.fullmatch(r"(double_blocks|single_blocks)\.(\d+)\.(.+)", base)
    if m:
        return base if m.group(3) in (_DOUBLE if m.group(1) == "double_blocks" else _SINGLE) else None
    return base if base in _TOP else None


def _split_key(key: str) -> tuple[str, str] | None:
    for suffix, part in _PARTS.items():
        if key.endswith("." + suffix):
            return key[: -len(suffix) - 1], part
    return None


def group_by_layer(state: Mapping[str, Any], layer_of, what: str):
    """(layer → its parts ``{"up", "down", "alpha"?}``, the keys of no such layer) when ``layer_of``
    names any of ``state``'s LoRA layers, else None; a layer without its up or down weight is an
    error naming it.  Shared by the FLUX.1 and SD3 renamers."""
    layers: dict[str, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for key, tensor in state.items():
        split = _split_key(key)
        layer = None if split is None else layer_of(split[0])
        if layer is None:
            rest[key] = tensor  # text-encoder layers and anything else: the general reader decides
        else:
            layers.setdefault(layer, {})[split[1]] = tensor
    if not layers:
        return None
    for layer, parts in layers.items():
        missing = [part for part in ("up", "down") if part not in parts]
        if missing:
            raise ValueError(f"{what} LoRA layer {layer!r} lacks its {missing[0]} weight")
    return layers, rest


def kohya_parts(prefix: str, names: tuple[str, ...], parts: Mapping[str, Any], ups) -> dict[str, Any]:
    """One fused layer's LoRA as kohya parts of each diffusers layer it stands for: the same
    ``down`` and alpha, each its rows of ``up``."""
    out: dict[str, Any] = {}
    for name, up in zip(names, ups):
        base = f"transformer.{prefix}{name}"
        out[base + ".lora_down.weight"] = parts["down"]
        out[base + ".lora_up.weight"] = up.contiguous()
        if "alpha" in parts:
            out[base + ".alpha"] = parts["alpha"]
    return out


def _targets(layer: str) -> tuple[str, tuple[str, ...]]:
    """(diffusers prefix, diffusers layer names) of a BFL layer; several when it is fused."""
    kind, _, rest = layer.partition(".")
    if kind in ("double_blocks", "single_blocks"):
        index, _, name = rest.partition(".")
        prefix = f"{'transformer_blocks' if kind == 'double_blocks' else 'single_transformer_blocks'}.{index}."
        if name == "linear1.qkv":  # XLabs' single-block LoRA covers q, k, v of linear1 only
            return prefix, ("attn.to_q", "attn.to_k", "attn.to_v")
        return prefix, (_DOUBLE if kind == "double_blocks" else _SINGLE)[name]
    return "", (_TOP[layer],)


def _pieces(up, names: tuple[str, ...]):
    """Rows of a fused layer's ``up`` for each part: equal thirds for q, k, v; a single
    block's linear1 is q, k, v of width d then the MLP of 4d (7d rows in all)."""
    import torch

    rows = int(up.shape[0])
    if len(names) == 4:
        d = rows // 7
        return torch.split(up, (d, d, d, 4 * d), dim=0)
    return torch.chunk(up, len(names), dim=0)


def to_diffusers_names(state: Mapping[str, Any]) -> dict[str, Any]:
    """``state`` with its Flux transformer layers renamed (and split) to the diffusers
    FluxTransformer2DModel's; a LoRA that is not a BFL-named Flux LoRA comes back unchanged."""
    from .flux_files import swap_halves

    grouped = group_by_layer(state, _bfl_layer, "Flux")
    if grouped is None:
        return dict(state)
    layers, out = grouped
    for layer, parts in layers.items():
        prefix, names = _targets(layer)
        up = parts["up"]
        if layer == "final_layer.adaLN_modulation.1":
            up = swap_halves(up)
        out.update(kohya_parts(prefix, names, parts, _pieces(up, names) if len(names) > 1 else (up,)))
    return out
