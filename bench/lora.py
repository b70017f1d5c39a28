"""LoRA patch/unpatch cost on a full-size SD1.5-shaped UNet (random weights).

A rank-16 LoRA over every attention projection (to_q/k/v/out, 16 transformer blocks,
self and cross attention) plus proj_in/proj_out and the feed-forward layers is
patched into the shared UNet and removed again; prints time and peak RSS growth.

    .venv/bin/python bench/lora.py
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    import torch
    from diffusers import UNet2DConditionModel

    from diffusion.lora import apply_patches, parse_lora, resolve
    from tests.fixtures.tiny_extras import kohya_lora_state

    torch.set_num_threads(2)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8).eval().requires_grad_(False)
    size_mb = sum(p.numel() * p.element_size() for p in unet.parameters()) / 2**20
    state = kohya_lora_state(unet, rank=16, alpha=8.0)
    lora = parse_lora(state, "bench_rank16.safetensors")
    patch = resolve(lora, "unet", unet, 1.0)
    patched_mb = sum(unet.state_dict()[n].numel() * 4 for n, _ in patch.layers) / 2**20
    original = {n: unet.state_dict()[n].clone() for n, _ in patch.layers}
    gc.collect()
    base = rss_mb()
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    apply_patches(unet, (patch,))
    t_patch = time.perf_counter() - t0
    after_patch = rss_mb()
    t0 = time.perf_counter()
    apply_patches(unet, ())
    t_unpatch = time.perf_counter() - t0
    exact = all(torch.equal(original[n], unet.state_dict()[n]) for n in original)
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"UNet: {size_mb:.0f} MiB fp32; LoRA: {len(patch.layers)} layers, rank 16, "
          f"{patched_mb:.0f} MiB of weights patched")
    print(f"patch: {t_patch:.2f} s, unpatch (restore): {t_unpatch:.2f} s, exact restore: {exact}")
    print(f"RSS while patched: +{after_patch - base:.0f} MiB (the saved originals); "
          f"process peak grew by {max(0.0, peak_after - peak_before):.0f} MiB")
    tuple_ = (patch,)
    apply_patches(unet, tuple_)
    t0 = time.perf_counter()
    apply_patches(unet, tuple_)  # same tuple again (next sampling step, same handle): nothing to do
    print(f"re-apply of the tuple already applied: {(time.perf_counter() - t0) * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
