"""ControlNetLoader, ControlNetApply (the old one) and ControlNetApplyAdvanced — ComfyUI's
names and inputs.  Applying puts the ControlNet, its hint image and strength/range under
``cond_dict["control"]`` of each conditioning entry (chained onto any already there)."""

from __future__ import annotations

from engine.declare import Float, Socket, node
from engine.node import NodeContext

from .imaging import IMAGE
from .model_files import ModelFile

CONDITIONING, CONTROL_NET, VAE = Socket("CONDITIONING"), Socket("CONTROL_NET"), Socket("VAE")


@node(category="loaders", display_name="Load ControlNet Model")
def ControlNetLoader(ctx: NodeContext, control_net_name: str = ModelFile("controlnet")) -> CONTROL_NET:
    """Loads a ControlNet (original single-file layout, or a diffusers folder)."""
    return ctx.env.models.load_controlnet(ctx.env.folders.model_path("controlnet", control_net_name))


@node(category="conditioning/controlnet", display_name="Apply ControlNet (OLD)", deprecated=True)
def ControlNetApply(conditioning: CONDITIONING, control_net: CONTROL_NET, image: IMAGE,
                    strength: float = Float(1.0, min=0.0, max=10.0, step=0.01)) -> CONDITIONING:
    """Guides the conditioning with a ControlNet and a hint image over the whole sampling."""
    from diffusion.controlnet import apply_control

    return apply_control(conditioning, control_net, image, strength, 0.0, 1.0, apply_to_uncond=True)


@node(category="conditioning/controlnet", display_name="Apply ControlNet",
      output_names=("positive", "negative"))
def ControlNetApplyAdvanced(positive: CONDITIONING, negative: CONDITIONING, control_net: CONTROL_NET,
                            image: IMAGE,
                            strength: float = Float(1.0, min=0.0, max=10.0, step=0.01),
                            start_percent: float = Float(0.0, min=0.0, max=1.0, step=0.001),
                            end_percent: float = Float(1.0, min=0.0, max=1.0, step=0.001),
                            vae: VAE | None = None) -> tuple[CONDITIONING, CONDITIONING]:
    """Guides both conditionings with a ControlNet between start_percent and end_percent of sampling."""
    from diffusion.controlnet import apply_control

    args = (control_net, image, strength, start_percent, end_percent)
    return (apply_control(positive, *args, apply_to_uncond=False),
            apply_control(negative, *args, apply_to_uncond=False))
