"""Text conditioning (CLIPTextEncode, CLIPTextEncodeSDXL, CLIPTextEncodeSDXLRefiner, CLIPSetLastLayer) and its
composition (ConditioningCombine, Concat, Average, SetArea*, SetMask, ZeroOut,
SetTimestepRange) with ComfyUI's names and inputs; the work is in diffusion.composition."""

from __future__ import annotations

from engine.declare import Combo, Float, Input, Int, Socket, String, node
from engine.node import NodeContext

CLIP, CONDITIONING, MASK = Socket("CLIP"), Socket("CONDITIONING"), Socket("MASK")
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


@node(category="advanced/conditioning", display_name="CLIPTextEncodeSDXLRefiner")
def CLIPTextEncodeSDXLRefiner(ctx: NodeContext,
                              ascore: float = Float(6.0, min=0.0, max=1000.0, step=0.01),
                              width: int = Int(1024, min=0, max=MAX_RESOLUTION),
                              height: int = Int(1024, min=0, max=MAX_RESOLUTION),
                              text: str = String("", multiline=True),
                              clip: CLIP = Input()) -> CONDITIONING:
    """SDXL refiner prompt with its aesthetic score (high for the positive, low for the
    negative) and the image size it conditions on."""
    from diffusion.text_encoding import encode

    return encode(clip, text, embedding_dirs=_embedding_dirs(ctx),
                  extra=dict(aesthetic_score=ascore, width=width, height=height))


@node(category="conditioning", display_name="CLIP Set Last Layer")
def CLIPSetLastLayer(clip: CLIP, stop_at_clip_layer: int = Int(-1, min=-24, max=-1, step=1)) -> CLIP:
    """Reads the text encoder's output from an earlier layer ("clip skip")."""
    return clip.clone(layer=stop_at_clip_layer)


def _ops():
    from diffusion import composition

    return composition


@node(category="conditioning", display_name="Conditioning (Combine)")
def ConditioningCombine(conditioning_1: CONDITIONING, conditioning_2: CONDITIONING) -> CONDITIONING:
    """Both conditionings; the sampler averages their predictions."""
    return _ops().combine(conditioning_1, conditioning_2)


@node(category="conditioning", display_name="Conditioning (Concat)")
def ConditioningConcat(conditioning_to: CONDITIONING, conditioning_from: CONDITIONING) -> CONDITIONING:
    """Appends the tokens of conditioning_from (its first entry) to each entry of conditioning_to."""
    return _ops().concat(conditioning_to, conditioning_from)


@node(category="conditioning", display_name="Conditioning (Average)")
def ConditioningAverage(conditioning_to: CONDITIONING, conditioning_from: CONDITIONING,
                        conditioning_to_strength: float = Float(1.0, min=0.0, max=1.0, step=0.01)) -> CONDITIONING:
    """Blends conditioning_to with conditioning_from, token by token."""
    return _ops().average(conditioning_to, conditioning_from, conditioning_to_strength)


@node(category="conditioning", display_name="Conditioning (Set Area)")
def ConditioningSetArea(conditioning: CONDITIONING,
                        width: int = Int(64, min=64, max=MAX_RESOLUTION, step=8),
                        height: int = Int(64, min=64, max=MAX_RESOLUTION, step=8),
                        x: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
                        y: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
                        strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)) -> CONDITIONING:
    """Applies the conditioning only inside a rectangle of the image (in pixels)."""
    return _ops().set_area(conditioning, width, height, x, y, strength)


@node(category="conditioning", display_name="Conditioning (Set Area with Percentage)")
def ConditioningSetAreaPercentage(conditioning: CONDITIONING,
                                  width: float = Float(1.0, min=0.0, max=1.0, step=0.01),
                                  height: float = Float(1.0, min=0.0, max=1.0, step=0.01),
                                  x: float = Float(0.0, min=0.0, max=1.0, step=0.01),
                                  y: float = Float(0.0, min=0.0, max=1.0, step=0.01),
                                  strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)) -> CONDITIONING:
    """Applies the conditioning inside a rectangle given as fractions of the image size."""
    return _ops().set_area_percentage(conditioning, width, height, x, y, strength)


@node(category="conditioning", display_name="Conditioning (Set Area Strength)")
def ConditioningSetAreaStrength(conditioning: CONDITIONING,
                                strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)) -> CONDITIONING:
    """Sets how much the conditioning weighs against others it is combined with."""
    return _ops().with_values(conditioning, strength=float(strength))


@node(category="conditioning", display_name="Conditioning (Set Mask)")
def ConditioningSetMask(conditioning: CONDITIONING, mask: MASK,
                        strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
                        set_cond_area: str = Combo(("default", "mask bounds"), default="default")) -> CONDITIONING:
    """Weights the conditioning by a mask; "mask bounds" also restricts it to the mask's box."""
    return _ops().set_mask(conditioning, mask, strength, set_cond_area)


@node(category="advanced/conditioning", display_name="ConditioningZeroOut")
def ConditioningZeroOut(conditioning: CONDITIONING) -> CONDITIONING:
    """All-zero conditioning (pooled output too)."""
    return _ops().zero_out(conditioning)


@node(category="advanced/conditioning", display_name="ConditioningSetTimestepRange")
def ConditioningSetTimestepRange(conditioning: CONDITIONING,
                                 start: float = Float(0.0, min=0.0, max=1.0, step=0.001),
                                 end: float = Float(1.0, min=0.0, max=1.0, step=0.001)) -> CONDITIONING:
    """Applies the conditioning only between start and end of sampling (0 = first step, 1 = last)."""
    return _ops().set_timestep_range(conditioning, start, end)
