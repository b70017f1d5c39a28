"""Text conditioning: CLIPTextEncode, CLIPTextEncodeSDXL, CLIPSetLastLayer."""

from __future__ import annotations

from engine.declare import Input, Int, Socket, String, node
from engine.node import NodeContext

CLIP, CONDITIONING = Socket("CLIP"), Socket("CONDITIONING")
MAX_RESOLUTION = 16384


def _embedding_dirs(ctx: NodeContext):
    return ctx.env.folders.model_dirs("embeddings")


@node(category="conditioning", display_name="CLIP Text Encode (Prompt)",
      description="Encodes a text prompt using a CLIP model into an embedding that can be used to guide "
                  "the diffusion model towards generating specific images.")
def CLIPTextEncode(ctx: NodeContext,
                   text: str = String("", multiline=True, tooltip="The text to be encoded."),
                   clip: CLIP = Input(tooltip="The CLIP model used for encoding the text.")) -> CONDITIONING:
    from diffusion.text_encoding import encode

    return encode(clip, text, embedding_dirs=_embedding_dirs(ctx))


@node(category="advanced/conditioning", display_name="CLIPTextEncodeSDXL")
def CLIPTextEncodeSDXL(ctx: NodeContext, clip: CLIP,
                       width: int = Int(1024, min=0, max=MAX_RESOLUTION),
                       height: int = Int(1024, min=0, max=MAX_RESOLUTION),
                       crop_w: int = Int(0, min=0, max=MAX_RESOLUTION),
                       crop_h: int = Int(0, min=0, max=MAX_RESOLUTION),
                       target_width: int = Int(1024, min=0, max=MAX_RESOLUTION),
                       target_height: int = Int(1024, min=0, max=MAX_RESOLUTION),
                       text_g: str = String("", multiline=True),
                       text_l: str = String("", multiline=True)) -> CONDITIONING:
    """SDXL prompt with separate texts for the two encoders and size/crop conditioning."""
    from diffusion.text_encoding import encode

    sizes = dict(width=width, height=height, crop_w=crop_w, crop_h=crop_h,
                 target_width=target_width, target_height=target_height)
    return encode(clip, text_g, text_l=text_l, embedding_dirs=_embedding_dirs(ctx), extra=sizes)


@node(category="conditioning", display_name="CLIP Set Last Layer")
def CLIPSetLastLayer(clip: CLIP, stop_at_clip_layer: int = Int(-1, min=-24, max=-1, step=1)) -> CLIP:
    """Reads the text encoder's output from an earlier layer ("clip skip")."""
    return clip.clone(layer=stop_at_clip_layer)


NODES = [CLIPTextEncode, CLIPTextEncodeSDXL, CLIPSetLastLayer]
