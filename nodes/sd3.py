"""SD3 / SD3.5 text nodes with ComfyUI's names, inputs and defaults: TripleCLIPLoader and
CLIPTextEncodeSD3.  The work is in diffusion/sd3_text.py."""

from __future__ import annotations

from engine.declare import Combo, Socket, String, node
from engine.node import NodeContext

from .model_files import ModelFile

CLIP, CONDITIONING = Socket("CLIP"), Socket("CONDITIONING")
EMPTY_PADDING = ("none", "empty_prompt")


@node(category="advanced/loaders", display_name="TripleCLIPLoader", description="[Recipes]\n\nsd3: clip-l, clip-g, t5")
def TripleCLIPLoader(ctx: NodeContext, clip_name1: str = ModelFile("text_encoders"),
                     clip_name2: str = ModelFile("text_encoders"), clip_name3: str = ModelFile("text_encoders"),
                     device: str | None = Combo(("default", "cpu"), default="default", extra={"advanced": True})) -> CLIP:
    from diffusion.sd3_text import load_triple_clip

    folders = ctx.env.folders
    names = (clip_name1, clip_name2, clip_name3)
    return load_triple_clip(ctx.env.models, [folders.model_path("text_encoders", name) for name in names])


@node(category="advanced/conditioning", display_name="CLIPTextEncodeSD3")
def CLIPTextEncodeSD3(ctx: NodeContext, clip: CLIP, clip_l: str = String("", multiline=True),
                      clip_g: str = String("", multiline=True), t5xxl: str = String("", multiline=True),
                      empty_padding: str = Combo(EMPTY_PADDING, default="none", extra={"advanced": True})
                      ) -> CONDITIONING:
    """SD3 prompt with a text for each encoder; with empty_padding none an empty text leaves its
    encoder out, with empty_prompt it is encoded as an empty prompt."""
    from diffusion.sd3_text import encode_sd3

    return encode_sd3(clip, clip_l, clip_g, t5xxl, empty_padding,
                      embedding_dirs=ctx.env.folders.model_dirs("embeddings"))
