"""FLUX.1 all-in-one checkpoints for Load Checkpoint (CheckpointLoaderSimple).

ComfyUI saves (and ships, e.g. ``flux1-schnell-fp8.safetensors``) Flux as one file: the
transformer under ``model.diffusion_model.`` (BFL names), CLIP-L under
``text_encoders.clip_l.transformer.``, T5-XXL under ``text_encoders.t5xxl.transformer.`` and the
VAE under ``vae.`` (LDM names).  Each part is read from the file on its own, with the same
builders as the separate files (:mod:`diffusion.flux_model`, :mod:`diffusion.flux_text`,
:mod:`diffusion.flux_vae`); the weights keep their stored dtype as there.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ModelLoadError

CLIP_L_PREFIX = "text_encoders.clip_l.transformer."
T5_PREFIX = "text_encoders.t5xxl.transformer."


def is_flux_checkpoint(path: str | Path) -> bool:
    """Whether a checkpoint file holds a FLUX.1 transformer (header only); one that holds
    nothing else gets an error naming the loaders to use instead."""
    from .flux_files import flux_architecture_or_none
    from .weights_file import SafetensorsFile

    path = Path(path)
    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return False
    return flux_architecture_or_none(SafetensorsFile(path).shapes()) is not None


def load_flux_checkpoint(manager, path: str | Path):
    """(MODEL, CLIP, VAE) of a FLUX.1 all-in-one checkpoint, loaded once."""
    from .flux_model import DEFAULT_SAMPLING, FlowModel, build_flux_transformer
    from .flux_text import build_clip_l, build_t5
    from .flux_vae import build_16_channel_vae
    from .latent_formats import FLUX
    from .loading import WeightSource
    from .models import ClipModel, VaeModel

    def load(p: Path):
        shapes = WeightSource(p).shapes()
        lacking = [what for what, probe in (("CLIP-L", CLIP_L_PREFIX + "text_model.embeddings.token_embedding.weight"),
                                            ("T5-XXL", T5_PREFIX + "encoder.block.0.layer.0.SelfAttention.q.weight"),
                                            ("VAE", "vae.decoder.conv_in.weight")) if probe not in shapes]
        if lacking:
            raise ModelLoadError(f"Load Checkpoint: {p.name} holds a FLUX.1 transformer without its "
                                 f"{', '.join(lacking)}; load the transformer with Load Diffusion Model (UNETLoader) "
                                 f"and the text encoders with DualCLIPLoader, the VAE with Load VAE")
        module, arch = build_flux_transformer(p, "default", manager.unet_dtype, loader="Load Checkpoint")
        source = WeightSource(p)
        clip_l = build_clip_l(source, CLIP_L_PREFIX, manager.text_dtype, p.name)
        t5 = build_t5(source, T5_PREFIX, manager.text_dtype, p.name)
        vae = build_16_channel_vae(p, manager.vae_dtype)
        return (FlowModel(module, "flux", "flow", FLUX, manager, source=p.name,
                          sampling=DEFAULT_SAMPLING[arch.variant], variant=arch.variant,
                          guidance_embed=arch.guidance_embed, compute_dtype=manager.unet_dtype),
                ClipModel((clip_l, t5), "flux", manager, source=p.name),
                VaeModel(vae, FLUX, manager, source=p.name))

    return manager.load_file(Path(path), "flux_checkpoint", load,
                             modules=lambda parts: (parts[0].unet, parts[1].encoders[0].model,
                                                    parts[1].encoders[1].model, parts[2].vae),
                             component="checkpoint")
