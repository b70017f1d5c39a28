"""Which Stable Diffusion architecture a single-file checkpoint holds, from keys and shapes.

Detection reads only the file's header (names and shapes), except for the
v-prediction check, which needs one small tensor.  diffusers'
``infer_diffusers_model_type`` is consulted too and its answer recorded; Loom's own
probes decide, because diffusers' probes assume full-size models (e.g. a 1024-wide
text context for SD2) while the layout is what really tells the families apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Mapping, Sequence

from .errors import ModelLoadError

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
SD1_CLIP_PREFIX = "cond_stage_model.transformer."
SD2_CLIP_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_CLIP_PREFIX = "conditioner.embedders.0.model."

Family = Literal["sd1", "sd2", "sdxl"]

#: ComfyUI's heuristic: SD2 768-v checkpoints have this LayerNorm bias with std > 0.09.
V_PREDICTION_STD_THRESHOLD = 0.09

_FAMILY_NAMES = {"sd1": "SD1.x", "sd2": "SD2.x", "sdxl": "SDXL base"}
REFINER_CONFIG = "sd_xl_refiner.yaml"
_CONFIGS = {
    ("sd1", False, "epsilon"): "v1-inference.yaml",
    ("sd1", True, "epsilon"): "v1-inpainting-inference.yaml",
    ("sd2", False, "epsilon"): "v2-inference.yaml",
    ("sd2", False, "v_prediction"): "v2-inference-v.yaml",
    ("sd2", True, "epsilon"): "v2-inference.yaml",
    ("sdxl", False, "epsilon"): "sd_xl_base.yaml",
    ("sdxl", True, "epsilon"): "sd_xl_base.yaml",
}


@dataclass(frozen=True)
class TextEncoderSpec:
    """Where one text tower lies in the file and how to read it."""

    prefix: str
    kind: Literal["clip_l", "openclip"]
    with_projection: bool   # the pooled, projected output conditions the model (SDXL's bigG)


_TEXT_ENCODERS = {
    "sd1": (TextEncoderSpec(SD1_CLIP_PREFIX, "clip_l", False),),
    "sd2": (TextEncoderSpec(SD2_CLIP_PREFIX, "openclip", False),),
    "sdxl": (TextEncoderSpec(SDXL_CLIP_L_PREFIX, "clip_l", False), TextEncoderSpec(SDXL_CLIP_G_PREFIX, "openclip", True)),
}
#: The SDXL refiner keeps only OpenCLIP bigG (with its projection), as embedder 0.
_REFINER_TEXT_ENCODERS = (TextEncoderSpec(SDXL_REFINER_CLIP_PREFIX, "openclip", True),)


@dataclass(frozen=True)
class Architecture:
    family: Family
    in_channels: int
    prediction_type: Literal["epsilon", "v_prediction"]
    diffusers_type: str | None = None
    #: SDXL's refiner: the SDXL latent space and sampling, its own UNet, bigG alone, and
    #: an ADM of pooled text + (height, width, crop, aesthetic score) instead of six sizes.
    refiner: bool = False

    @property
    def inpainting(self) -> bool:
        return self.in_channels == 9

    @property
    def name(self) -> str:
        name = "SDXL refiner" if self.refiner else _FAMILY_NAMES[self.family]
        if self.inpainting:
            name += " inpainting"
        if self.prediction_type == "v_prediction":
            name += " (v-prediction)"
        return name

    @property
    def original_config(self) -> str:
        """The shipped LDM config file this architecture starts from."""
        if self.refiner:
            return REFINER_CONFIG
        return _CONFIGS.get((self.family, self.inpainting, self.prediction_type), _CONFIGS[(self.family, False, "epsilon")])

    @property
    def text_encoders(self) -> tuple[TextEncoderSpec, ...]:
        return _REFINER_TEXT_ENCODERS if self.refiner else _TEXT_ENCODERS[self.family]

    @property
    def text_encoder_prefixes(self) -> tuple[str, ...]:
        return tuple(spec.prefix for spec in self.text_encoders)


def _has_prefix(keys: Sequence[str], prefix: str) -> bool:
    return any(k.startswith(prefix) for k in keys)


def _diffusers_type(shapes: Mapping[str, Sequence[int]]) -> str | None:
    try:
        import torch
        from diffusers.loaders.single_file_utils import infer_diffusers_model_type

        probe = {k: torch.empty(tuple(s), device="meta") for k, s in shapes.items()}
        return infer_diffusers_model_type(probe)
    except Exception:  # diffusers' probes assume real sizes; its opinion is informative only
        return None


def detect_architecture(
    shapes: Mapping[str, Sequence[int]],
    read_tensor: Callable[[str], "torch.Tensor"] | None = None,  # noqa: F821
    filename: str = "checkpoint",
) -> Architecture:
    """Detect the architecture of an original-layout checkpoint from its key → shape map.

    ``read_tensor(name)`` is used for the v-prediction check (SD2 only).
    Raises :class:`ModelLoadError` naming what is missing when it is not a
    supported Stable Diffusion checkpoint.
    """
    keys = list(shapes)
    if not keys:
        raise ModelLoadError(f"{filename}: holds no tensors")
    conv_in = UNET_PREFIX + "input_blocks.0.0.weight"
    missing = [what for what, prefix in (("UNet (model.diffusion_model.*)", UNET_PREFIX),
                                         ("VAE (first_stage_model.*)", VAE_PREFIX))
               if not _has_prefix(keys, prefix)]
    refiner = False
    if _has_prefix(keys, SDXL_CLIP_G_PREFIX) and _has_prefix(keys, SDXL_CLIP_L_PREFIX):
        family: Family = "sdxl"
    elif _has_prefix(keys, SDXL_REFINER_CLIP_PREFIX):
        family, refiner = "sdxl", True
        if SDXL_REFINER_CLIP_PREFIX + "text_projection" not in shapes:
            missing.append("the refiner's pooled-text projection (conditioner.embedders.0.model.text_projection)")
        if _has_prefix(keys, UNET_PREFIX) and UNET_PREFIX + "label_emb.0.0.weight" not in shapes:
            missing.append("the refiner UNet's size/aesthetic-score embedding (model.diffusion_model.label_emb.*)")
    elif _has_prefix(keys, SD2_CLIP_PREFIX):
        family = "sd2"
    elif _has_prefix(keys, SD1_CLIP_PREFIX):
        family = "sd1"
    else:
        missing.append("text encoder (cond_stage_model.transformer.* for SD1.x, cond_stage_model.model.* "
                       "for SD2.x, conditioner.embedders.0/1.* for SDXL, conditioner.embedders.0.model.* for the SDXL refiner)")
        family = "sd1"
    if missing:
        sample = ", ".join(sorted(keys)[:3])
        raise ModelLoadError(
            f"{filename} is not a Stable Diffusion checkpoint Loom can load: missing "
            + "; ".join(missing) + f". (It has {len(keys)} tensors, e.g. {sample}.)")
    if conv_in not in shapes or len(shapes[conv_in]) != 4:
        raise ModelLoadError(f"{filename}: UNet input convolution {conv_in} is missing or malformed")
    in_channels = int(shapes[conv_in][1])
    if in_channels not in (4, 9):
        raise ModelLoadError(f"{filename}: UNet takes {in_channels} input channels; Loom supports 4 and 9 (inpainting)")
    prediction = "epsilon"
    if family == "sd2" and read_tensor is not None:
        probe = _v_prediction_probe(keys)
        if probe is not None and float(read_tensor(probe).float().std()) > V_PREDICTION_STD_THRESHOLD:
            prediction = "v_prediction"
    return Architecture(family=family, in_channels=in_channels, prediction_type=prediction,
                        diffusers_type=_diffusers_type(shapes), refiner=refiner)


def _v_prediction_probe(keys: Sequence[str]) -> str | None:
    """The LayerNorm bias ComfyUI's v-prediction heuristic reads: the first transformer
    block of the last output block that has attention (``output_blocks.11`` at full size)."""
    best: tuple[int, str] | None = None
    for key in keys:
        if key.startswith(UNET_PREFIX + "output_blocks.") and key.endswith(".1.transformer_blocks.0.norm1.bias"):
            index = int(key[len(UNET_PREFIX + "output_blocks."):].split(".")[0])
            if best is None or index > best[0]:
                best = (index, key)
    return None if best is None else best[1]
