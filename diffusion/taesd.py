"""TAESD: the tiny decoders that turn a latent into a preview image in one cheap pass.

The files are madebyollin's ``taesd_decoder`` family, found in ``models/vae_approx``
by the start of their name, as ComfyUI finds them (``taesd_decoder.safetensors``
or ``.pth`` for SD1.x/SD2.x, ``taesdxl_decoder`` for SDXL, ``taesd3_decoder`` for SD3,
``taef1_decoder`` for Flux).  Each holds one ``nn.Sequential`` decoder::

    0 Clamp   1 conv(C→w)   2 ReLU   3-5 Block×3   6 Upsample   7 conv(w→w, no bias)
    8-10 Block×3   11 Upsample   12 conv   13-15 Block×3   16 Upsample   17 conv
    18 Block   19 conv(w→3)

with ``{i}.weight``/``{i}.bias`` for a conv and ``{i}.conv.{0,2,4}.*`` for a block
(w = 64 in the released files).  diffusers' ``AutoencoderTiny`` decoder
(``DecoderTiny``) is the same network without the Clamp entry, which it applies in
``forward``: key ``{i}.*`` is its ``layers.{i-1}.*``.  The module is built on the
meta device and the file's tensors are assigned into it.

**Which latent it takes**: the *model-space* latent — what the UNet sees and what
the sampler's step callback gives (for SD1.x/SDXL the VAE's latent times its
``scaling_factor``), not the raw VAE latent.  Its output is RGB in [-1, 1].
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import ModelLoadError

#: ComfyUI's ``taesd_decoder_name`` per latent family (Loom's ``LatentFormat.name``).
DECODER_NAMES: dict[str, str] = {
    "sd15": "taesd_decoder",
    "sdxl": "taesdxl_decoder",
    "sd3": "taesd3_decoder",
    "flux": "taef1_decoder",
}
#: Blocks per stage of the released decoders (diffusers' ``num_decoder_blocks``).
DECODER_BLOCKS = (3, 3, 3, 1)
#: File name endings a decoder may have.
EXTENSIONS = (".safetensors", ".pth", ".pt", ".bin")
#: Prefixes a combined TAESD file puts before the decoder's keys.
_PREFIXES = ("taesd_decoder.", "decoder.layers.", "decoder.")


def decoder_file(names: Iterable[str], family: str) -> str | None:
    """The first of ``names`` (a vae_approx listing) that is ``family``'s decoder, or None."""
    prefix = DECODER_NAMES.get(family)
    if prefix is None:
        return None
    for name in sorted(names):
        base = name.replace("\\", "/").rsplit("/", 1)[-1]
        if base.startswith(prefix) and base.lower().endswith(EXTENSIONS):
            return name
    return None


@dataclass(frozen=True)
class DecoderShape:
    latent_channels: int
    width: int


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Any]:
    for prefix in _PREFIXES:
        if any(k.startswith(prefix) for k in state):
            if prefix == "decoder.layers.":  # already diffusers' layout: back to the file's indices
                return {f"{int(k.split('.')[2]) + 1}.{k.split('.', 3)[3]}": v
                        for k, v in state.items() if k.startswith(prefix)}
            return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    return dict(state)


def expected_keys(shape: DecoderShape) -> dict[str, tuple[int, ...]]:
    """Every key (and shape) of a released-layout decoder with these sizes."""
    c, w = shape.latent_channels, shape.width
    keys: dict[str, tuple[int, ...]] = {"1.weight": (w, c, 3, 3), "1.bias": (w,)}
    index = 3
    for stage, blocks in enumerate(DECODER_BLOCKS):
        for _ in range(blocks):
            for conv in (0, 2, 4):
                keys[f"{index}.conv.{conv}.weight"] = (w, w, 3, 3)
                keys[f"{index}.conv.{conv}.bias"] = (w,)
            index += 1
        if stage < len(DECODER_BLOCKS) - 1:
            index += 1  # Upsample: no weights
            keys[f"{index}.weight"] = (w, w, 3, 3)
        else:
            keys[f"{index}.weight"] = (3, w, 3, 3)
            keys[f"{index}.bias"] = (3,)
        index += 1
    return keys


