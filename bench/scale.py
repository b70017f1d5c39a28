"""Prompts per second with 1 vs 2 Ray workers on a CPU-bound workflow.

A tiny SD1 txt2img (random weights, real layout) at a size that takes about a
second per prompt on one thread; each worker runs torch with one thread, so
two workers on a 2-core machine should approach 2x.  Prints both rates and
their ratio, and the machine's load average (shared machines skew it).

    .venv/bin/python -m bench.scale [--prompts 12] [--size 192] [--steps 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def txt2img(ckpt: str, seed: int, size: int, steps: int) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": size, "height": size, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1.0, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "scale", "images": ["8", 0]}},
    }


async def measure(base: Path, ckpt: str, workers: int, args: argparse.Namespace) -> float:
    from server.app import LoomServer
    from server.config import ServerOptions
    from server.host import build_host
    from server.ray_dispatch import RayDispatcher, RayOptions
    from server.remote_worker import HostSpec

    spec = HostSpec(base_directory=str(base), cpu=True, preview_method="none", disable_custom_nodes=True)
    host = build_host(spec.namespace())

    def dispatcher(server):
        return RayDispatcher(queue=server.queue, store=server.store, hub=server.hub, validate=server._revalidate,
                             folders=server.folders, spec=spec, preview_interval=0.05,
                             options=RayOptions(cpu_workers=workers, torch_threads=1))

    server = LoomServer(host.registry, ServerOptions(port=0, web_root=base / "web"), make_dispatcher=dispatcher,
                        db_path=base / f"queue-{workers}.sqlite3")
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        while not all(w.up for w in server.worker.workers):
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session:
            async def run_all(seeds: range) -> float:
                started = time.perf_counter()
                ids = []
                for seed in seeds:
                    async with session.post(url + "/prompt", json={"prompt": txt2img(ckpt, seed, args.size, args.steps)}) as r:
                        ids.append((await r.json())["prompt_id"])
                while True:
                    async with session.get(url + "/queue") as r:
                        queue = await r.json()
                    if not queue["queue_running"] and not queue["queue_pending"]:
                        break
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - started
                async with session.get(url + "/history") as r:
                    history = await r.json()
                failed = [pid for pid in ids if history[pid]["status"]["status_str"] != "success"]
                assert not failed, history[failed[0]]["status"]
                return elapsed

            await run_all(range(10_000, 10_000 + 2 * workers))  # warm-up: every worker loads the model
            elapsed = await run_all(range(args.prompts))
        shares = [w["completed"] for w in server.worker.describe()]
        print(f"  {workers} worker(s): {elapsed:.2f} s for {args.prompts} prompts; prompts per worker"
              f" (warm-up included): {shares}", flush=True)
        return args.prompts / elapsed
    finally:
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import ray

    from tests.fixtures.tiny_models import build

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "loom"
        model = build("sd1", Path(tmp) / "models")
        (base / "models" / "checkpoints").mkdir(parents=True)
        shutil.copy(model.checkpoint, base / "models" / "checkpoints" / "tiny.safetensors")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            load_before = os.getloadavg()
            one = asyncio.run(measure(base, "tiny.safetensors", 1, args))
            two = asyncio.run(measure(base, "tiny.safetensors", 2, args))
            load_after = os.getloadavg()
        finally:
            ray.shutdown()
    print(f"tiny SD1 {args.size}x{args.size}, {args.steps} steps, {args.prompts} prompts, torch threads 1 per worker")
    print(f"1 worker : {one:.2f} prompts/s ({1 / one:.2f} s/prompt)")
    print(f"2 workers: {two:.2f} prompts/s ({1 / two:.2f} s/prompt)")
    print(f"speed-up : {two / one:.2f}x  (target >= 1.7x on 2 cores)")
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
