"""SD3 / SD3.5 all-in-one checkpoints for Load Checkpoint (CheckpointLoaderSimple).

Stability and ComfyUI save them as one file: the MMDiT under ``model.diffusion_model.``, the
VAE under ``first_stage_model.`` (LDM names, 16 channels), and none, some or all of the text
encoders under ``text_encoders.clip_l.transformer.``, ``text_encoders.clip_g.transformer.`` and
``text_encoders.t5xxl.transformer.`` (``sd3.5_large.safetensors`` has none,
``sd3_medium_incl_clips.safetensors`` CLIP-L and CLIP-G, ``…_t5xxlfp8`` all three).  The CLIP
output holds the encoders the file has; one with none gets an error when it is used, naming the
loader for separate text encoder files, as ComfyUI's does.
"""

from __future__ import annotations

from pathlib import Path


def is_sd3_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint file holds an SD3 transformer (header only); a transformer-only file
    counts too, so that it gets an error naming the loaders to use instead."""
    from .sd3_files import COMFY_PREFIX
    from .weights_file import SafetensorsFile

    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return False
    shapes = SafetensorsFile(path).shapes()
    return any(prefix + "joint_blocks.0.x_block.attn.qkv.weight" in shapes for prefix in (COMFY_PREFIX, ""))


def load_sd3_checkpoint(manager, path: str | Path):
    """(MODEL, CLIP, VAE) of an SD3/SD3.5 all-in-one checkpoint, loaded once."""
    from .errors import ModelLoadError
    from .flux_vae import build_16_channel_vae, is_16_channel_vae
    from .latent_formats import SD3
    from .loading import WeightSource
    from .models import VaeModel
    from .sd3_model import build_sd3_transformer, sd3_flow_model
    from .sd3_text import build_sd3_text_encoders, sd3_clip

    def load(p: Path):
        source = WeightSource(p)
        if is_16_channel_vae(source.shapes()) is None:
            raise ModelLoadError(f"Load Checkpoint: {p.name} holds an SD3 transformer without its VAE; load the "
                                 f"transformer with Load Diffusion Model (UNETLoader) and the VAE with Load VAE")
        module, arch = build_sd3_transformer(p, "default", manager.unet_dtype, loader="Load Checkpoint")
        encoders = build_sd3_text_encoders(source, manager.text_dtype, p.name)
        vae = build_16_channel_vae(p, manager.vae_dtype)
        return (sd3_flow_model(module, arch, manager, p.name), sd3_clip(encoders, manager, p.name),
                VaeModel(vae, SD3, manager, source=p.name))

    return manager.load_file(Path(path), "sd3_checkpoint", load,
                             modules=lambda parts: (parts[0].unet, *(e.model for e in parts[1].encoders), parts[2].vae),
                             component="checkpoint")
