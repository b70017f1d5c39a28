"""unCLIPConditioning and unCLIPCheckpointLoader — ComfyUI's names, inputs and outputs.

unCLIP models (SD2.1 unCLIP) are conditioned on an image as well as on text: the
image's CLIP embedding, noise-augmented, joins the UNet's time embedding.  The work
is in :mod:`diffusion.unclip`.
"""

from __future__ import annotations

from engine.declare import Float, Socket, node
from engine.node import NodeContext

from .model_files import ModelFile

MODEL, CLIP, VAE = Socket("MODEL"), Socket("CLIP"), Socket("VAE")
CONDITIONING = Socket("CONDITIONING")
CLIP_VISION, CLIP_VISION_OUTPUT = Socket("CLIP_VISION"), Socket("CLIP_VISION_OUTPUT")


@node(category="conditioning", display_name="unCLIP Conditioning")
def unCLIPConditioning(conditioning: CONDITIONING, clip_vision_output: CLIP_VISION_OUTPUT,
                       strength: float = Float(1.0, min=-10.0, max=10.0, step=0.01),
                       noise_augmentation: float = Float(0.0, min=0.0, max=1.0, step=0.01)) -> CONDITIONING:
    """Adds an image (its CLIP vision embedding) to the conditioning of an unCLIP model.
    Noise augmentation blurs how closely the result follows the image."""
    from diffusion.unclip import apply_unclip

    return apply_unclip(conditioning, clip_vision_output, strength, noise_augmentation)


@node(category="loaders", display_name="unCLIP Checkpoint Loader",
      output_names=("MODEL", "CLIP", "VAE", "CLIP_VISION"))
def unCLIPCheckpointLoader(ctx: NodeContext, ckpt_name: str = ModelFile("checkpoints")
                           ) -> tuple[MODEL, CLIP, VAE, CLIP_VISION]:
    """Loads an SD2.1 unCLIP checkpoint: its model, text encoder, VAE and CLIP vision model."""
    from diffusion.unclip import load_unclip_checkpoint

    path = ctx.env.folders.model_path("checkpoints", ckpt_name)
    return load_unclip_checkpoint(path, ctx.env.models)
