"""What the interrupt hook costs: UNet forwards with and without it, in one run.

``diffusion.interrupt_hooks`` installs one global forward pre-hook so an interrupt
stops any model mid-forward; every module call then takes torch's hooked path.
This times the same UNet forward (batch 2, cond+uncond as the KSampler runs it),
interleaved with/without the hook, inside a running node's context (so the hook
really reads the flag), and prints the median ratio (target <= 1.02 on the
full-size model; the tiny model shows the worst case, where Python dominates).

    .venv/bin/python bench/interrupt_hooks.py [--reps N] [--device cpu|cuda] [--latent 64] [--skip-full]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sampling import SD15_UNET  # noqa: E402  (the full-size shape, defined once)

TINY_UNET = dict(block_out_channels=(32, 64, 64, 64), layers_per_block=2, cross_attention_dim=32,
                 attention_head_dim=8, in_channels=4, out_channels=4, sample_size=8,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)


def node_context():
    """A running node's context, as the executor sets it, with a flag that stays clear."""
    from engine.interrupt import InterruptFlag
    from engine.node import NodeContext, current_context

    flag = InterruptFlag()
    ctx = NodeContext(node_id="1", display_node_id="1", prompt_id="bench", prompt={}, extra_data={}, env=None,
                      report_progress=lambda *a: None, is_interrupted=flag.is_set, interrupt=flag)
    return current_context.set(ctx)


def measure(name: str, config: dict, latent: int, reps: int, device: str) -> float:
    import torch
    from diffusers import UNet2DConditionModel

    from diffusion import interrupt_hooks
    from engine.interrupt import raise_if_interrupted

    dtype = torch.float16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval()
    if device != "cpu":
        unet = unet.to(device, dtype)
    x = torch.randn(2, 4, latent, latent, device=device, dtype=dtype)
    t = torch.tensor([500, 500], device=device)
    context = torch.randn(2, 77, config["cross_attention_dim"], device=device, dtype=dtype)
    counted = []
    counting = torch.nn.modules.module.register_module_forward_pre_hook(lambda m, a: counted.append(1))
    with torch.inference_mode():
        unet(x, t, encoder_hidden_states=context)
    counting.remove()
    calls = len(counted)  # module calls per forward: how often the hook runs

    def once() -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.inference_mode():
            unet(x, t, encoder_hidden_states=context)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    once(), once()  # warm-up
    plain, hooked = [], []
    for _ in range(reps):
        interrupt_hooks.uninstall()
        plain.append(once())
        interrupt_hooks.install(raise_if_interrupted)
        hooked.append(once())
    interrupt_hooks.uninstall()
    ratio = statistics.median(h / p for h, p in zip(hooked, plain))
    print(f"{name:>10}: {calls} module calls/forward, latent {latent}², plain {statistics.median(plain) * 1000:8.1f} ms, "
          f"hooked {statistics.median(hooked) * 1000:8.1f} ms, ratio {ratio:.3f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--latent", type=int, default=32, help="full-size latent side (64 = 512² image)")
    parser.add_argument("--skip-full", action="store_true")
    args = parser.parse_args()
    node_context()
    measure("tiny", TINY_UNET, 8, args.reps * 3, args.device)
    if not args.skip_full:
        measure("SD1.5", SD15_UNET, args.latent, args.reps, args.device)


if __name__ == "__main__":
    main()
