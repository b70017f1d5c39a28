"""ComfyUI's ``node_helpers``: the small helpers packs call from their nodes."""

from __future__ import annotations

import hashlib
from typing import Any, Callable, Mapping, Sequence


def conditioning_set_values(conditioning: Sequence, values: Mapping[str, Any] | None = None,
                            append: bool = False) -> list:
    """Each ``[cond, meta]`` entry with ``values`` set in a copy of its meta;
    with ``append``, a value already there is extended (``old + new``), as for
    lists of hooks or reference latents."""
    values = dict(values or {})
    out = []
    for entry in conditioning:
        cond, meta = entry[0], dict(entry[1])
        for key, value in values.items():
            old = meta.get(key)
            meta[key] = old + value if append and old is not None else value
        out.append([cond, meta])
    return out


def pillow(fn: Callable[[Any], Any], arg: Any) -> Any:
    """``fn(arg)`` for a PIL call, retried once with truncated images allowed
    (files cut short by an interrupted upload still open, as in ComfyUI)."""
    from PIL import ImageFile, UnidentifiedImageError

    try:
        return fn(arg)
    except (OSError, UnidentifiedImageError, ValueError):
        before = ImageFile.LOAD_TRUNCATED_IMAGES
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        try:
            return fn(arg)
        finally:
            ImageFile.LOAD_TRUNCATED_IMAGES = before


def image_alpha_fix(destination: Any, source: Any) -> tuple[Any, Any]:
    """Make two ``[B, H, W, C]`` images agree on an alpha channel: the source
    loses one the destination lacks; a destination lacking one gets it opaque."""
    import torch

    if destination.shape[-1] < source.shape[-1]:
        source = source[..., :destination.shape[-1]]
    elif destination.shape[-1] > source.shape[-1]:
        source = torch.cat([source, torch.ones_like(source[..., :1])], dim=-1)
    return destination, source


def hasher() -> Callable[..., Any]:
    """The hash constructor for file comparisons (``--default-hashing-function``; sha256)."""
    from comfy.cli_args import args

    return getattr(hashlib, str(getattr(args, "default_hashing_function", "sha256")), hashlib.sha256)


def string_to_torch_dtype(name: str) -> Any:
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}.get(name)


def image_equals(first: Any, second: Any) -> bool:
    import torch

    return first.shape == second.shape and bool(torch.equal(first, second))


def __getattr__(name: str) -> Any:
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
