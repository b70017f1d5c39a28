"""Checkpoint loading against the disk: load time and peak memory, measured in one run.

Builds a full-size SD1.5-shaped random-weight checkpoint in the real single-file layout,
stored in fp16 as the files people download are (``--sdxl``: SDXL-shaped too, ~6.9 GB),
in a temporary folder.  Then, each in a fresh process, alternately:

* **raw read**: the file's bytes read once, front to back (16 MiB ``readinto``) — the
  floor any loader has to pay;
* **Loom load**: ``ModelManager(device="cpu").load_checkpoint`` — UNet, VAE and text
  encoders built and filled in the manager's compute dtype (float32 on the CPU).

with a warm page cache (the file read just before) and a cold one (the file's pages
dropped with ``posix_fadvise(DONTNEED)`` first; no root needed).  Prints the median
times and their ratio (target ≤ 1.2), and the load's peak RSS above the process's RSS
once the libraries are imported, against the model's size in its compute dtype
(target ≤ 1.1).

    .venv/bin/python bench/loading.py [--reps N] [--workdir DIR] [--sdxl] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]

SD15_UNET = dict(block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768,
                 attention_head_dim=8, in_channels=4, out_channels=4, sample_size=64,
                 down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SDXL_UNET = dict(block_out_channels=(320, 640, 1280), layers_per_block=2, cross_attention_dim=2048,
                 attention_head_dim=(5, 10, 20), in_channels=4, out_channels=4, sample_size=128,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 transformer_layers_per_block=(1, 2, 10), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)
VAE = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
           down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           sample_size=512)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
              num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768)
CLIP_G = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
              num_attention_heads=20, max_position_embeddings=77, hidden_act="gelu", projection_dim=1280)


# -- the random checkpoint -----------------------------------------------------------------------

def _shapes(factory) -> dict:
    """A module's state-dict shapes, without allocating its weights."""
    import torch

    with torch.device("meta"):
        module = factory()
    return {k: v for k, v in module.state_dict().items()}


