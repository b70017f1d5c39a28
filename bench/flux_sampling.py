"""Flow-model sampling overhead: Loom's KSampler on a FLUX.1 or SD3 transformer vs a plain diffusers loop.

Both step the same Flux-shaped transformer (full width: 3072, 24 heads of 128, T5 width
4096, CLIP-L 768; one double and one single block, so a CPU can run it) through the same σ
(Loom's ``simple`` schedule on FLUX.1 dev's table) with euler, guidance 3.5, cfg 1, at
256×256 (``--width``) with 256 T5 tokens; the plain loop is what a hand-written diffusers loop does:
pack the latents, call the transformer, FlowMatchEulerDiscreteScheduler.step.  Runs are
interleaved ABBA; the ratio of medians is printed (target ≤ 1.03).  ``--sd3`` adds an
SD3.5-large-shaped MMDiT (2432 wide, 38 heads of 64, q/k RMS norms, one block) on SD3's σ
(shift 3) at cfg 4.5 — positive and negative, as StableDiffusion3Pipeline runs them, in one batch.

    .venv/bin/python bench/flux_sampling.py [--reps N] [--tiny] [--sd3]
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

FLUX_SHAPED = dict(num_layers=1, num_single_layers=1, guidance_embeds=True)  # full widths by default
SD35_LARGE_SHAPED = dict(num_layers=1, attention_head_dim=64, num_attention_heads=38, joint_attention_dim=4096,
                         caption_projection_dim=2432, pooled_projection_dim=2048, pos_embed_max_size=192,
                         qk_norm="rms_norm")


def flow_model(transformer):
    import torch

    from diffusion.flux_model import DEFAULT_SAMPLING, FlowModel
    from diffusion.latent_formats import FLUX
    from diffusion.memory import ModelManager

    return FlowModel(transformer, "flux", "flow", FLUX, ModelManager(device="cpu"), source="bench",
                     sampling=DEFAULT_SAMPLING["dev"], variant="dev", guidance_embed=True,
                     compute_dtype=torch.float32)


def sd3_model(transformer):
    import torch

    from diffusion.memory import ModelManager
    from diffusion.sd3_model import sd3_flow_model
    from diffusion.sd3_files import SD3Architecture

    manager = ModelManager(device="cpu")
    model = sd3_flow_model(transformer, SD3Architecture("sd35_large", "diffusers", "", {}), manager, "bench")
    return model.clone(compute_dtype=torch.float32)


def _plain_sd3_loop(model, context, pooled, negative, noise, sigmas, cfg):
    """What StableDiffusion3Pipeline's denoising loop does: both prompts in one batch."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    sched = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    sched.set_timesteps(sigmas=sigmas[:-1])
    ctx, pool = torch.cat([negative[0], context]), torch.cat([negative[1], pooled])
    x = noise
    with torch.inference_mode():
        for t in sched.timesteps:
            v = model.unet(hidden_states=torch.cat([x, x]), encoder_hidden_states=ctx, pooled_projections=pool,
                           timestep=t.expand(2), return_dict=False)[0]
            uncond, cond = v.chunk(2)
            x = sched.step(uncond + cfg * (cond - uncond), t, x).prev_sample
    return model.latent_format.process_out(x)


