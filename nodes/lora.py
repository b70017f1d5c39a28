"""LoraLoader and LoraLoaderModelOnly (ComfyUI's names and inputs).

They return new MODEL/CLIP *views* of the shared model carrying one more LoRA patch;
the weights are patched in place only while a view runs (see :mod:`diffusion.lora`),
so several prompts with different LoRAs or strengths share one loaded model.
"""

from __future__ import annotations

from engine.declare import Float, Input, Socket, node
from engine.node import NodeContext

from .model_files import ModelFile

MODEL, CLIP = Socket("MODEL"), Socket("CLIP")
_STRENGTH = dict(min=-100.0, max=100.0, step=0.01)


def _load(ctx: NodeContext, lora_name: str):
    from diffusion.lora import load_lora

    return load_lora(ctx.env.folders.model_path("loras", lora_name))


@node(category="loaders", display_name="Load LoRA", output_names=("MODEL", "CLIP"),
      description="LoRAs are used to modify diffusion and CLIP models, altering the way in which latents are "
                  "denoised such as applying styles. Multiple LoRA nodes can be linked together.")
def LoraLoader(ctx: NodeContext,
               model: MODEL = Input(tooltip="The diffusion model the LoRA will be applied to."),
               clip: CLIP = Input(tooltip="The CLIP model the LoRA will be applied to."),
               lora_name: str = ModelFile("loras", tooltip="The name of the LoRA."),
               strength_model: float = Float(1.0, **_STRENGTH,
                                             tooltip="How strongly to modify the diffusion model. "
                                                     "This value can be negative."),
               strength_clip: float = Float(1.0, **_STRENGTH,
                                            tooltip="How strongly to modify the CLIP model. "
                                                    "This value can be negative.")) -> tuple[MODEL, CLIP]:
    if strength_model == 0 and strength_clip == 0:
        return model, clip
    from diffusion.lora import with_clip_lora, with_unet_lora

    lora = _load(ctx, lora_name)
    new_model = with_unet_lora(model, lora, strength_model) if strength_model != 0 else model
    new_clip = with_clip_lora(clip, lora, strength_clip) if strength_clip != 0 else clip
    return new_model, new_clip


@node(category="loaders", display_name="LoraLoaderModelOnly")
def LoraLoaderModelOnly(ctx: NodeContext, model: MODEL,
                        lora_name: str = ModelFile("loras"),
                        strength_model: float = Float(1.0, **_STRENGTH)) -> MODEL:
    """Applies a LoRA to the diffusion model only."""
    if strength_model == 0:
        return model
    from diffusion.lora import with_unet_lora

    return with_unet_lora(model, _load(ctx, lora_name), strength_model)
