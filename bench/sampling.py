"""Sampling overhead and loading memory, measured in one run.

1. Loom's KSampler node vs a plain diffusers denoising loop doing the same work
   (euler/normal, same steps, cfg, size, cond+uncond batched), interleaved, on the
   tiny model and on a full-size SD1.5-shaped random-weight model at 512×512, 2 steps.
   Prints the time ratio (target ≤ 1.03).
2. Peak RSS of a fresh process after loading a full-size SD1.5-shaped checkpoint
   through the model manager, against the file size (target ≤ 1.2×).

    .venv/bin/python bench/sampling.py [--reps N] [--workdir DIR] [--skip-full] [--flux]

With ``--flux``, also Loom's KSampler on a Flux-shaped transformer vs a plain diffusers
flow-matching loop on the same σ (bench/flux_sampling.py; target ≤ 1.03).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, in_channels=4, out_channels=4, sample_size=64,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SD15_VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
                sample_size=512)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)


def make_full_checkpoint(path: Path) -> None:
    """A random-weight SD1.5-shaped single-file checkpoint (fp32, original keys)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.fixtures.tiny_models import clip_l_to_ldm, unet_to_ldm, vae_to_ldm

    torch.manual_seed(0)
    sd = {}
    unet = UNet2DConditionModel(**SD15_UNET)
    sd.update(unet_to_ldm(unet.state_dict(), 2, [False, True, True, True]))
    del unet
    sd.update(vae_to_ldm(AutoencoderKL(**SD15_VAE).state_dict(), 4))
    sd.update(clip_l_to_ldm(CLIPTextModel(CLIPTextConfig(**CLIP_L)).state_dict(), "cond_stage_model.transformer."))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def _rss_child(path: str) -> None:
    import resource

    import psutil
    import torch  # noqa: F401  (library pages count separately from the model)
    import diffusers  # noqa: F401
    import transformers  # noqa: F401
    from diffusion.memory import ModelManager

    base = psutil.Process().memory_info().rss
    t = time.perf_counter()
    ModelManager(device="cpu").load_checkpoint(path)
    elapsed = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"{base} {peak} {elapsed}")


