"""Precision and device-memory policy from ComfyUI's command-line flags (torch-free).

Launch scripts written for ComfyUI pass flags such as ``--force-fp16``, ``--bf16-unet``,
``--fp32-vae`` or ``--lowvram``; Loom accepts every one of them as ComfyUI spells it.
:func:`policy_from_flags` turns the flags into a :class:`MemoryPolicy` (plus a one-line
warning for each flag Loom cannot honour — never an error), and :func:`component_dtypes`
gives the dtype of each component for a device:

* CPU: float32 everywhere (exact, and half precision is 30-600x slower there);
* CUDA with bf16: bfloat16 everywhere, the VAE included (bf16 has fp32's range);
* other GPUs (older CUDA, MPS): float16, with a float32 VAE (fp16 VAEs overflow);
* a per-component flag (``--fp16-unet``, ``--bf16-vae``, ``--fp32-text-enc`` ...) beats
  ``--force-fp16`` / ``--force-fp32``, which beat the device default.

Device memory modes (only mean something on a GPU):

* ``--gpu-only``: every model stays on the device; none is moved back to the CPU;
* ``--highvram`` / ``--normalvram`` (default): models stay on the device between prompts
  and the least recently used go back to the CPU when room is needed;
* ``--lowvram`` / ``--novram`` / ``--disable-smart-memory``: only the model in use is on
  the device; using another moves the others back to the CPU first;
* ``--reserve-vram GB``: that much device memory is left free when placing a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

#: dtype names as torch spells them (``getattr(torch, name)``).
DTYPES = ("float64", "float32", "bfloat16", "float16")

#: flag (argparse dest) → (component, dtype); ComfyUI's mutually exclusive groups.
COMPONENT_FLAGS: dict[str, tuple[str, str]] = {
    "fp32_unet": ("unet", "float32"), "fp64_unet": ("unet", "float64"),
    "bf16_unet": ("unet", "bfloat16"), "fp16_unet": ("unet", "float16"),
    "fp16_vae": ("vae", "float16"), "fp32_vae": ("vae", "float32"), "bf16_vae": ("vae", "bfloat16"),
    "fp16_text_enc": ("text", "float16"), "fp32_text_enc": ("text", "float32"),
    "bf16_text_enc": ("text", "bfloat16"),
}
#: flags accepted but not honoured: fp8 *storage* with a wider compute dtype needs
#: per-layer casting that diffusers' modules do not do.
FP8_FLAGS = ("fp8_e4m3fn_unet", "fp8_e5m2_unet", "fp8_e8m0fnu_unet", "fp8_e4m3fn_text_enc", "fp8_e5m2_text_enc")
VRAM_FLAGS = {"gpu_only": "gpu-only", "highvram": "high", "normalvram": "normal", "lowvram": "low", "novram": "no"}
#: ComfyUI flags Loom accepts so launch scripts keep working, with nothing to do.
IGNORED_FLAGS = ("cpu_vae", "supports_fp8_compute", "force_channels_last", "fp16_intermediates")


@dataclass(frozen=True)
class MemoryPolicy:
    """What the model manager is asked to do, independent of the device it finds."""

    unet: str | None = None          # a dtype name from DTYPES, or None for the device default
    text: str | None = None
    vae: str | None = None
    force: str | None = None         # "float16" | "float32" (--force-fp16 / --force-fp32)
    vram: str = "normal"             # "gpu-only" | "high" | "normal" | "low" | "no"
    smart_memory: bool = True        # False: --disable-smart-memory
    reserve_vram_gb: float = 0.0
    warnings: tuple[str, ...] = field(default=(), compare=False)

    @property
    def exclusive(self) -> bool:
        """Only the model in use may be on the device."""
        return self.vram in ("low", "no") or not self.smart_memory

    @property
    def evicts(self) -> bool:
        """Models may be moved back to the CPU to make room."""
        return self.vram != "gpu-only"


def policy_from_flags(flags: Mapping[str, Any] | Any) -> MemoryPolicy:
    """The policy for parsed flags (an argparse namespace or a dict of dest → value;
    absent flags count as not given).  Never raises for a flag combination: conflicts
    argparse lets through resolve the way ComfyUI's do, and flags Loom can't honour
    become warnings on the policy."""
    get = flags.get if isinstance(flags, Mapping) else (lambda name, default=None: getattr(flags, name, default))
    warnings: list[str] = []
    chosen: dict[str, str] = {}
    for dest, (component, dtype) in COMPONENT_FLAGS.items():
        if get(dest) and component not in chosen:
            chosen[component] = dtype
    for dest in FP8_FLAGS:
        if get(dest):
            what = "UNet" if dest.endswith("unet") else "text encoder"
            warnings.append(f"--{dest.replace('_unet', '-unet').replace('_text_enc', '-text-enc')}: fp8 weight "
                            f"storage is not implemented; the {what} keeps its usual dtype")
    force = "float32" if get("force_fp32") else "float16" if get("force_fp16") else None
    vram = "normal"
    for dest, mode in VRAM_FLAGS.items():
        if get(dest):
            vram = mode
            break
    reserve = get("reserve_vram")
    try:
        reserve_gb = max(0.0, float(reserve)) if reserve is not None else 0.0
    except (TypeError, ValueError):
        warnings.append(f"--reserve-vram {reserve!r} is not a number of GB; ignored")
        reserve_gb = 0.0
    for dest in IGNORED_FLAGS:
        if get(dest):
            warnings.append(f"--{dest.replace('_', '-')} is accepted for ComfyUI compatibility and has no effect in Loom")
    return MemoryPolicy(unet=chosen.get("unet"), text=chosen.get("text"), vae=chosen.get("vae"), force=force,
                        vram=vram, smart_memory=not get("disable_smart_memory"), reserve_vram_gb=reserve_gb,
                        warnings=tuple(warnings))


def component_dtypes(policy: MemoryPolicy, device_type: str, bf16_supported: bool = False) -> dict[str, str]:
    """``{"unet": ..., "text": ..., "vae": ...}`` dtype names for ``device_type``
    ("cpu", "cuda", "mps") under ``policy``."""
    if device_type == "cpu":
        base = {"unet": "float32", "text": "float32", "vae": "float32"}
    elif device_type == "cuda" and bf16_supported:
        base = {"unet": "bfloat16", "text": "bfloat16", "vae": "bfloat16"}
    else:
        base = {"unet": "float16", "text": "float16", "vae": "float32"}
    if policy.force == "float32":
        base = {"unet": "float32", "text": "float32", "vae": "float32"}
    elif policy.force == "float16":
        base = {**base, "unet": "float16", "text": "float16"}  # the VAE keeps its safe default
    for component in base:
        chosen = getattr(policy, component)
        if chosen is not None:
            base[component] = chosen
    return base


def device_notes(policy: MemoryPolicy, device_type: str) -> list[str]:
    """One line per requested behaviour that cannot apply on this device."""
    notes = []
    if device_type == "cpu":
        if policy.vram not in ("normal", "high"):
            notes.append(f"--{ {'gpu-only': 'gpu-only', 'low': 'lowvram', 'no': 'novram'}[policy.vram]} "
                         "has no effect on the CPU (models are already in main memory)")
        if not policy.smart_memory:
            notes.append("--disable-smart-memory has no effect on the CPU")
        if policy.reserve_vram_gb:
            notes.append("--reserve-vram has no effect on the CPU")
        dtypes = component_dtypes(policy, device_type)
        half = sorted(c for c, d in dtypes.items() if d in ("float16", "bfloat16"))
        if half:
            notes.append(f"half precision on the CPU ({', '.join(half)}) is much slower than float32")
    return notes
