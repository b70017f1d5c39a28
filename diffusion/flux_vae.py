"""The 16-channel VAEs of FLUX.1 (``ae.safetensors``) and SD3, from their single files.

BFL's ``ae.safetensors`` uses the LDM VAE names (``encoder.down.N.block.M``…) with 16 latent
channels and no quant/post-quant convolutions; its sizes are read from the shapes.  LATENT
samples for these models are raw VAE latents (the model's ``process_in``/``process_out`` scale
and shift them), so the VAE module is given a scaling factor of 1: encode and decode are the
plain autoencoder, whatever convention the SD VAE code path uses for its scaled latents.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError
from .latent_formats import FLUX

PREFIXES = ("", "vae.", "first_stage_model.")


def is_16_channel_vae(shapes) -> str | None:
    """The key prefix of a 16-channel VAE in ``shapes``, or None."""
    for prefix in PREFIXES:
        conv = shapes.get(prefix + "decoder.conv_in.weight")
        if conv is not None and len(conv) == 4 and conv[1] == 16:
            return prefix
    return None


def vae_config(shapes, prefix: str, filename: str) -> dict:
    levels = sorted({int(k[len(prefix + "encoder.down."):].split(".")[0]) for k in shapes
                     if k.startswith(prefix + "encoder.down.")})
    if not levels:
        raise ModelLoadError(f"{filename}: not an LDM-layout VAE (no {prefix}encoder.down.*)")
    channels = tuple(int(shapes[f"{prefix}encoder.down.{i}.block.0.conv1.weight"][0]) for i in levels)
    blocks = len({k.split(".")[4] for k in shapes if k.startswith(prefix + "encoder.down.0.block.")})
    return dict(in_channels=int(shapes[prefix + "encoder.conv_in.weight"][1]),
                out_channels=int(shapes[prefix + "decoder.conv_out.weight"][0]),
                latent_channels=int(shapes[prefix + "decoder.conv_in.weight"][1]),
                block_out_channels=channels, layers_per_block=blocks,
                down_block_types=("DownEncoderBlock2D",) * len(channels),
                up_block_types=("UpDecoderBlock2D",) * len(channels),
                norm_num_groups=32, sample_size=1024, scaling_factor=1.0, shift_factor=0.0,
                use_quant_conv=prefix + "quant_conv.weight" in shapes,
                use_post_quant_conv=prefix + "post_quant_conv.weight" in shapes)


def build_16_channel_vae(path: Path, dtype):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    from .loading import WeightSource, _assign, _empty

    source = WeightSource(path)
    shapes = source.shapes()
    prefix = is_16_channel_vae(shapes)
    if prefix is None:
        raise ModelLoadError(f"{path.name}: not a 16-channel (FLUX.1/SD3) VAE")
    config = vae_config(shapes, prefix, path.name)
    state = source.read([k for k in shapes if k.startswith(prefix)], dtype)
    state = {"first_stage_model." + k[len(prefix):]: v for k, v in state.items()}
    converted = convert_ldm_vae_checkpoint(state, config)
    model = _empty(lambda: AutoencoderKL.from_config(config))
    return _assign(model, converted, f"{path.name}: VAE")


def load_16_channel_vae(manager, path: str | Path, fmt=FLUX):
    """A VaeModel for a FLUX.1 (or SD3) VAE file, loaded once."""
    from .models import VaeModel

    path = Path(path)

    def load(p: Path):
        vae = build_16_channel_vae(p, manager.vae_dtype)
        return VaeModel(vae, fmt, manager, source=p.name)

    return manager.load_file(path, "vae16", load, modules=lambda v: (v.vae,), component="vae")


def sixteen_channel_file(path: str | Path) -> bool:
    """Whether a VAE file holds a 16-channel (FLUX.1/SD3) VAE — read from the header only."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return False
    from .weights_file import SafetensorsFile

    return is_16_channel_vae(SafetensorsFile(path).shapes()) is not None
