"""CLIP vision encoders (CLIP_VISION) and what they make of an image (CLIP_VISION_OUTPUT).

A CLIP vision file holds one image tower in one of the two layouts ComfyUI reads:

* transformers' ``CLIPVisionModelWithProjection`` keys (``vision_model.*`` and
  ``visual_projection.weight``) — the usual ``models/clip_vision`` download;
* the OpenAI/OpenCLIP layout (``visual.conv1.weight``, ``visual.transformer.resblocks.*``,
  ``visual.proj``) — standalone, or inside an SD2.1 unCLIP checkpoint under
  ``embedder.model.visual.``.

Either way it becomes a transformers ``CLIPVisionModelWithProjection`` whose sizes
are read from the tensor shapes (so ViT-L/14, ViT-H/14, ViT-bigG/14 and tiny test
towers all load); the two things shapes cannot tell — attention heads and the
activation — come from the known families below.  Nothing is fetched from a hub.

Images are prepared as ComfyUI does it: the shortest side resized (bicubic,
antialiased) to the model's input size and centre-cropped (or, with crop off,
squashed to a square), quantised to 8 bits, normalised with CLIP's mean/std.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ModelLoadError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

#: Key that marks the transformers layout (after an optional prefix).
HF_PROBE = "vision_model.embeddings.patch_embedding.weight"
#: Key that marks the OpenAI/OpenCLIP layout (after a prefix such as ``visual.``).
OPENCLIP_PROBE = "transformer.resblocks.0.attn.in_proj_weight"


@dataclass(frozen=True)
class VisionFamily:
    """What a tower's shapes cannot say: its attention heads and activation."""

    name: str
    hidden_size: int
    heads: int
    activation: str


#: The released towers ComfyUI ships configs for, and LAION's ViT-g (heads are not width // 64 for H, g, bigG).
KNOWN_FAMILIES = (
    VisionFamily("ViT-L/14", 1024, 16, "quick_gelu"),
    VisionFamily("ViT-H/14", 1280, 16, "gelu"),
    VisionFamily("ViT-g/14", 1408, 16, "gelu"),
    VisionFamily("ViT-bigG/14", 1664, 16, "gelu"),
)
#: Head width assumed for towers of other sizes (ViT-B's 768 → 12 heads; tiny ones → 1).
DEFAULT_HEAD_WIDTH = 64