def convert_decoder(state: Mapping[str, Any], what: str = "TAESD decoder") -> tuple[dict[str, Any], DecoderShape]:
    """The file's keys → ``DecoderTiny``'s (``layers.{i-1}.*``), after checking every
    key and shape against the released layout."""
    state = _strip_prefix(state)
    first = state.get("1.weight")
    if first is None or getattr(first, "ndim", 0) != 4:
        raise ModelLoadError(f"{what} is not a TAESD decoder: no first convolution '1.weight'")
    shape = DecoderShape(latent_channels=int(first.shape[1]), width=int(first.shape[0]))
    expected = expected_keys(shape)
    missing = sorted(set(expected) - set(state))
    unknown = sorted(set(state) - set(expected))
    if missing or unknown:
        raise ModelLoadError(f"{what} is not a TAESD decoder in the released layout: "
                             f"{len(missing)} keys missing (e.g. {missing[:2]}), {len(unknown)} unexpected "
                             f"(e.g. {unknown[:2]})")
    wrong = [k for k, s in expected.items() if tuple(state[k].shape) != s]
    if wrong:
        raise ModelLoadError(f"{what}: tensor {wrong[0]} has shape {list(state[wrong[0]].shape)}, "
                             f"expected {list(expected[wrong[0]])}")
    pattern = re.compile(r"^(\d+)\.(.*)$")
    converted = {}
    for key, value in state.items():
        index, rest = pattern.match(key).groups()
        converted[f"layers.{int(index) - 1}.{rest}"] = value
    return converted, shape


def build_decoder(state: Mapping[str, Any], dtype: Any = None, what: str = "TAESD decoder") -> Any:
    """diffusers' ``AutoencoderTiny`` decoder holding the file's weights (built on meta,
    weights assigned, so nothing is initialised and then overwritten)."""
    import torch
    from accelerate import init_empty_weights
    from diffusers import AutoencoderTiny

    converted, shape = convert_decoder(state, what)
    widths = (shape.width,) * len(DECODER_BLOCKS)
    with init_empty_weights():
        tiny = AutoencoderTiny(latent_channels=shape.latent_channels, decoder_block_out_channels=widths,
                               encoder_block_out_channels=widths, num_decoder_blocks=DECODER_BLOCKS)
    decoder = tiny.decoder  # the encoder stays behind on meta and is dropped with ``tiny``
    if dtype is not None:
        converted = {k: v.to(dtype) if v.is_floating_point() else v for k, v in converted.items()}
    decoder.load_state_dict(converted, strict=True, assign=True)
    decoder.latent_channels = shape.latent_channels
    return decoder.eval().requires_grad_(False).to(torch.device("cpu"))


def load_decoder(path: str | os.PathLike, dtype: Any = None) -> Any:
    """A TAESD decoder file (``.safetensors`` or a weights-only ``.pth``) as a module."""
    from .weights_file import load_state_dict

    path = Path(path)
    return build_decoder(load_state_dict(path), dtype, what=path.name)


def decode(decoder: Any, latent: Any, max_side: int | None = None) -> Any:
    """First image of a *model-space* latent batch ``[B, C, h, w]`` → ``[8h, 8w, 3]`` uint8.

    With ``max_side`` (pixels), a larger latent is first area-resized so the image
    fits: previews are shown small, and the decoder's cost grows with the area.
    """
    import torch

    param = next(decoder.parameters())
    z = latent[:1].float()
    if z.shape[1] != decoder.latent_channels:
        raise ValueError(f"latent has {z.shape[1]} channels; this TAESD decoder takes {decoder.latent_channels}")
    if max_side is not None:
        side = max(z.shape[-2:])
        limit = max(1, max_side // 8)
        if side > limit:
            size = (max(1, round(z.shape[-2] * limit / side)), max(1, round(z.shape[-1] * limit / side)))
            z = torch.nn.functional.interpolate(z, size=size, mode="area")
    with torch.inference_mode():
        rgb = decoder(z.to(param.device, param.dtype))[0].float()
    return ((rgb + 1) / 2).clamp(0, 1).mul(255).round().to(torch.uint8).permute(1, 2, 0).cpu()
