"""Over the real server, with the tiny checkpoint: the KSampler streams TAESD previews
(full image size, where latent2rgb's are 1/8), and ``POST /interrupt`` stops a VAE
decode within a second with ``execution_interrupted``."""

from __future__ import annotations

import asyncio
import io
import os
import struct
import time

import pytest

from engine.registry import Registry
from nodes.runtime import LoomEnv
from tests.fixtures.slow_models import Sink, Slow, ids_of
from tests.fixtures.tiny_taesd import write_decoder

from .conftest import listen


@pytest.fixture(scope="module")
def tiny_sd1(tmp_path_factory):
    from tests.fixtures.tiny_models import build

    return build("sd1", tmp_path_factory.mktemp("tiny_sd1"))


def model_registry(base, checkpoint, preview_method: str) -> Registry:
    import nodes

    env = LoomEnv.at(base, device="cpu", preview_method=preview_method)
    env.folders.ensure()
    (env.folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
    os.symlink(checkpoint, env.folders.models / "checkpoints" / checkpoint.name)
    registry = Registry(env=env)
    registry.add_all([*nodes.builtin_nodes(), Sink], origin="builtin")
    return registry


def txt2img(ckpt: str, steps: int = 3) -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cube", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 1, "steps": steps, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
        "9": {"class_type": "Sink", "inputs": {"value": ["3", 0]}},
    }


def jpeg_sizes(frames: list[bytes]) -> list[tuple[int, int]]:
    from PIL import Image

    sizes = []
    for frame in frames:
        event, image_type = struct.unpack(">II", frame[:8])
        assert (event, image_type) == (1, 1)  # preview image, JPEG
        sizes.append(Image.open(io.BytesIO(frame[8:])).size)
    return sizes


@pytest.mark.parametrize("method, decoder, size", [
    ("taesd", True, (64, 64)),
    ("auto", True, (64, 64)),
    ("auto", False, (8, 8)),       # no decoder file: latent2rgb, 1/8 of the image
    ("latent2rgb", True, (8, 8)),
])
async def test_ksampler_previews_over_the_websocket_follow_the_preview_method(
        running, tmp_path, tiny_sd1, method, decoder, size):
    base = tmp_path / "base"
    registry = model_registry(base, tiny_sd1.checkpoint, method)
    if decoder:
        write_decoder(base / "models" / "vae_approx" / "taesd_decoder.safetensors")
    server = await running(registry=registry, base=base)
    listener = await listen(server)
    prompt_id = await server.queue(txt2img(tiny_sd1.checkpoint.name), listener.client_id)
    messages = await listener.until_done(prompt_id, timeout=120)
    assert any(m["type"] == "execution_success" for m in messages), messages[-3:]
    sizes = jpeg_sizes(listener.binary)
    assert sizes and set(sizes) == {size}


async def test_post_interrupt_stops_a_vae_decode_within_a_second(running, tmp_path, tiny_sd1):
    base = tmp_path / "base"
    registry = model_registry(base, tiny_sd1.checkpoint, "none")
    vae = registry.env.models.load_checkpoint(registry.env.folders.models / "checkpoints" / tiny_sd1.checkpoint.name)[2]
    server = await running(registry=registry, base=base)
    listener = await listen(server)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": tiny_sd1.checkpoint.name}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
              "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    with Slow(ids_of(vae.vae.decoder)) as slow:  # the decode alone would take ~20 s
        prompt_id = await server.queue(prompt, listener.client_id)
        assert await asyncio.get_running_loop().run_in_executor(None, slow.started.wait, 60)
        await asyncio.sleep(0.2)
        asked = time.monotonic()
        async with await server.post("/interrupt") as response:
            assert (await response.json()) == {"interrupted": True}
        while True:
            message = await listener.next_json(timeout=60)
            if message["type"] in ("execution_interrupted", "execution_error", "execution_success"):
                break
        latency = time.monotonic() - asked
    assert message["type"] == "execution_interrupted", message
    assert message["data"]["prompt_id"] == prompt_id and message["data"]["node_id"] == "3"
    assert latency < 1.0, f"execution_interrupted came {latency:.2f} s after POST /interrupt"
