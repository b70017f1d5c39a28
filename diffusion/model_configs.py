"""diffusers model configs for a checkpoint: the shipped LDM config, sized from tensor shapes.

The LDM yaml files in ``configs/`` give what shapes cannot (head layout, scale factor,
parameterisation); every size (channels, depth, context width, ...) is read from the
checkpoint so that any model of a supported family loads, full-size or tiny.
diffusers' ``create_*_diffusers_config_from_ldm`` then turn the sized LDM config into
UNet2DConditionModel / AutoencoderKL configs.
"""

from __future__ import annotations

import copy
import functools
import re
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from .detect import UNET_PREFIX, VAE_PREFIX, Architecture
from .errors import ModelLoadError

CONFIG_DIR = Path(__file__).parent / "configs"
Shapes = Mapping[str, Sequence[int]]
_IMAGE_SIZE = {"sd1": 512, "sd2": 512, "sdxl": 1024}
#: Text encoder kinds whose files use transformers' CLIPTextModel names (``text_model.…``)
HF_CLIP_KINDS = ("clip_l", "clip_g")


@functools.cache
def _load_yaml(name: str) -> dict:
    return yaml.safe_load((CONFIG_DIR / name).read_text())


def original_config(name: str) -> dict:
    """A fresh copy of a shipped LDM config."""
    return copy.deepcopy(_load_yaml(name))


