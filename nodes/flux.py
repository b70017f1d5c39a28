"""FLUX.1 nodes with ComfyUI's names, inputs and defaults: Load Diffusion Model (UNETLoader),
DualCLIPLoader, CLIPTextEncodeFlux, FluxGuidance, ModelSamplingFlux, ModelSamplingSD3,
EmptySD3LatentImage.  The work is in diffusion/flux_*.py."""

from __future__ import annotations

from engine.declare import Combo, Float, Int, Socket, String, node
from engine.node import NodeContext

from .model_files import ModelFile

MODEL, CLIP, CONDITIONING, LATENT = Socket("MODEL"), Socket("CLIP"), Socket("CONDITIONING"), Socket("LATENT")
MAX_RESOLUTION = 16384
# ComfyUI's choices, in its order (kept here so listing them imports no torch)
WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")
DUAL_CLIP_TYPES = ("sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image", "hunyuan_video_15",
                   "kandinsky5", "kandinsky5_image", "ltxv", "newbie", "ace")


@node(category="advanced/loaders", display_name="Load Diffusion Model")
def UNETLoader(ctx: NodeContext, unet_name: str = ModelFile("diffusion_models"),
               weight_dtype: str = Combo(WEIGHT_DTYPES, default="default")) -> MODEL:
    """Loads a diffusion transformer file from models/diffusion_models (FLUX.1 dev, schnell, Fill
    in BFL's or ComfyUI's layout; SD3 medium, SD3.5 large/medium in Stability's layout; bf16 or
    fp8).  fp8 weights stay fp8 in memory and are cast layer by layer to the compute dtype
    (float32 on the CPU, bf16 on GPUs)."""
    from diffusion.sd3_model import load_diffusion_model

    path = ctx.env.folders.model_path("diffusion_models", unet_name)
    return load_diffusion_model(ctx.env.models, path, weight_dtype)


@node(category="advanced/loaders", display_name="DualCLIPLoader")
def DualCLIPLoader(ctx: NodeContext, clip_name1: str = ModelFile("text_encoders"),
                   clip_name2: str = ModelFile("text_encoders"),
                   type: str = Combo(DUAL_CLIP_TYPES, default="sdxl"),
                   device: str | None = Combo(("default", "cpu"), default="default", extra={"advanced": True})) -> CLIP:
    """Loads two text encoders (either order) as one CLIP: type flux takes clip_l and t5xxl, sd3
    two of clip_l, clip_g and t5xxl, sdxl clip_l and clip_g."""
    from diffusion.sd3_text import load_dual_clip

    folders = ctx.env.folders
    paths = [folders.model_path("text_encoders", clip_name1), folders.model_path("text_encoders", clip_name2)]
    return load_dual_clip(ctx.env.models, paths, type)


@node(category="advanced/conditioning/flux", display_name="CLIPTextEncodeFlux")
def CLIPTextEncodeFlux(clip: CLIP, clip_l: str = String("", multiline=True),
                       t5xxl: str = String("", multiline=True),
                       guidance: float = Float(3.5, min=0.0, max=100.0, step=0.1)) -> CONDITIONING:
    """FLUX.1 prompt with a text for CLIP-L (its pooled output) and one for T5-XXL (the
    features), and the distilled guidance strength for dev models."""
    from diffusion.flux_text import encode_flux
    from diffusion.errors import PromptError

    if getattr(clip, "family", None) != "flux":
        raise PromptError("CLIPTextEncodeFlux needs a FLUX.1 CLIP (DualCLIPLoader with type flux)")
    return encode_flux(clip, clip_l, t5xxl, extra={"guidance": float(guidance)})


@node(category="advanced/conditioning/flux", display_name="FluxGuidance")
def FluxGuidance(conditioning: CONDITIONING,
                 guidance: float = Float(3.5, min=0.0, max=100.0, step=0.1)) -> CONDITIONING:
    """Sets the guidance a guidance-distilled FLUX.1 model (dev) is conditioned on."""
    from diffusion.composition import with_values

    return with_values(conditioning, guidance=float(guidance))


def _flow_model(model, node_name: str):
    from diffusion.errors import SamplingError
    from diffusion.flux_model import is_flow

    if not is_flow(model):
        raise SamplingError(f"{node_name} is for flow-matching models (FLUX.1); this is a {model.family} model — "
                            f"use ModelSamplingDiscrete for SD models")
    return model


@node(category="advanced/model", display_name="ModelSamplingFlux")
def ModelSamplingFlux(model: MODEL,
                      max_shift: float = Float(1.15, min=0.0, max=100.0, step=0.01),
                      base_shift: float = Float(0.5, min=0.0, max=100.0, step=0.01),
                      width: int = Int(1024, min=16, max=MAX_RESOLUTION, step=8),
                      height: int = Int(1024, min=16, max=MAX_RESOLUTION, step=8)) -> MODEL:
    """A copy of the model sampling on Flux's σ shifted for this image size (base_shift at
    256 latent patches, max_shift at 4096)."""
    from diffusion.flux_model import FlowSampling, flux_shift

    shift = flux_shift(max_shift, base_shift, width, height)
    return _flow_model(model, "ModelSamplingFlux").clone(sampling=FlowSampling("flux", shift))


@node(category="advanced/model", display_name="ModelSamplingSD3")
def ModelSamplingSD3(model: MODEL, shift: float = Float(3.0, min=0.0, max=100.0, step=0.01)) -> MODEL:
    """A copy of the model sampling on the discrete flow σ with this shift (timesteps × 1000)."""
    from diffusion.flux_model import FlowSampling

    return _flow_model(model, "ModelSamplingSD3").clone(sampling=FlowSampling("discrete_flow", shift, 1000.0))


@node(category="latent/sd3", display_name="EmptySD3LatentImage")
def EmptySD3LatentImage(width: int = Int(1024, min=16, max=MAX_RESOLUTION, step=16),
                        height: int = Int(1024, min=16, max=MAX_RESOLUTION, step=16),
                        batch_size: int = Int(1, min=1, max=4096)) -> LATENT:
    """Empty 16-channel latents (FLUX.1, SD3) for a width × height image."""
    import torch

    return {"samples": torch.zeros([batch_size, 16, height // 8, width // 8])}