def compare_sd3(label: str, model, width: int, reps: int, steps: int, cfg: float = 4.5) -> float:
    import torch

    from bench.sampling import _context
    from diffusion.noise import prepare_noise
    from diffusion.sampling import ksampler_steps, model_sigmas
    from nodes.sampling import KSampler

    c = model.unet.config
    g = torch.Generator().manual_seed(0)
    pos = (torch.randn(1, 154, c.joint_attention_dim, generator=g), torch.randn(1, c.pooled_projection_dim, generator=g))
    neg = (torch.randn(1, 154, c.joint_attention_dim, generator=g), torch.randn(1, c.pooled_projection_dim, generator=g))
    latent = torch.zeros(1, 16, width // 8, width // 8)
    sigmas = ksampler_steps("euler", "simple", steps, table=model_sigmas(model))
    noise = prepare_noise(latent, 1)
    ctx = _context()
    positive, negative = [[pos[0], {"pooled_output": pos[1]}]], [[neg[0], {"pooled_output": neg[1]}]]

    def loom():
        return KSampler.fn(ctx, model, 1, steps, cfg, "euler", "simple", positive, negative, {"samples": latent},
                           1.0)["samples"]

    def plain():
        return _plain_sd3_loop(model, *pos, neg, noise, sigmas, cfg)

    return _time(label, loom, plain, reps)


def _plain_loop(model, context, pooled, noise, sigmas, guidance):
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler

    from diffusion.flux_sampling import image_ids, pack, unpack

    sched = FlowMatchEulerDiscreteScheduler(shift=1.0, use_dynamic_shifting=False)
    sched.set_timesteps(sigmas=sigmas[:-1])
    b, c, h, w = noise.shape
    x = pack(noise)
    img, txt = image_ids(h // 2, w // 2), torch.zeros(context.shape[1], 3)
    g = torch.full((b,), guidance)
    with torch.inference_mode():
        for t in sched.timesteps:
            v = model.unet(hidden_states=x, encoder_hidden_states=context, pooled_projections=pooled,
                           timestep=(t / 1000).expand(b), img_ids=img, txt_ids=txt, guidance=g, return_dict=False)[0]
            x = sched.step(v, t, x).prev_sample
    return model.latent_format.process_out(unpack(x, h, w))


def compare(label: str, model, width: int, reps: int, steps: int) -> float:
    import torch

    from bench.sampling import _context
    from diffusion.noise import prepare_noise
    from diffusion.sampling import ksampler_steps, model_sigmas
    from nodes.sampling import KSampler

    cfg = model.unet.config
    g = torch.Generator().manual_seed(0)
    context = torch.randn(1, 256, cfg.joint_attention_dim, generator=g)
    pooled = torch.randn(1, cfg.pooled_projection_dim, generator=g)
    cond = [[context, {"pooled_output": pooled, "guidance": 3.5}]]
    latent = torch.zeros(1, 16, width // 8, width // 8)
    sigmas = ksampler_steps("euler", "simple", steps, table=model_sigmas(model))
    noise = prepare_noise(latent, 1)
    ctx = _context()

    def loom():
        return KSampler.fn(ctx, model, 1, steps, 1.0, "euler", "simple", cond, cond, {"samples": latent}, 1.0)["samples"]

    def plain():
        return _plain_loop(model, context, pooled, noise, sigmas, 3.5)

    return _time(label, loom, plain, reps)


def _time(label: str, loom, plain, reps: int) -> float:
    import torch

    a, b = loom(), plain()
    assert torch.allclose(a, b, atol=1e-3 * max(1.0, float(b.abs().max()))), "the two loops must do the same work"
    times: dict[str, list[float]] = {"loom": [], "plain": []}
    for rep in range(reps):
        order = (("loom", loom), ("plain", plain)) if rep % 2 == 0 else (("plain", plain), ("loom", loom))
        for name, fn in order:
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    ratio = statistics.median(times["loom"]) / statistics.median(times["plain"])
    print(f"{label}: Loom KSampler {statistics.median(times['loom']):.3f} s, plain diffusers loop "
          f"{statistics.median(times['plain']):.3f} s, ratio {ratio:.3f} (median of {reps}, ABBA); "
          f"best-of ratio {min(times['loom']) / min(times['plain']):.3f}")
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--width", type=int, default=256, help="image size of the Flux-shaped run")
    parser.add_argument("--tiny", action="store_true", help="the tiny test transformer only")
    parser.add_argument("--sd3", action="store_true", help="also an SD3.5-large-shaped MMDiT (one block)")
    args = parser.parse_args()
    import torch
    from diffusers import FluxTransformer2DModel

    from tests.fixtures.tiny_flux import tiny_transformer

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    compare("tiny Flux 64×64", flow_model(tiny_transformer()), 64, args.reps, 4)
    if args.tiny:
        return
    torch.manual_seed(0)
    full = FluxTransformer2DModel(**FLUX_SHAPED).eval()
    compare(f"Flux-shaped (3072 wide, 1+1 blocks) {args.width}×{args.width}, 256 T5 tokens", flow_model(full),
            args.width, args.reps, args.steps)
    if args.sd3:
        from diffusers import SD3Transformer2DModel

        del full
        torch.manual_seed(0)
        compare_sd3(f"SD3.5-large-shaped (2432 wide, 1 block) {args.width}×{args.width}, cfg 4.5, 154 tokens",
                    sd3_model(SD3Transformer2DModel(**SD35_LARGE_SHAPED).eval()), args.width, args.reps, args.steps)


if __name__ == "__main__":
    main()