def _indices(shapes: Shapes, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return sorted({int(m.group(1)) for k in shapes if (m := pattern.match(k))})


def unet_params_from_shapes(shapes: Shapes, base: dict) -> dict:
    """LDM ``unet_config.params`` with every size read from the tensors."""
    p = dict(base)
    u = UNET_PREFIX
    try:
        conv_in = shapes[u + "input_blocks.0.0.weight"]
        p["in_channels"] = int(conv_in[1])
        p["model_channels"] = mc = int(conv_in[0])
        p["out_channels"] = int(shapes[u + "out.2.weight"][0])
        blocks = _indices(shapes, u + "input_blocks.")
        downsamplers = [i for i in blocks if u + f"input_blocks.{i}.0.op.weight" in shapes]
        per_level = (downsamplers[0] if downsamplers else len(blocks)) - 1  # res blocks per level
        levels = len(downsamplers) + 1
        p["num_res_blocks"] = per_level
        mults, attention, depth = [], [], []
        for level in range(levels):
            first = (per_level + 1) * level + 1
            mults.append(int(shapes[u + f"input_blocks.{first}.0.out_layers.3.weight"][0]) // mc)
            tb = _indices(shapes, u + f"input_blocks.{first}.1.transformer_blocks.")
            if tb:
                attention.append(2 ** level)
            depth.append(len(tb) or 1)
        # diffusers sizes the middle block by the last level's depth; where that level has
        # no attention (the SDXL refiner's), its depth is free, so give it the middle's.
        middle = len(_indices(shapes, u + "middle_block.1.transformer_blocks.")) or depth[-1]
        depth = [d if 2 ** level in attention else middle for level, d in enumerate(depth)]
        p["channel_mult"] = mults
        p["attention_resolutions"] = attention
        p["transformer_depth"] = depth if len(set(depth)) > 1 or isinstance(base.get("transformer_depth"), list) else depth[0]
        attn_key = next(k for k in shapes if k.startswith(u) and k.endswith("attn2.to_k.weight"))
        p["context_dim"] = int(shapes[attn_key][1])
        proj_in = next(k for k in shapes if k.startswith(u) and k.endswith(".proj_in.weight"))
        p["use_linear_in_transformer"] = len(shapes[proj_in]) == 2
        if u + "label_emb.0.0.weight" in shapes:
            p["adm_in_channels"] = int(shapes[u + "label_emb.0.0.weight"][1])
    except (KeyError, StopIteration, IndexError, ZeroDivisionError) as exc:
        raise ModelLoadError(f"UNet weights are incomplete: cannot find {exc}") from exc
    return p


def vae_params_from_shapes(shapes: Shapes, base: dict, prefix: str = VAE_PREFIX) -> dict:
    d = dict(base)
    try:
        d["ch"] = ch = int(shapes[prefix + "encoder.conv_in.weight"][0])
        d["in_channels"] = int(shapes[prefix + "encoder.conv_in.weight"][1])
        d["out_ch"] = int(shapes[prefix + "decoder.conv_out.weight"][0])
        d["z_channels"] = int(shapes[prefix + "decoder.conv_in.weight"][1])
        levels = _indices(shapes, prefix + "encoder.down.")
        d["ch_mult"] = [int(shapes[prefix + f"encoder.down.{i}.block.0.conv2.weight"][0]) // ch for i in levels]
        d["num_res_blocks"] = len(_indices(shapes, prefix + "encoder.down.0.block."))
    except (KeyError, IndexError) as exc:
        raise ModelLoadError(f"VAE weights are incomplete: cannot find {exc}") from exc
    return d


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def unet_config(arch: Architecture, shapes: Shapes) -> dict[str, Any]:
    """UNet2DConditionModel config for an original-layout checkpoint."""
    from diffusers.loaders.single_file_utils import create_unet_diffusers_config_from_ldm

    cfg = original_config(arch.original_config)
    params = cfg["model"]["params"]
    key = "unet_config" if "unet_config" in params else "network_config"
    unet = unet_params_from_shapes(shapes, params[key]["params"])
    params[key]["params"] = unet
    params["first_stage_config"]["params"]["ddconfig"] = vae_params_from_shapes(
        shapes, params["first_stage_config"]["params"]["ddconfig"])
    config = _quiet(create_unet_diffusers_config_from_ldm, cfg, {}, image_size=_IMAGE_SIZE[arch.family])
    mc, mults = unet["model_channels"], unet["channel_mult"]
    if unet.get("use_linear_in_transformer") and "num_head_channels" in unet:
        # SD2/SDXL use 64-wide heads; tiny test models still get at least one head.
        config["attention_head_dim"] = [max(1, mc * m // unet["num_head_channels"]) for m in mults]
    if arch.family == "sdxl":
        # diffusers recognises SDXL by its full-size context width; the layout says it too.
        # The ADM is the pooled bigG text plus one sinusoidal embedding per number: six sizes
        # for the base, (height, width, crop_h, crop_w, aesthetic score) for the refiner.
        pooled = int(shapes[arch.text_encoders[-1].prefix + "text_projection"][1])
        numbers = 5 if arch.refiner else 6
        config.update(class_embed_type=None, addition_embed_type="text_time",
                      addition_time_embed_dim=(unet["adm_in_channels"] - pooled) // numbers,
                      projection_class_embeddings_input_dim=unet["adm_in_channels"])
    elif "adm_in_channels" in unet:
        # SD2.1 unCLIP: label_emb projects the (noised) image embedding into the time embedding
        config.update(class_embed_type="projection", projection_class_embeddings_input_dim=unet["adm_in_channels"])
    return config


def vae_config(arch: Architecture | None, shapes: Shapes, prefix: str = VAE_PREFIX) -> dict[str, Any]:
    """AutoencoderKL config (``scaling_factor`` from the family's LDM config)."""
    from diffusers.loaders.single_file_utils import create_vae_diffusers_config_from_ldm

    cfg = original_config(arch.original_config if arch else "v1-inference.yaml")
    dd = cfg["model"]["params"]["first_stage_config"]["params"]
    dd["ddconfig"] = vae_params_from_shapes(shapes, dd["ddconfig"], prefix)
    size = _IMAGE_SIZE[arch.family] if arch else 512
    return _quiet(create_vae_diffusers_config_from_ldm, cfg, {}, image_size=size)


@functools.cache
def text_encoder_families() -> dict:
    return _load_yaml("clip_text_encoders.yaml")


def clip_text_config(shapes: Shapes, prefix: str, kind: str, with_projection: bool) -> dict[str, Any]:
    """CLIPTextConfig kwargs for the text encoder under ``prefix``.

    ``kind`` is "clip_l" or "clip_g" (transformers' key names) or "openclip" (OpenCLIP key names).
    """
    fam = text_encoder_families()[kind]
    try:
        if kind in HF_CLIP_KINDS:
            tok = shapes[prefix + "text_model.embeddings.token_embedding.weight"]
            pos = shapes[prefix + "text_model.embeddings.position_embedding.weight"]
            layers = len(_indices(shapes, prefix + "text_model.encoder.layers."))
            mlp = shapes[prefix + "text_model.encoder.layers.0.mlp.fc1.weight"][0]
            proj = shapes.get(prefix + "text_projection.weight", (tok[1], tok[1]))[0]
        else:
            tok = shapes[prefix + "token_embedding.weight"]
            pos = shapes[prefix + "positional_embedding"]
            layers = len(_indices(shapes, prefix + "transformer.resblocks."))
            mlp = shapes[prefix + "transformer.resblocks.0.mlp.c_fc.weight"][0]
            proj = shapes.get(prefix + "text_projection", (tok[1], tok[1]))[1]
    except KeyError as exc:
        raise ModelLoadError(f"text encoder weights under {prefix} are incomplete: cannot find {exc}") from exc
    hidden = int(tok[1])
    return dict(
        vocab_size=int(tok[0]), hidden_size=hidden, intermediate_size=int(mlp), num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // fam["head_width"]), max_position_embeddings=int(pos[0]),
        hidden_act=fam["hidden_act"], projection_dim=int(proj), bos_token_id=49406, eos_token_id=49407,
        pad_token_id=1,
    )
