"""FLUX.1 transformer files as users have them: detection from the header and BFL → diffusers keys.

BFL's single files (``flux1-dev.safetensors``, ``flux1-schnell``, ``flux1-fill-dev``, their
fp8 ``e4m3fn`` re-saves; ComfyUI full checkpoints add ``model.diffusion_model.``) name the
weights ``double_blocks.N.img_attn.qkv`` etc.  diffusers'
``convert_flux_transformer_checkpoint_to_diffusers`` renames them but assumes the full
3072-wide model when it splits the fused single-block projection, so Loom converts with
its own table here, reading every size from the shapes (tiny test models convert the same
way as real ones; tests check the names and shapes against diffusers' converter at full size).

The variant is read from the keys: ``guidance_in.*`` marks a guidance-distilled model
(dev), its absence schnell; ``img_in`` takes 64 packed channels (16 latent × 2×2), 384 for
Fill (latent + masked image + 8×8 mask) and 128 for the Canny/Depth control models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .errors import ModelLoadError

COMFY_PREFIX = "model.diffusion_model."
#: What real FLUX.1 uses: 3072 wide, 24 heads of 128, RoPE axes (16, 56, 56).
FULL_WIDTH = 3072

Shapes = Mapping[str, Sequence[int]]


@dataclass(frozen=True)
class FluxArchitecture:
    """What a Flux transformer file holds."""

    variant: str            # "dev" | "schnell" | "fill" | "control"
    guidance_embed: bool
    in_channels: int        # packed (×4) channels img_in takes
    layout: str             # "bfl" | "diffusers"
    prefix: str             # key prefix stripped before conversion
    config: dict            # FluxTransformer2DModel config

    @property
    def name(self) -> str:
        return {"dev": "FLUX.1 dev", "schnell": "FLUX.1 schnell", "fill": "FLUX.1 Fill",
                "control": "FLUX.1 control (Canny/Depth)"}[self.variant]


def _count(shapes: Shapes, prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)}
    return max(found) + 1 if found else 0


def rope_axes(head_dim: int) -> tuple[int, int, int]:
    """RoPE axes for a head width: (16, 56, 56) at 128, as FLUX.1, scaled for smaller
    widths (the axes are not stored in the file; every axis must be even)."""
    axes = (head_dim // 8, 7 * head_dim // 16, 7 * head_dim // 16)
    if sum(axes) != head_dim or any(a % 2 for a in axes):
        raise ModelLoadError(f"Flux attention heads of width {head_dim} are not supported (need a multiple of 32)")
    return axes


def _shape(shapes: Shapes, key: str, filename: str) -> Sequence[int]:
    if key not in shapes:
        raise ModelLoadError(f"{filename}: incomplete Flux transformer, missing {key}")
    return shapes[key]


def flux_architecture(shapes: Shapes, filename: str = "model") -> FluxArchitecture | None:
    """The Flux architecture of a transformer file, or None when it is not one."""
    prefix = COMFY_PREFIX if any(k.startswith(COMFY_PREFIX + "double_blocks.") for k in shapes) else ""
    if prefix + "double_blocks.0.img_attn.qkv.weight" in shapes:
        layout = "bfl"
        s = lambda k: _shape(shapes, prefix + k, filename)  # noqa: E731
        inner, in_channels = s("img_in.weight")
        head_dim = s("double_blocks.0.img_attn.norm.query_norm.scale")[0]
        layers = _count(shapes, prefix + "double_blocks.")
        single = _count(shapes, prefix + "single_blocks.")
        joint = s("txt_in.weight")[1]
        pooled = s("vector_in.in_layer.weight")[1]
        out_channels = s("final_layer.linear.weight")[0]
        mlp = s("double_blocks.0.img_mlp.0.weight")[0]
        guidance = prefix + "guidance_in.in_layer.weight" in shapes
    elif "transformer_blocks.0.attn.add_q_proj.weight" in shapes and "x_embedder.weight" in shapes \
            and "single_transformer_blocks.0.proj_mlp.weight" in shapes:
        layout = "diffusers"
        s = lambda k: _shape(shapes, k, filename)  # noqa: E731
        inner, in_channels = s("x_embedder.weight")
        head_dim = s("transformer_blocks.0.attn.norm_q.weight")[0]
        layers = _count(shapes, "transformer_blocks.")
        single = _count(shapes, "single_transformer_blocks.")
        joint = s("context_embedder.weight")[1]
        pooled = s("time_text_embed.text_embedder.linear_1.weight")[1]
        out_channels = s("proj_out.weight")[0]
        mlp = s("transformer_blocks.0.ff.net.0.proj.weight")[0]
        guidance = "time_text_embed.guidance_embedder.linear_1.weight" in shapes
    else:
        return None
    inner, in_channels, head_dim = int(inner), int(in_channels), int(head_dim)
    if mlp != 4 * inner:
        raise ModelLoadError(f"{filename}: Flux MLP width {mlp} is not 4 × {inner}; not a FLUX.1 transformer")
    config = dict(patch_size=1, in_channels=in_channels, out_channels=int(out_channels), num_layers=layers,
                  num_single_layers=single, attention_head_dim=head_dim, num_attention_heads=inner // head_dim,
                  joint_attention_dim=int(joint), pooled_projection_dim=int(pooled), guidance_embeds=guidance,
                  axes_dims_rope=rope_axes(head_dim))
    if in_channels == 384:
        variant = "fill"
    elif in_channels == 128:
        variant = "control"
    else:
        variant = "dev" if guidance else "schnell"
    return FluxArchitecture(variant, guidance, in_channels, layout, prefix, config)


# -- BFL → diffusers --------------------------------------------------------------------------

_TOP = {  # BFL name → diffusers name (weight and bias alike)
    "time_in.in_layer": "time_text_embed.timestep_embedder.linear_1",
    "time_in.out_layer": "time_text_embed.timestep_embedder.linear_2",
    "vector_in.in_layer": "time_text_embed.text_embedder.linear_1",
    "vector_in.out_layer": "time_text_embed.text_embedder.linear_2",
    "guidance_in.in_layer": "time_text_embed.guidance_embedder.linear_1",
    "guidance_in.out_layer": "time_text_embed.guidance_embedder.linear_2",
    "txt_in": "context_embedder",
    "img_in": "x_embedder",
    "final_layer.linear": "proj_out",
}
_DOUBLE = {
    "img_mod.lin": "norm1.linear", "txt_mod.lin": "norm1_context.linear",
    "img_mlp.0": "ff.net.0.proj", "img_mlp.2": "ff.net.2",
    "txt_mlp.0": "ff_context.net.0.proj", "txt_mlp.2": "ff_context.net.2",
    "img_attn.proj": "attn.to_out.0", "txt_attn.proj": "attn.to_add_out",
}
_DOUBLE_NORMS = {
    "img_attn.norm.query_norm.scale": "attn.norm_q.weight", "img_attn.norm.key_norm.scale": "attn.norm_k.weight",
    "txt_attn.norm.query_norm.scale": "attn.norm_added_q.weight",
    "txt_attn.norm.key_norm.scale": "attn.norm_added_k.weight",
}
_SINGLE = {"modulation.lin": "norm.linear", "linear2": "proj_out"}
_SINGLE_NORMS = {"norm.query_norm.scale": "attn.norm_q.weight", "norm.key_norm.scale": "attn.norm_k.weight"}


def swap_halves(tensor):
    """BFL's final modulation is (shift, scale); diffusers' AdaLayerNormContinuous (scale, shift)."""
    import torch

    a, b = tensor.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


def bfl_to_diffusers(state: dict[str, Any], arch: FluxArchitecture) -> dict[str, Any]:
    """diffusers ``FluxTransformer2DModel`` state dict from a BFL-layout one (consumed)."""
    if arch.layout == "diffusers":
        return state
    import torch

    cfg = arch.config
    inner = cfg["attention_head_dim"] * cfg["num_attention_heads"]
    src = {k[len(arch.prefix):]: v for k, v in state.items() if k.startswith(arch.prefix)}
    state.clear()
    out: dict[str, Any] = {}

    def take(name: str):
        try:
            return src.pop(name)
        except KeyError:
            raise ModelLoadError(f"incomplete Flux transformer: missing {arch.prefix}{name}") from None

    for old, new in _TOP.items():
        if old.startswith("guidance_in") and not arch.guidance_embed:
            continue
        for part in ("weight", "bias"):
            out[f"{new}.{part}"] = take(f"{old}.{part}")
    for part in ("weight", "bias"):
        out[f"norm_out.linear.{part}"] = swap_halves(take(f"final_layer.adaLN_modulation.1.{part}"))
    for i in range(cfg["num_layers"]):
        b, d = f"double_blocks.{i}.", f"transformer_blocks.{i}."
        for old, new in _DOUBLE.items():
            for part in ("weight", "bias"):
                out[f"{d}{new}.{part}"] = take(f"{b}{old}.{part}")
        for old, new in _DOUBLE_NORMS.items():
            out[d + new] = take(b + old)
        for stream, names in (("img", ("to_q", "to_k", "to_v")), ("txt", ("add_q_proj", "add_k_proj", "add_v_proj"))):
            for part in ("weight", "bias"):
                for name, piece in zip(names, torch.chunk(take(f"{b}{stream}_attn.qkv.{part}"), 3, dim=0)):
                    out[f"{d}attn.{name}.{part}"] = piece.contiguous()
    for i in range(cfg["num_single_layers"]):
        b, d = f"single_blocks.{i}.", f"single_transformer_blocks.{i}."
        for old, new in _SINGLE.items():
            for part in ("weight", "bias"):
                out[f"{d}{new}.{part}"] = take(f"{b}{old}.{part}")
        for old, new in _SINGLE_NORMS.items():
            out[d + new] = take(b + old)
        for part in ("weight", "bias"):
            pieces = torch.split(take(f"{b}linear1.{part}"), (inner, inner, inner, 4 * inner), dim=0)
            for name, piece in zip(("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"), pieces):
                out[f"{d}{name}.{part}"] = piece.contiguous()
    if src:
        extra = sorted(src)
        raise ModelLoadError(f"unexpected tensors in the Flux transformer: {len(extra)}, e.g. {extra[:3]}")
    return out


# -- what a file is, for errors that name it ------------------------------------------------------

def describe(shapes: Shapes) -> str:
    """A short name for what a weights file holds, from its keys (for error messages)."""
    keys = list(shapes)
    has = lambda fragment: any(fragment in k for k in keys)  # noqa: E731
    if flux_architecture_or_none(shapes) is not None:
        return flux_architecture_or_none(shapes).name + " transformer"
    if has("joint_blocks.0.") and has("x_embedder.proj"):
        return "SD3 transformer (MMDiT)"
    if has("transformer_blocks.0.attn.add_q_proj") and has("pos_embed.proj"):
        return "SD3 transformer (diffusers layout)"
    if any(k.startswith("model.diffusion_model.input_blocks.") for k in keys):
        if any(k.startswith("conditioner.embedders.1.") for k in keys):
            return "SDXL checkpoint"
        return "Stable Diffusion 1.x/2.x checkpoint"
    if any(k.startswith("input_blocks.") for k in keys):
        return "Stable Diffusion UNet"
    if has("encoder.block.0.layer.0.SelfAttention.q.weight"):
        return "T5 text encoder"
    if has("text_model.encoder.layers.0.") or has("text_model.embeddings.token_embedding"):
        return "CLIP text encoder"
    if has("transformer.resblocks.0."):
        return "OpenCLIP text encoder"
    if has("decoder.conv_in.weight") and has("encoder.conv_in.weight"):
        return "VAE"
    if has("lora_up") or has("lora_down") or has("lora_A") or has("lora_B"):
        return "LoRA"
    if has("control_model.") or has("controlnet_"):
        return "ControlNet"
    sample = ", ".join(sorted(keys)[:3])
    return f"unrecognised weights file ({len(keys)} tensors, e.g. {sample})"


def flux_architecture_or_none(shapes: Shapes) -> FluxArchitecture | None:
    try:
        return flux_architecture(shapes)
    except ModelLoadError:
        return None


def require_flux(shapes: Shapes, filename: str, loader: str) -> FluxArchitecture:
    """The file's Flux architecture, or an error naming the loader and what the file is."""
    arch = flux_architecture(shapes, filename)
    if arch is None:
        raise ModelLoadError(f"{loader}: {filename} is a {describe(shapes)}, not a diffusion model this loader "
                             f"can load (supported: FLUX.1 dev/schnell/Fill and SD3/SD3.5 transformers)")
    return arch