def vision_family(hidden_size: int) -> VisionFamily:
    for family in KNOWN_FAMILIES:
        if family.hidden_size == hidden_size:
            return family
    # OpenAI's own towers (ViT-B at 768) use quick_gelu; other sizes follow OpenCLIP.
    activation = "quick_gelu" if hidden_size == 768 else "gelu"
    return VisionFamily(f"ViT ({hidden_size} wide)", hidden_size, max(1, hidden_size // DEFAULT_HEAD_WIDTH),
                        activation)


# -- outputs ------------------------------------------------------------------------------------


@dataclass
class ClipVisionOutput:
    """CLIP_VISION_OUTPUT: ComfyUI's three tensors, readable as attributes or ``out["name"]``."""

    image_embeds: Any                   # [B, projection_dim] (projected, post-LayerNorm class token)
    last_hidden_state: Any              # [B, tokens, hidden] (encoder output, before the final LayerNorm)
    penultimate_hidden_states: Any      # [B, tokens, hidden] (output of the second-to-last layer)

    def __getitem__(self, key: str) -> Any:  # custom nodes index it like ComfyUI's Output
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __contains__(self, key: str) -> bool:
        return hasattr(self, key)


@dataclass(frozen=True, eq=False)
class ClipVision:
    """CLIP_VISION: a loaded image tower."""

    model: Any                          # transformers CLIPVisionModelWithProjection
    family: str = ""
    source: str = ""
    manager: Any = field(default=None, repr=False, compare=False)

    @property
    def image_size(self) -> int:
        return int(self.model.config.image_size)

    @property
    def image_mean(self) -> tuple[float, ...]:
        return CLIP_MEAN

    @property
    def image_std(self) -> tuple[float, ...]:
        return CLIP_STD

    def encode_image(self, image, crop: bool = True) -> ClipVisionOutput:
        """ComfyUI's ``clip_vision.encode_image`` (custom nodes call it)."""
        return encode_image(self, image, crop=crop)


# -- key layouts ----------------------------------------------------------------------------------

_RESBLOCK_NAMES = {"ln_1": "layer_norm1", "ln_2": "layer_norm2", "mlp.c_fc": "mlp.fc1",
                   "mlp.c_proj": "mlp.fc2", "attn.out_proj": "self_attn.out_proj"}
_TOP_NAMES = {"class_embedding": "embeddings.class_embedding", "conv1.weight": "embeddings.patch_embedding.weight",
              "positional_embedding": "embeddings.position_embedding.weight", "ln_pre.weight": "pre_layrnorm.weight",
              "ln_pre.bias": "pre_layrnorm.bias", "ln_post.weight": "post_layernorm.weight",
              "ln_post.bias": "post_layernorm.bias"}


def openclip_visual_to_hf(state: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """OpenAI/OpenCLIP ``visual.*`` tensors (under ``prefix``) → transformers keys.

    The fused attention input projection is split into q, k, v; ``proj`` (``x @ proj``)
    becomes ``visual_projection.weight`` (``x @ W.T``), hence the transpose."""
    out: dict[str, Any] = {}
    # "attn.in_proj_weight" ends in "_weight"; every other parameter in ".weight"/".bias"
    block = re.compile(r"transformer\.resblocks\.(\d+)\.(.+)[._](weight|bias)$")
    for key, value in state.items():
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name in _TOP_NAMES:
            out["vision_model." + _TOP_NAMES[name]] = value
        elif name == "proj":
            out["visual_projection.weight"] = value.T.contiguous()
        elif m := block.match(name):
            layer, part, kind = m.groups()
            dst = f"vision_model.encoder.layers.{layer}."
            if part == "attn.in_proj":
                for letter, chunk in zip("qkv", value.chunk(3, dim=0)):
                    out[dst + f"self_attn.{letter}_proj.{kind}"] = chunk.contiguous()
            elif part in _RESBLOCK_NAMES:
                out[dst + f"{_RESBLOCK_NAMES[part]}.{kind}"] = value
    return out


@dataclass(frozen=True)
class VisionLayout:
    """Where a vision tower sits in a file and in which key layout."""

    prefix: str
    openclip: bool


def find_vision_layout(shapes: Mapping[str, Sequence[int]], prefix: str | None = None) -> VisionLayout | None:
    """The vision tower's layout in a file (``prefix`` given: only there), or None."""
    for key in shapes:
        if key.endswith(HF_PROBE):
            found = key[: -len(HF_PROBE)]
            if prefix is None or found == prefix:
                return VisionLayout(found, openclip=False)
        elif key.endswith(OPENCLIP_PROBE):
            found = key[: -len(OPENCLIP_PROBE)]
            if (prefix is None or found == prefix) and found + "conv1.weight" in shapes:
                return VisionLayout(found, openclip=True)
    return None


def _layers(shapes: Mapping[str, Sequence[int]], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in shapes if (m := regex.match(k))})


def vision_config_from_shapes(shapes: Mapping[str, Sequence[int]], layout: VisionLayout, what: str) -> dict[str, Any]:
    """``CLIPVisionConfig`` kwargs for the tower at ``layout``, every size read from the shapes."""
    p = layout.prefix
    try:
        if layout.openclip:
            patch = shapes[p + "conv1.weight"]
            positions = shapes[p + "positional_embedding"][0]
            layers = _layers(shapes, re.escape(p) + r"transformer\.resblocks\.(\d+)\.")
            mlp = shapes[p + "transformer.resblocks.0.mlp.c_fc.weight"][0]
            projection = shapes[p + "proj"][1]
        else:
            patch = shapes[p + HF_PROBE]
            positions = shapes[p + "vision_model.embeddings.position_embedding.weight"][0]
            layers = _layers(shapes, re.escape(p) + r"vision_model\.encoder\.layers\.(\d+)\.")
            mlp = shapes[p + "vision_model.encoder.layers.0.mlp.fc1.weight"][0]
            projection = shapes[p + "visual_projection.weight"][0]
    except KeyError as exc:
        raise ModelLoadError(f"{what}: the CLIP vision weights are incomplete: cannot find {exc}") from exc
    hidden, channels, patch_size = int(patch[0]), int(patch[1]), int(patch[2])
    grid = math.isqrt(int(positions) - 1)
    if grid * grid != int(positions) - 1:
        raise ModelLoadError(f"{what}: {positions} position embeddings is not a square grid plus the class token")
    family = vision_family(hidden)
    return dict(hidden_size=hidden, intermediate_size=int(mlp), num_hidden_layers=layers,
                num_attention_heads=family.heads, num_channels=channels, image_size=grid * patch_size,
                patch_size=patch_size, hidden_act=family.activation, projection_dim=int(projection),
                layer_norm_eps=1e-5)


# -- loading --------------------------------------------------------------------------------------


def build_clip_vision(source, prefix: str | None = None, dtype=None) -> ClipVision:
    """The CLIP vision tower in ``source`` (a :class:`diffusion.loading.WeightSource`).

    ``prefix`` pins where it must be (``"embedder.model.visual."`` in unCLIP checkpoints)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from .loading import _assign, _empty

    name = source.path.name
    shapes = source.shapes()
    layout = find_vision_layout(shapes, prefix)
    if layout is None:
        where = f"under {prefix}" if prefix is not None else (
            f"(no {HF_PROBE} or visual.{OPENCLIP_PROBE})")
        raise ModelLoadError(f"{name} is not a CLIP vision model: no vision tower {where}")
    config_kwargs = vision_config_from_shapes(shapes, layout, name)
    config = CLIPVisionConfig(**config_kwargs)
    model = _empty(lambda: CLIPVisionModelWithProjection(config))
    state = source.read_prefix(layout.prefix, dtype)
    if layout.openclip:
        state = openclip_visual_to_hf(state, layout.prefix)
    else:
        state = {k[len(layout.prefix):]: v for k, v in state.items()}
    model = _assign(model, state, f"{name}: CLIP vision", ignore=lambda k: k.endswith("position_ids"))
    return ClipVision(model, vision_family(config.hidden_size).name, name)


def load_clip_vision(path: str | os.PathLike, manager=None) -> ClipVision:
    """A CLIP vision file (either layout), loaded once per file when a model manager is given."""
    return _load(Path(path), None, "clip_vision", manager)


def load_checkpoint_clip_vision(path: str | os.PathLike, prefix: str, manager=None) -> ClipVision:
    """The CLIP vision tower stored inside a checkpoint under ``prefix``."""
    return _load(Path(path), prefix, "checkpoint_clip_vision", manager)


def _load(path: Path, prefix: str | None, kind: str, manager) -> ClipVision:
    from .loading import WeightSource

    if manager is None:
        import torch

        return build_clip_vision(WeightSource(path), prefix, torch.float32)

    def load(file: Path) -> ClipVision:
        vision = build_clip_vision(WeightSource(file), prefix, manager.text_dtype)
        return ClipVision(vision.model, vision.family, vision.source, manager)

    return manager.load_file(path, kind, load, modules=lambda vision: (vision.model,), component="clip_vision")


# -- encoding -------------------------------------------------------------------------------------


def preprocess(images, size: int, crop: bool = True, mean: Sequence[float] = CLIP_MEAN,
               std: Sequence[float] = CLIP_STD):
    """IMAGE ``[B, H, W, C]`` (0..1) → CLIP pixel values ``[B, 3, size, size]`` (ComfyUI's recipe)."""
    import torch
    import torch.nn.functional as F

    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image must be [batch, height, width, channels], got shape {list(images.shape)}")
    x = images[..., :3].float()
    if x.shape[-1] == 1:
        x = x.expand(*x.shape[:-1], 3)
    x = x.movedim(-1, 1)
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        if crop:
            scale = size / min(h, w)
            target = (round(scale * h), round(scale * w))
        else:
            target = (size, size)
        x = F.interpolate(x, size=target, mode="bicubic", antialias=True)
        top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
        x = x[..., top:top + size, left:left + size]
    # 8-bit quantisation, as an image file would have been (CLIP was trained on those)
    x = torch.clip(255.0 * x, 0, 255).round() / 255.0
    mean_t = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - mean_t) / std_t


def encode_image(vision: ClipVision, images, crop: bool = True) -> ClipVisionOutput:
    """CLIPVisionEncode: the image embedding and hidden states of ``images`` (float32, CPU)."""
    import torch

    model = vision.model if vision.manager is None else vision.manager.use(vision.model)
    p = next(model.parameters())
    pixels = preprocess(images.cpu(), vision.image_size, crop, vision.image_mean, vision.image_std)
    with torch.inference_mode():
        out = model(pixel_values=pixels.to(p.device, p.dtype), output_hidden_states=True)
    return ClipVisionOutput(image_embeds=out.image_embeds.float().cpu(),
                            last_hidden_state=out.last_hidden_state.float().cpu(),
                            penultimate_hidden_states=out.hidden_states[-2].float().cpu())