def make_checkpoint(path: Path, family: str) -> None:
    """A random-weight full-size checkpoint in the original single-file keys, stored in fp16
    (the schedule buffers too, as in ``v1-5-pruned-emaonly-fp16.safetensors``)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    sys.path.insert(0, str(ROOT))
    from tests.fixtures.tiny_models import clip_l_to_ldm, open_clip_to_ldm, unet_to_ldm, vae_to_ldm

    meta = {}
    if family == "sdxl":
        meta.update(unet_to_ldm(_shapes(lambda: UNet2DConditionModel(**SDXL_UNET)), 2, [True, True, False]))
        meta.update(clip_l_to_ldm(_shapes(lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L))),
                                  "conditioner.embedders.0.transformer."))
        meta.update(open_clip_to_ldm(_shapes(lambda: CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_G))),
                                     "conditioner.embedders.1.model."))
    else:
        meta.update(unet_to_ldm(_shapes(lambda: UNet2DConditionModel(**SD15_UNET)), 2, [False, True, True, True]))
        meta.update(clip_l_to_ldm(_shapes(lambda: CLIPTextModel(CLIPTextConfig(**CLIP_L))),
                                  "cond_stage_model.transformer."))
        meta["alphas_cumprod"] = meta["betas"] = meta["alphas_cumprod_prev"] = torch.empty(1000, device="meta")
    meta.update(vae_to_ldm(_shapes(lambda: AutoencoderKL(**VAE)), 4))
    generator = torch.Generator().manual_seed(0)

    def fill(key, shape, dtype):
        if dtype == torch.int64:  # position_ids
            return torch.arange(shape[-1]).reshape(shape)
        tensor = torch.empty(shape, dtype=dtype)
        if "alphas" in key or "betas" in key:
            return tensor.uniform_(0.001, 0.999, generator=generator)
        # small random values (the loader never looks at them); norms near 1 as trained ones are
        scale = 1.0 if ("norm" in key or key.endswith(("ln_1.weight", "ln_2.weight", "ln_final.weight"))) else 0.02
        return tensor.normal_(0, scale, generator=generator) if tensor.numel() else tensor

    shapes = {k: (tuple(v.shape), torch.int64 if k.endswith("position_ids") else torch.float16) for k, v in meta.items()}
    _write_safetensors(path, shapes, fill)


def _write_safetensors(path: Path, shapes: dict, fill) -> None:
    """A safetensors file written one tensor at a time (``fill(key, shape) -> tensor``):
    never more than one tensor in memory, so an SDXL-sized file fits beside the loader."""
    import json
    import struct

    import torch

    names = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}
    header, offset, plan = {}, 0, []
    for key in sorted(shapes):
        shape, dtype = shapes[key]
        nbytes = dtype.itemsize
        for d in shape:
            nbytes *= d
        header[key] = {"dtype": names[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        plan.append((key, shape, dtype))
        offset += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for key, shape, dtype in plan:
            tensor = fill(key, shape, dtype).contiguous()
            if tensor.numel():
                f.write(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())


# -- the measurements, each in a fresh process ---------------------------------------------------

def _child(mode: str, path: str) -> None:
    import resource

    import psutil
    import torch
    import diffusers  # noqa: F401  (library pages are not the model's)
    import transformers  # noqa: F401
    from diffusers import AutoencoderKL, UNet2DConditionModel  # noqa: F401
    from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: F401

    sys.path.insert(0, os.environ.get("LOOM_BENCH_ROOT", str(ROOT)))
    from diffusion.memory import ModelManager, _module_bytes  # noqa: F401
    import diffusion.loading  # noqa: F401

    base = psutil.Process().memory_info().rss
    model_bytes = 0
    t = time.perf_counter()
    if mode == "raw":
        buffer = memoryview(bytearray(16 << 20))
        with open(path, "rb", buffering=0) as f:
            while f.readinto(buffer):
                pass
    elif mode == "memory":
        import mmap

        # the model's size in float32: each fp16 value becomes 4 bytes
        from diffusion.weights_file import SafetensorsFile

        header = SafetensorsFile(path)
        model_bytes = sum((i.end - i.start) * (2 if i.dtype == "F16" else 1) for i in header.tensors.values())
        t = time.perf_counter()
        block = mmap.mmap(-1, model_bytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
        elapsed = time.perf_counter() - t
        block.close()
    else:
        model, clip, vae = ModelManager(device="cpu").load_checkpoint(path)
        elapsed = time.perf_counter() - t
        modules = [model.unet, vae.vae, *(e.model for e in clip.encoders)]
        model_bytes = sum(_module_bytes(m) for m in modules)
        dtypes = sorted({str(p.dtype) for m in modules for p in m.parameters()})
    elapsed = time.perf_counter() - t if mode == "raw" else elapsed  # noqa: F821
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(dict(seconds=elapsed, base=base, peak=peak, model_bytes=model_bytes,
                          dtypes=dtypes if mode == "load" else [], threads=torch.get_num_threads())))


def drop_page_cache(path: Path) -> None:
    """Evict the file's pages from the page cache (clean pages only, hence the fsync)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_child(mode: str, path: Path, cold: bool, root: Path | None) -> dict:
    if cold:
        drop_page_cache(path)
    else:  # warm: make sure every page is in the cache
        with open(path, "rb", buffering=0) as f:
            buffer = memoryview(bytearray(16 << 20))
            while f.readinto(buffer):
                pass
    env = dict(os.environ, LOOM_BENCH_ROOT=str(root or ROOT))
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                         cwd=root or ROOT, env=env)
    if out.returncode:
        raise SystemExit(f"{mode} child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(label: str, path: Path, reps: int, root: Path | None) -> None:
    size = path.stat().st_size
    print(f"{label}: {path.name}, {size / 2**30:.2f} GiB on disk")
    for cold in (False, True):
        runs: dict[str, list[dict]] = {"raw": [], "load": []}
        for rep in range(reps):
            # ABBA order: neither measurement always runs first
            order = ("raw", "load") if rep % 2 == 0 else ("load", "raw")
            for mode in order:
                runs[mode].append(run_child(mode, path, cold, root))
        raw = statistics.median(r["seconds"] for r in runs["raw"])
        load = statistics.median(r["seconds"] for r in runs["load"])
        if not cold:
            raw_warm, load_warm = raw, load
        print(f"  {'cold' if cold else 'warm'} page cache: raw read {raw:.2f} s ({size / raw / 2**30:.2f} GiB/s), "
              f"Loom load {load:.2f} s, ratio {load / raw:.2f} (target ≤ 1.2; median of {reps})")
    # What no loader avoids: the model's float32 bytes are fresh memory the kernel must map.
    memory = statistics.median(run_child("memory", path, False, root)["seconds"] for _ in range(reps))
    print(f"  memory floor: mapping the model's float32 size of fresh memory (MAP_POPULATE) takes {memory:.2f} s; "
          f"warm load / (raw read + that) = {load_warm / (raw_warm + memory):.2f}")
    last = runs["load"][-1]
    model, above = last["model_bytes"], min(r["peak"] - r["base"] for r in runs["load"])
    peak = min(r["peak"] for r in runs["load"])
    print(f"  model in its compute dtype ({', '.join(last['dtypes'])}): {model / 2**30:.2f} GiB; "
          f"peak RSS above the imported libraries {above / 2**30:.2f} GiB, ratio {above / model:.2f} (target ≤ 1.1)")
    print(f"  whole process: peak RSS {peak / 2**30:.2f} GiB (libraries {last['base'] / 2**30:.2f} GiB), "
          f"{peak / model:.2f}× the model; torch threads {last['threads']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=None, help="where the random checkpoints go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the workdir (reused by the next run)")
    parser.add_argument("--sdxl", action="store_true", help="also an SDXL-shaped checkpoint (~6.9 GB file, ~14 GB RAM)")
    parser.add_argument("--skip-sd15", action="store_true")
    parser.add_argument("--root", type=Path, default=None, help=argparse.SUPPRESS)  # another checkout's Loom
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(*args.child)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="loom-bench-loading-"))
    workdir.mkdir(parents=True, exist_ok=True)
    families = ([] if args.skip_sd15 else ["sd15"]) + (["sdxl"] if args.sdxl else [])
    try:
        for family in families:
            path = workdir / f"{family}_shaped_random_fp16.safetensors"
            if not path.exists():
                t = time.perf_counter()
                subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                                f"import bench.loading as b; b.make_checkpoint(__import__('pathlib').Path({str(path)!r}), "
                                f"{family!r})"], check=True, cwd=ROOT)
                print(f"(built {path.name} in {time.perf_counter() - t:.0f} s)")
            measure(f"full-size {family.upper()}-shaped checkpoint, stored fp16", path, args.reps, args.root)
            if not args.keep:
                path.unlink()
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
