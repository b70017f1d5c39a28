"""CLIPVisionLoader and CLIPVisionEncode — ComfyUI's names, inputs and outputs.

The loader reads a CLIP image tower from models/clip_vision (transformers or
OpenCLIP key layout); the encoder turns an IMAGE into CLIP_VISION_OUTPUT
(``image_embeds``, ``last_hidden_state``, ``penultimate_hidden_states``), which
unCLIPConditioning and image-prompt custom nodes consume.  The work is in
:mod:`diffusion.clip_vision`.
"""

from __future__ import annotations

from engine.declare import Combo, Socket, node
from engine.node import NodeContext

from .imaging import IMAGE
from .model_files import ModelFile

CLIP_VISION, CLIP_VISION_OUTPUT = Socket("CLIP_VISION"), Socket("CLIP_VISION_OUTPUT")


@node(category="loaders", display_name="Load CLIP Vision")
def CLIPVisionLoader(ctx: NodeContext, clip_name: str = ModelFile("clip_vision")) -> CLIP_VISION:
    """Loads a CLIP vision model (ViT-L/14, ViT-H/14, ViT-bigG/14) from models/clip_vision."""
    from diffusion.clip_vision import load_clip_vision

    path = ctx.env.folders.model_path("clip_vision", clip_name)
    return load_clip_vision(path, ctx.env.models)


@node(category="conditioning", display_name="CLIP Vision Encode")
def CLIPVisionEncode(clip_vision: CLIP_VISION, image: IMAGE,
                     crop: str = Combo(("center", "none"), default="center")) -> CLIP_VISION_OUTPUT:
    """Encodes an image with a CLIP vision model: resized to the model's input size and
    centre-cropped ("center") or squashed to a square ("none")."""
    from diffusion.clip_vision import encode_image

    return encode_image(clip_vision, image, crop=crop == "center")