def measure_rss(path: Path) -> None:
    out = subprocess.run([sys.executable, __file__, "--rss-child", str(path)], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    base, peak, elapsed = out.stdout.strip().splitlines()[-1].split()
    size = path.stat().st_size
    base, peak = int(base), int(peak)
    print(f"load full-size SD1.5-shaped checkpoint: file {size / 2**30:.2f} GiB, load {float(elapsed):.1f} s")
    print(f"  peak RSS {peak / 2**30:.2f} GiB = {peak / size:.2f}× file "
          f"(libraries before loading: {base / 2**30:.2f} GiB; model part {(peak - base) / size:.2f}× file)")


def _context():
    from types import SimpleNamespace

    from engine.node import NodeContext

    return NodeContext(node_id="3", display_node_id="3", prompt_id="bench", prompt={}, extra_data={},
                       env=SimpleNamespace(preview_method="none"), report_progress=lambda *a: None,
                       is_interrupted=lambda: False)


def _plain_loop(model, pos, neg, latent, seed, steps, cfg):
    """What a hand-written diffusers loop does for euler/normal: diffusers' Euler
    scheduler, given ComfyUI's σ and timesteps (what the KSampler steps through)."""
    import torch

    from tests.diffusion.reference_schedulers import plan

    sched = plan("euler", "normal").scheduler
    sched.set_timesteps(steps)
    generator = torch.manual_seed(seed)
    x = torch.randn(latent.shape, generator=generator) * sched.init_noise_sigma
    context = torch.cat([neg, pos])
    with torch.inference_mode():
        for t in sched.timesteps:
            x_in = sched.scale_model_input(torch.cat([x, x]), t)
            out = model.unet(x_in, t, encoder_hidden_states=context).sample
            uncond, cond = out.chunk(2)
            x = sched.step(uncond + cfg * (cond - uncond), t, x).prev_sample
    return x


def compare(label: str, model, width: int, reps: int, steps: int, cfg: float = 7.0) -> None:
    import torch

    from nodes.sampling import KSampler

    dim = model.unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(0)
    pos, neg = torch.randn(1, 77, dim, generator=g), torch.randn(1, 77, dim, generator=g)
    latent = torch.zeros(1, 4, width // 8, width // 8)
    ctx = _context()

    def loom():
        return KSampler.fn(ctx, model, 1, steps, cfg, "euler", "normal", [[pos, {}]], [[neg, {}]],
                           {"samples": latent}, 1.0)["samples"]

    def plain():
        return _plain_loop(model, pos, neg, latent, 1, steps, cfg)

    # The KSampler's LATENT is the VAE's raw latent (ComfyUI's convention); the plain loop
    # ends in the model's space, so the two are compared there.
    assert torch.allclose(model.latent_format.process_in(loom()), plain(), atol=1e-3), \
        "the two loops must do the same work"
    # Time inside the UNet separately: the difference outside it is Loom's own overhead.
    unet_forward, in_unet = model.unet.forward, [0.0]

    def timed_forward(*args, **kwargs):
        t = time.perf_counter()
        try:
            return unet_forward(*args, **kwargs)
        finally:
            in_unet[0] += time.perf_counter() - t

    model.unet.forward = timed_forward
    times: dict[str, list[float]] = {"loom": [], "plain": []}
    unet: dict[str, list[float]] = {"loom": [], "plain": []}
    try:
        for rep in range(reps):
            # ABBA order: neither loop always runs first (allocator and cache state).
            order = (("loom", loom), ("plain", plain)) if rep % 2 == 0 else (("plain", plain), ("loom", loom))
            for name, fn in order:
                in_unet[0] = 0.0
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
                unet[name].append(in_unet[0])
    finally:
        del model.unet.forward
    loom_t, plain_t = statistics.median(times["loom"]), statistics.median(times["plain"])
    outside = {name: statistics.median(t - u for t, u in zip(times[name], unet[name])) for name in times}
    print(f"{label}: Loom KSampler {loom_t:.3f} s, plain diffusers loop {plain_t:.3f} s, "
          f"ratio {loom_t / plain_t:.3f} (median of {reps}, interleaved ABBA); "
          f"best-of ratio {min(times['loom']) / min(times['plain']):.3f}")
    print(f"  outside the UNet: Loom {outside['loom'] * 1000:.1f} ms, plain {outside['plain'] * 1000:.1f} ms per run "
          f"(= {(outside['loom'] - outside['plain']) / plain_t * 100:+.2f}% of the plain loop)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--full-reps", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/loom-bench"))
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--rss-child")
    parser.add_argument("--flux", action="store_true",
                        help="also a Flux-shaped transformer (3072 wide, 1+1 blocks), 256×256: bench/flux_sampling.py")
    args = parser.parse_args()
    if args.rss_child:
        return _rss_child(args.rss_child)
    import torch

    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_models import build

    args.workdir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    tiny = build("sd1", args.workdir / "tiny")
    manager = ModelManager(device="cpu")
    compare("tiny SD1 64×64, 4 steps", manager.load_checkpoint(tiny.checkpoint)[0], 64, args.reps, 4)
    if args.flux:  # the KSampler on a flow transformer vs a plain diffusers FluxPipeline-style loop
        from diffusers import FluxTransformer2DModel

        from bench.flux_sampling import FLUX_SHAPED, compare as compare_flux, flow_model

        torch.manual_seed(0)
        compare_flux("Flux-shaped (3072 wide, 1+1 blocks) 256×256, 2 steps",
                     flow_model(FluxTransformer2DModel(**FLUX_SHAPED).eval()), 256, args.full_reps, 2)
    if args.skip_full:
        return
    full = args.workdir / "sd15_shaped_random.safetensors"
    if not full.exists():
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"import bench.sampling as b; b.make_full_checkpoint(__import__('pathlib').Path({str(full)!r}))"],
                       check=True, cwd=ROOT)
        print(f"(built {full.name} in {time.perf_counter() - t:.0f} s)")
    measure_rss(full)
    model = manager.load_checkpoint(full)[0]
    compare("full-size SD1.5 UNet 512×512, 2 steps", model, 512, args.full_reps, 2)


if __name__ == "__main__":
    main()
