"""Build diffusers/transformers modules from single-file checkpoints, without a hub.

Each component is read from the file only when it is built (tensor by tensor, see
:mod:`weights_file`), renamed by diffusers' single-file conversion functions, and
*assigned* into a model created on the meta device — so weights are never copied
once read and the peak is about one model's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .detect import UNET_PREFIX, VAE_PREFIX, Architecture, detect_architecture
from .errors import ModelLoadError
from .model_configs import HF_CLIP_KINDS, clip_text_config, unet_config, vae_config
from .weights_file import SafetensorsFile, load_state_dict


class WeightSource:
    """Tensors of one file: a safetensors file read lazily, or an in-memory dict.

    A ComfyUI "scaled fp8" file (``*_fp8_scaled.safetensors``: a ``scaled_fp8`` marker, and per
    Linear layer an fp8 ``weight`` with a ``scale_weight`` it is multiplied by) is presented as
    the plain weights it stands for: the scale keys are hidden and each scaled weight reads as
    ``weight·scale`` in bf16 (ComfyUI multiplies the same way when it casts the weight).  So
    every converter and loader sees an ordinary bf16 file; the weights take twice the memory
    fp8 would.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"model file not found: {self.path}")
        if self.path.suffix.lower() == ".safetensors":
            self._file: SafetensorsFile | None = SafetensorsFile(self.path)
            self._dict: dict | None = None
        else:
            self._file, self._dict = None, load_state_dict(self.path)
        self._scales = scale_keys(self._raw_shapes())

    def _raw_shapes(self) -> dict[str, tuple[int, ...]]:
        if self._file is not None:
            return self._file.shapes()
        return {k: tuple(v.shape) for k, v in self._dict.items()}

    def shapes(self) -> dict[str, tuple[int, ...]]:
        shapes = self._raw_shapes()
        if not self._scales:
            return shapes
        return {k: v for k, v in shapes.items() if not is_scale_key(k)}

    def _read_raw(self, names: list[str], dtype=None) -> dict[str, Any]:
        if self._file is not None:
            return dict(self._file.read(names, dtype=dtype))
        out = {}
        for n in names:
            t = self._dict[n]
            out[n] = t.to(dtype) if dtype is not None and t.is_floating_point() else t
        return out

    def read(self, names: Iterable[str], dtype=None) -> dict[str, Any]:
        names = list(names)
        scaled = [n for n in names if n in self._scales]
        if not scaled:
            return self._read_raw(names, dtype)
        import torch

        out = self._read_raw([n for n in names if n not in self._scales], dtype)
        raw = self._read_raw(scaled + [self._scales[n] for n in scaled])
        for name in scaled:
            weight = raw.pop(name).float() * raw.pop(self._scales[name]).float()
            out[name] = weight.to(dtype or torch.bfloat16)
        return out

    def read_prefix(self, prefix: str, dtype=None) -> dict[str, Any]:
        return self.read([k for k in self.shapes() if k.startswith(prefix)], dtype)


def is_scale_key(name: str) -> bool:
    """The keys of ComfyUI's scaled fp8 format beside the weights (marker, weight and input scales)."""
    return name.endswith(("scaled_fp8", ".scale_weight", ".scale_input"))


def scale_keys(shapes: Mapping[str, Any]) -> dict[str, str]:
    """weight name → its ``scale_weight`` name, for a scaled fp8 file (empty for any other)."""
    if not any(k.endswith("scaled_fp8") for k in shapes):
        return {}
    return {k[: -len(".scale_weight")] + ".weight": k for k in shapes
            if k.endswith(".scale_weight") and k[: -len(".scale_weight")] + ".weight" in shapes}


def _assign(model, state_dict: Mapping[str, Any], what: str, ignore: Callable[[str], bool] = lambda k: False):
    """Load converted weights into a meta-initialised model by reference."""
    expected = set(model.state_dict())
    given = {k: v for k, v in state_dict.items() if not ignore(k)}
    missing = sorted(expected - set(given))
    if missing:
        raise ModelLoadError(f"{what} weights are incomplete: {len(missing)} tensors missing, e.g. {missing[:3]}")
    model.load_state_dict({k: v for k, v in given.items() if k in expected}, strict=True, assign=True)
    return model.eval().requires_grad_(False)


def _empty(factory: Callable[[], Any]):
    from accelerate import init_empty_weights

    with init_empty_weights():  # parameters on meta; buffers stay real
        return factory()


