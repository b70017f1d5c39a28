"""SD3 / SD3.5 transformer files as users have them: detection from the header, and the MMDiT
(Stability's / ComfyUI's) key layout converted to diffusers' ``SD3Transformer2DModel``.

Stability ships the transformer as ``joint_blocks.N.{x_block,context_block}.…`` keys, bare in
transformer-only files and under ``model.diffusion_model.`` in all-in-one checkpoints
(``sd3.5_large.safetensors``, ``sd3_medium_incl_clips_t5xxlfp8.safetensors``).  diffusers'
``convert_sd3_transformer_checkpoint_to_diffusers`` renames them, splitting the fused qkv
projections by thirds, so it works for any width; Loom calls it and checks nothing was left
over.  Files already in diffusers' names load as they are.

What the shapes say (as ComfyUI's model detection reads them): the width from
``x_embedder.proj`` with heads of 64 (``ln_q`` gives the head width when present), the
patch size from the same kernel, the text widths from ``context_embedder`` and
``y_embedder``, the position table size from ``pos_embed``.  The variant: SD3 medium has no
q/k norms; SD3.5 large (and large turbo) has RMS q/k norms; SD3.5 medium (MMDiT-X) also has a
second self-attention (``x_block.attn2``) in its first blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ModelLoadError

COMFY_PREFIX = "model.diffusion_model."
#: MMDiT's attention heads are 64 wide (ComfyUI: depth = width // 64)
HEAD_WIDTH = 64

Shapes = Mapping[str, Sequence[int]]

_NAMES = {"sd3_medium": "SD3 medium", "sd35_large": "SD3.5 large", "sd35_medium": "SD3.5 medium"}


@dataclass(frozen=True)
class SD3Architecture:
    """What an SD3 transformer file holds."""

    variant: str        # "sd3_medium" | "sd35_large" | "sd35_medium"
    layout: str         # "mmdit" | "diffusers"
    prefix: str         # key prefix stripped before conversion
    config: dict        # SD3Transformer2DModel config

    @property
    def name(self) -> str:
        return _NAMES[self.variant]


def _count(shapes: Shapes, prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)}
    return max(found) + 1 if found else 0


def _blocks_with(shapes: Shapes, prefix: str, suffix: str) -> tuple[int, ...]:
    return tuple(sorted(int(k[len(prefix):].split(".")[0]) for k in shapes
                        if k.startswith(prefix) and k.endswith(suffix)))


def _shape(shapes: Shapes, key: str, filename: str) -> Sequence[int]:
    if key not in shapes:
        raise ModelLoadError(f"{filename}: incomplete SD3 transformer, missing {key}")
    return shapes[key]


def sd3_architecture(shapes: Shapes, filename: str = "model") -> SD3Architecture | None:
    """The SD3 architecture of a transformer file, or None when it is not one."""
    prefix = COMFY_PREFIX if COMFY_PREFIX + "joint_blocks.0.x_block.attn.qkv.weight" in shapes else ""
    if prefix + "joint_blocks.0.x_block.attn.qkv.weight" in shapes:
        layout = "mmdit"
        s = lambda k: _shape(shapes, prefix + k, filename)  # noqa: E731
        inner, in_channels, patch, _ = s("x_embedder.proj.weight")
        caption, joint = s("context_embedder.weight")
        pooled = s("y_embedder.mlp.0.weight")[1]
        positions = s("pos_embed")[1]
        out = s("final_layer.linear.weight")[0]
        layers = _count(shapes, prefix + "joint_blocks.")
        qk = prefix + "joint_blocks.0.x_block.attn.ln_q.weight"
        head = shapes[qk][0] if qk in shapes else HEAD_WIDTH
        dual = _blocks_with(shapes, prefix + "joint_blocks.", ".x_block.attn2.qkv.weight")
    elif "transformer_blocks.0.attn.add_q_proj.weight" in shapes and "pos_embed.proj.weight" in shapes:
        layout = "diffusers"
        s = lambda k: _shape(shapes, k, filename)  # noqa: E731
        inner, in_channels, patch, _ = s("pos_embed.proj.weight")
        caption, joint = s("context_embedder.weight")
        pooled = s("time_text_embed.text_embedder.linear_1.weight")[1]
        positions = s("pos_embed.pos_embed")[1]
        out = s("proj_out.weight")[0]
        layers = _count(shapes, "transformer_blocks.")
        qk = "transformer_blocks.0.attn.norm_q.weight"
        head = shapes[qk][0] if qk in shapes else HEAD_WIDTH
        dual = _blocks_with(shapes, "transformer_blocks.", ".attn2.to_q.weight")
    else:
        return None
    inner, head, patch = int(inner), int(head), int(patch)
    if inner % head:
        raise ModelLoadError(f"{filename}: SD3 transformer width {inner} is not a multiple of its {head}-wide heads")
    side = math.isqrt(int(positions))
    config = dict(sample_size=128, patch_size=patch, in_channels=int(in_channels), num_layers=layers,
                  attention_head_dim=head, num_attention_heads=inner // head, joint_attention_dim=int(joint),
                  caption_projection_dim=int(caption), pooled_projection_dim=int(pooled),
                  out_channels=int(out) // (patch * patch), pos_embed_max_size=side, dual_attention_layers=dual,
                  qk_norm="rms_norm" if qk in shapes else None)
    variant = "sd35_medium" if dual else "sd35_large" if qk in shapes else "sd3_medium"
    return SD3Architecture(variant, layout, prefix, config)


def sd3_architecture_or_none(shapes: Shapes) -> SD3Architecture | None:
    try:
        return sd3_architecture(shapes)
    except ModelLoadError:
        return None


def mmdit_to_diffusers(state: dict[str, Any], arch: SD3Architecture) -> dict[str, Any]:
    """diffusers ``SD3Transformer2DModel`` state dict from an MMDiT-layout one (consumed)."""
    if arch.layout == "diffusers":
        return state
    from diffusers.loaders.single_file_utils import convert_sd3_transformer_checkpoint_to_diffusers

    src = {k[len(arch.prefix):]: v for k, v in state.items() if k.startswith(arch.prefix)}
    state.clear()
    try:
        out = convert_sd3_transformer_checkpoint_to_diffusers(src)
    except KeyError as exc:
        raise ModelLoadError(f"incomplete SD3 transformer: missing {arch.prefix}{exc.args[0]}") from None
    if src:  # the converter pops what it used
        extra = sorted(src)
        raise ModelLoadError(f"unexpected tensors in the SD3 transformer: {len(extra)}, e.g. {extra[:3]}")
    return out
