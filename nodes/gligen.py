"""GLIGENLoader and GLIGENTextBoxApply — ComfyUI's names and inputs.  Applying puts the
phrase's embedding and its box under ``cond_dict["gligen"]`` of each conditioning entry
(ComfyUI's ``("position", model, [(embedding, h, w, y, x), ...])``); the sampler runs
the GLIGEN fusers for those entries (:mod:`diffusion.gligen`)."""

from __future__ import annotations

from engine.declare import Int, Socket, String, node
from engine.node import NodeContext

from .model_files import ModelFile

CONDITIONING, CLIP, GLIGEN = Socket("CONDITIONING"), Socket("CLIP"), Socket("GLIGEN")
MAX_RESOLUTION = 16384


def _load(ctx: NodeContext, name: str):
    from diffusion.gligen import load_gligen

    path = ctx.env.folders.model_path("gligen", name)
    manager = ctx.env.models
    return manager.load_file(path, "gligen", lambda p: load_gligen(p, manager, dtype=manager.unet_dtype),
                             modules=lambda gligen: (gligen.modules,))


@node(category="loaders", display_name="GLIGENLoader")
def GLIGENLoader(ctx: NodeContext, gligen_name: str = ModelFile("gligen")) -> GLIGEN:
    """Loads a GLIGEN text-box model (models/gligen), for GLIGENTextBoxApply."""
    return _load(ctx, gligen_name)


@node(category="conditioning/gligen", display_name="GLIGENTextBoxApply")
def GLIGENTextBoxApply(conditioning_to: CONDITIONING, clip: CLIP, gligen_textbox_model: GLIGEN,
                       text: str = String("", multiline=True),
                       width: int = Int(64, min=8, max=MAX_RESOLUTION, step=8),
                       height: int = Int(64, min=8, max=MAX_RESOLUTION, step=8),
                       x: int = Int(0, min=0, max=MAX_RESOLUTION, step=8),
                       y: int = Int(0, min=0, max=MAX_RESOLUTION, step=8)) -> CONDITIONING:
    """Asks for the text's object inside the box (x, y, width, height in pixels)."""
    from diffusion.gligen import apply_text_box

    return apply_text_box(conditioning_to, clip, gligen_textbox_model, text, width, height, x, y)
