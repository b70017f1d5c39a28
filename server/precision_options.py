"""ComfyUI's precision and VRAM flags on ``loom serve`` and ``loom run``.

Every flag is accepted as ComfyUI spells it, so launch scripts keep working; what each
one does in Loom is in :mod:`diffusion.memory_policy` (and the README).  A flag Loom
cannot honour prints one warning line at start-up; none is ever a start-up error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

#: (flag, help) — store_true flags, in ComfyUI's spelling.
_PRECISION = (
    ("--force-fp32", "compute in float32 everywhere"),
    ("--force-fp16", "compute the UNet and text encoders in float16"),
    ("--fp32-unet", "UNet in float32"), ("--fp64-unet", "UNet in float64"),
    ("--bf16-unet", "UNet in bfloat16"), ("--fp16-unet", "UNet in float16"),
    ("--fp8_e4m3fn-unet", "accepted; fp8 weight storage is not implemented (warning)"),
    ("--fp8_e5m2-unet", "accepted; fp8 weight storage is not implemented (warning)"),
    ("--fp8_e8m0fnu-unet", "accepted; fp8 weight storage is not implemented (warning)"),
    ("--fp16-vae", "VAE in float16 (may overflow to black images)"), ("--fp32-vae", "VAE in float32"),
    ("--bf16-vae", "VAE in bfloat16"),
    ("--fp16-text-enc", "text encoders in float16"), ("--fp32-text-enc", "text encoders in float32"),
    ("--bf16-text-enc", "text encoders in bfloat16"),
    ("--fp8_e4m3fn-text-enc", "accepted; fp8 weight storage is not implemented (warning)"),
    ("--fp8_e5m2-text-enc", "accepted; fp8 weight storage is not implemented (warning)"),
    ("--cpu-vae", "accepted for ComfyUI compatibility; no effect (warning)"),
)
_VRAM = (
    ("--gpu-only", "keep every model on the GPU; never move one back to the CPU"),
    ("--highvram", "keep models on the GPU between prompts (Loom's default)"),
    ("--normalvram", "the default: models stay on the GPU, least recently used move out when room is needed"),
    ("--lowvram", "only the model in use is on the GPU"),
    ("--novram", "as --lowvram"),
    ("--disable-smart-memory", "as --lowvram: move models back to the CPU as soon as another is used"),
)


def add_precision_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("precision and GPU memory (ComfyUI's flags)")
    for flag, help_text in _PRECISION + _VRAM:
        group.add_argument(flag, action="store_true", help=help_text)
    group.add_argument("--reserve-vram", type=float, default=None, metavar="GB",
                       help="GPU memory to leave free when placing a model")


def memory_policy(args: Any, warn=None) -> Any:
    """The ``MemoryPolicy`` for parsed arguments (flags a namespace lacks count as not
    given); each flag Loom cannot honour is reported once through ``warn``."""
    from diffusion.memory_policy import policy_from_flags

    policy = policy_from_flags(args)
    for line in policy.warnings:
        (warn or (lambda text: print(f"loom: {text}", file=sys.stderr, flush=True)))(line)
    return policy
