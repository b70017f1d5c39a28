"""The objects that flow between nodes as MODEL, CLIP and VAE.

They are light handles: the torch modules they point at are owned by the
:class:`~diffusion.memory.ModelManager`, which decides where they live.  Cloning a
handle (for a different clip skip, or with LoRA patches) never copies weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from .comfy_shape import ClipShape, ModelPatcherShape, VaeShape, model_options_copy
from .latent_formats import LatentFormat

if TYPE_CHECKING:
    from .loading import TextEncoderWeights
    from .memory import ModelManager

Family = Literal["sd1", "sd2", "sdxl"]

@dataclass(frozen=True)
class DiffusionModel(ModelPatcherShape):
    """MODEL: a denoising UNet plus what sampling needs to know about it (and, for
    custom nodes, ComfyUI's ModelPatcher methods: diffusion.comfy_shape)."""

    unet: Any                       # diffusers UNet2DConditionModel
    family: Family
    prediction_type: str            # "epsilon" | "v_prediction" (+ ModelSamplingDiscrete's, diffusion.model_sampling)
    latent_format: LatentFormat
    manager: "ModelManager" = field(repr=False, compare=False)
    source: str = ""
    #: Weight patches (LoRA, ...) applied while this handle samples; a LoraLoader's clone adds them.
    patches: tuple = ()
    #: σ table rescaled to zero terminal SNR (ModelSamplingDiscrete's zsnr)
    zsnr: bool = False
    #: ComfyUI's model_options: the sampler hooks custom nodes set (cfg functions,
    #: the UNet wrapper...); each clone has its own copy.
    model_options: dict = field(default_factory=lambda: {"transformer_options": {}}, compare=False, repr=False)

    @property
    def in_channels(self) -> int:
        return int(self.unet.config.in_channels)

    def clone(self, **changes) -> "DiffusionModel":
        changes.setdefault("model_options", model_options_copy(self.model_options))
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class ClipModel(ClipShape):
    """CLIP: the text encoder(s) of a checkpoint, with the layer to read (clip skip)."""

    encoders: tuple["TextEncoderWeights", ...]
    family: Family
    manager: "ModelManager" = field(repr=False, compare=False)
    #: ComfyUI's stop_at_clip_layer (-1 = last); None = the family's default.
    layer: int | None = None
    source: str = ""
    patches: tuple = ()

    def clone(self, **changes) -> "ClipModel":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class VaeModel(VaeShape):
    """VAE: the autoencoder between pixels and latents."""

    vae: Any                        # diffusers AutoencoderKL
    latent_format: LatentFormat
    manager: "ModelManager" = field(repr=False, compare=False)
    source: str = ""

    @property
    def scale_factor(self) -> float:
        return float(self.vae.config.scaling_factor)

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)