def build_unet(source: WeightSource, arch: Architecture, dtype=None):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = unet_config(arch, source.shapes())
    state = source.read_prefix(UNET_PREFIX, dtype)
    converted = convert_ldm_unet_checkpoint(state, config)
    del state
    model = _empty(lambda: UNet2DConditionModel.from_config(config))
    return _assign(model, converted, f"{source.path.name}: UNet")


def _is_diffusers_vae(shapes: Mapping[str, Any], prefix: str = "") -> bool:
    return prefix + "encoder.down_blocks.0.resnets.0.norm1.weight" in shapes


def build_vae(source: WeightSource, arch: Architecture | None, dtype=None):
    """The VAE of a checkpoint (``first_stage_model.*``) or of a standalone VAE file."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    shapes = source.shapes()
    prefix = VAE_PREFIX if any(k.startswith(VAE_PREFIX) for k in shapes) else ""
    if _is_diffusers_vae(shapes, prefix):
        raise ModelLoadError(f"{source.path.name}: diffusers-layout VAE files are loaded from a folder, not a single file")
    if prefix + "decoder.conv_in.weight" not in shapes:
        raise ModelLoadError(f"{source.path.name} is not a VAE: no decoder weights ({prefix}decoder.*)")
    config = vae_config(arch, shapes, prefix)
    state = source.read([k for k in shapes if k.startswith(prefix) and ("coder." in k or "quant_conv" in k)], dtype)
    converted = convert_ldm_vae_checkpoint(state, config)
    del state
    model = _empty(lambda: AutoencoderKL.from_config(config))
    return _assign(model, converted, f"{source.path.name}: VAE")


@dataclass
class TextEncoderWeights:
    """One CLIP text tower as loaded: the module plus what its key layout told us."""

    model: Any            # CLIPTextModel or CLIPTextModelWithProjection
    kind: str             # "clip_l" | "openclip" | "clip_g" (bigG in transformers' names, SD3)
    file_layers: int      # transformer layers in the file (clip-skip counts from these)


def build_text_encoder(source: WeightSource, prefix: str, kind: str, with_projection: bool,
                       dtype=None) -> TextEncoderWeights:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from diffusers.loaders.single_file_utils import convert_ldm_clip_checkpoint, convert_open_clip_checkpoint

    shapes = source.shapes()
    config = CLIPTextConfig(**clip_text_config(shapes, prefix, kind, with_projection))
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    model = _empty(lambda: cls(config))
    state = source.read_prefix(prefix, dtype)
    if kind in HF_CLIP_KINDS and not prefix:
        converted = state  # a standalone file already in transformers' names (ComfyUI's clip_l/clip_g.safetensors)
    elif kind in HF_CLIP_KINDS:
        converted = convert_ldm_clip_checkpoint(state, remove_prefix=prefix)
    else:
        # A neutral prefix: diffusers skips SD2's last layer under its usual prefix, but
        # Loom keeps every layer so clip skip counts as in the original model.
        neutral = "loom.openclip."
        state = {neutral + k[len(prefix):]: v for k, v in state.items()}
        converted = convert_open_clip_checkpoint(model, state, prefix=neutral)
    del state
    if not hasattr(model, "text_model"):  # transformers ≥ 5.6 flattened CLIPTextModel
        converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    model = _assign(model, converted, f"{source.path.name}: text encoder ({prefix})",
                    ignore=lambda k: k.endswith("position_ids") or (not with_projection and k.startswith("text_projection")))
    return TextEncoderWeights(model, kind, config.num_hidden_layers)


def build_text_encoders(source: WeightSource, arch: Architecture, dtype=None) -> list[TextEncoderWeights]:
    """Every text tower of a checkpoint, in the order their features are concatenated."""
    return [build_text_encoder(source, spec.prefix, spec.kind, spec.with_projection, dtype)
            for spec in arch.text_encoders]


def read_architecture(source: WeightSource) -> Architecture:
    def read_one(name: str):
        return source.read([name])[name]

    return detect_architecture(source.shapes(), read_one, filename=source.path.name)




def load_pretrained_folder(model_class: Any, folder: str | os.PathLike, what: str) -> Any:
    """A transformers/diffusers model saved with ``save_pretrained``, read offline,
    in eval mode without gradients; a folder that isn't one is a clear error."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{folder.name}: not a {what} folder (no config.json)")
    try:
        model = model_class.from_pretrained(folder, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{folder.name}: cannot load the {what} ({exc})") from exc
    return model.eval().requires_grad_(False)
