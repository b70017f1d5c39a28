"""Model loaders: checkpoints, VAEs, text encoders, diffusers folders.

Thin: each resolves a name in its model folder and asks the host's model manager
(``ctx.env.models``, which caches by file) for the loaded handles.
"""

from __future__ import annotations

from engine.declare import Combo, Socket, node
from engine.node import NodeContext

from .model_files import ModelFile

MODEL, CLIP, VAE = Socket("MODEL"), Socket("CLIP"), Socket("VAE")


@node(category="loaders", display_name="Load Checkpoint", output_names=("MODEL", "CLIP", "VAE"),
      description="Loads a diffusion model checkpoint, diffusion models are used to denoise latents.")
def CheckpointLoaderSimple(ctx: NodeContext,
                           ckpt_name: str = ModelFile("checkpoints",
                                                  tooltip="The name of the checkpoint (model) to load.")
                           ) -> tuple[MODEL, CLIP, VAE]:
    path = ctx.env.folders.model_path("checkpoints", ckpt_name)
    from diffusion.flux_checkpoint import is_flux_checkpoint, load_flux_checkpoint
    from diffusion.sd3_checkpoint import is_sd3_checkpoint, load_sd3_checkpoint

    if is_flux_checkpoint(path):  # ComfyUI's all-in-one FLUX.1 files (flux1-schnell-fp8.safetensors)
        return load_flux_checkpoint(ctx.env.models, path)
    if is_sd3_checkpoint(path):  # SD3 / SD3.5 files (sd3.5_large.safetensors, sd3_medium_incl_clips…)
        return load_sd3_checkpoint(ctx.env.models, path)
    return ctx.env.models.load_checkpoint(path)


@node(category="advanced/loaders/deprecated", display_name="DiffusersLoader", output_names=("MODEL", "CLIP", "VAE"))
def DiffusersLoader(ctx: NodeContext, model_path: str = ModelFile("diffusers")) -> tuple[MODEL, CLIP, VAE]:
    """Loads a Stable Diffusion model saved as a diffusers folder (models/diffusers)."""
    return ctx.env.models.load_checkpoint(ctx.env.folders.model_path("diffusers", model_path))


@node(category="loaders", display_name="Load VAE")
def VAELoader(ctx: NodeContext, vae_name: str = ModelFile("vae")) -> VAE:
    """Loads a standalone VAE (original single-file layout; FLUX.1's 16-channel ae.safetensors too)."""
    from diffusion.flux_vae import load_16_channel_vae, sixteen_channel_file

    path = ctx.env.folders.model_path("vae", vae_name)
    if sixteen_channel_file(path):
        return load_16_channel_vae(ctx.env.models, path)
    return ctx.env.models.load_vae(path)


#: ComfyUI's CLIPLoader types, in its order (Loom loads stable_diffusion and sd3: diffusion.sd3_text)
CLIP_TYPES = ("stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv", "pixart", "cosmos",
              "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2", "qwen_image", "hunyuan_image", "flux2", "ovis",
              "longcat_image", "cogvideox", "lens", "pixeldit", "ideogram4", "boogu", "krea2", "joyimage", "mage",
              "minimax", "yue2")


@node(category="advanced/loaders", display_name="Load CLIP")
def CLIPLoader(ctx: NodeContext, clip_name: str = ModelFile("clip"),
               type: str = Combo(CLIP_TYPES, default="stable_diffusion"),
               device: str | None = Combo(("default", "cpu"), default="default", extra={"advanced": True})) -> CLIP:
    """Loads one text encoder as a CLIP: type stable_diffusion takes a CLIP-L (transformers key
    layout), sd3 a t5xxl, clip_g or clip_l file."""
    from diffusion.sd3_text import load_clip

    return load_clip(ctx.env.models, ctx.env.folders.model_path("clip", clip_name), type)
