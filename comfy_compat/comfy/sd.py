"""ComfyUI's ``comfy.sd``: loading checkpoints and LoRAs for custom nodes, over
Loom's loaders.  The MODEL / CLIP / VAE objects are Loom's own handles, which
carry ComfyUI's methods (``diffusion.comfy_shape``): ``CLIP`` and ``VAE`` here
are those classes, for ``isinstance`` checks and annotations."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("CLIP", "VAE"):
        from diffusion.models import ClipModel, VaeModel

        return ClipModel if name == "CLIP" else VaeModel
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)


def load_checkpoint_guess_config(ckpt_path: str, output_vae: bool = True, output_clip: bool = True,
                                 output_clipvision: bool = False, embedding_directory: Any = None,
                                 output_model: bool = True, model_options: dict | None = None,
                                 te_model_options: dict | None = None) -> tuple:
    """(MODEL, CLIP, VAE, CLIP_VISION) of a checkpoint file, through Loom's model manager
    (loaded once, shared with Loom's loaders); what was not asked for is ``None``."""
    from loom_compat.binding import active

    manager = active().env.models
    model, clip, vae = manager.load_checkpoint(str(ckpt_path))
    return (model if output_model else None, clip if output_clip else None, vae if output_vae else None, None)


def load_lora_for_models(model: Any, clip: Any, lora: dict, strength_model: float, strength_clip: float) -> tuple:
    """(MODEL, CLIP) with a LoRA state dict applied, as Loom's LoraLoader applies a file."""
    from diffusion.lora import parse_lora, with_clip_lora, with_unet_lora

    parsed = parse_lora(lora, "lora")
    new_model = with_unet_lora(model, parsed, strength_model) if model is not None and strength_model else model
    new_clip = with_clip_lora(clip, parsed, strength_clip) if clip is not None and strength_clip else clip
    return new_model, new_clip
