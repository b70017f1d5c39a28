"""An interrupt stops every long model node within a second, not only the sampler.

Each test makes one node artificially slow on the tiny models (a hook that sleeps
in every call of that model's modules, or in every tensor read while loading),
interrupts the prompt from another thread once the slow part has begun, and
measures how long ``execution_interrupted`` takes to arrive.  Without the runtime's
interrupt hook the node runs to its end first (several seconds here).
"""

from __future__ import annotations

import threading
import time
from typing import Any


from tests.diffusion.conftest import install
from tests.fixtures.slow_models import Sink, Slow, ids_of
from tests.fixtures.tiny_extras import esrgan_old_state, save, tiny_clip
from tests.fixtures.tiny_models import tiny_clip_vision

#: What the issue promises.
LIMIT = 1.0


def interrupt_when_started(env, prompt: dict[str, Any], started: threading.Event) -> tuple[Any, float, list]:
    """Run ``prompt``; 0.2 s after ``started`` is set, interrupt it from another thread.
    Returns (outcome, seconds from the interrupt to ``execution_interrupted``, events)."""
    from engine.executor import Executor
    from engine.interrupt import InterruptFlag
    from engine.registry import Registry
    from nodes import builtin_nodes

    registry = Registry(env=env)
    registry.add_all([*builtin_nodes(), Sink], "nodes")
    flag = InterruptFlag()
    requested: list[float] = []
    arrived: list[float] = []
    events: list = []

    def interrupter():
        if started.wait(120):
            time.sleep(0.2)
            requested.append(time.monotonic())
            flag.set()

    def sink(event):
        events.append(event)
        if event.type == "execution_interrupted":
            arrived.append(time.monotonic())

    thread = threading.Thread(target=interrupter, daemon=True)
    thread.start()
    outcome = Executor(registry, cache="none").execute(prompt, prompt_id="t", sink=sink, interrupt=flag)
    started.set()  # let the thread end if the slow part never began
    thread.join(5)
    assert requested, "the slowed part never ran"
    assert arrived, f"no execution_interrupted; status {outcome.status}, error {outcome.error}"
    return outcome, arrived[0] - requested[0], events


def put_image(env, name: str = "in.png", size: int = 64) -> str:
    from PIL import Image

    env.folders.input.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), (200, 120, 40)).save(env.folders.input / name)
    return name


def assert_interrupted_in(outcome, events, node_id: str, latency: float) -> None:
    print(f"\n{node_id}: execution_interrupted {latency * 1000:.0f} ms after the interrupt")  # shown with -s
    assert outcome.status == "interrupted", outcome.error
    stopped = [e for e in events if e.type == "execution_interrupted"][0]
    assert stopped.node_id == node_id
    assert not [e for e in events if e.type == "execution_error"]
    assert latency < LIMIT, f"execution_interrupted came {latency:.2f} s after the interrupt"


def checkpoint(env, tiny):
    name = install(env, tiny("sd1"))
    return name, env.models.load_checkpoint(env.folders.model_path("checkpoints", name))


def test_vae_decode_stops_within_a_second(tiny, env):
    name, (_, _, vae) = checkpoint(env, tiny)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 4}},
              "3": {"class_type": "VAEDecode", "inputs": {"samples": ["2", 0], "vae": ["1", 2]}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    with Slow(ids_of(vae.vae.decoder)) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "3", latency)


def test_tiled_vae_decode_stops_within_a_second(tiny, env):
    name, (_, _, vae) = checkpoint(env, tiny)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "2": {"class_type": "EmptyLatentImage", "inputs": {"width": 256, "height": 256, "batch_size": 1}},
              "3": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["2", 0], "vae": ["1", 2],
                                                                "tile_size": 64, "overlap": 0,
                                                                "temporal_size": 64, "temporal_overlap": 8}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    with Slow(ids_of(vae.vae.decoder)) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "3", latency)


def test_vae_encode_stops_within_a_second(tiny, env):
    name, (_, _, vae) = checkpoint(env, tiny)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "2": {"class_type": "LoadImage", "inputs": {"image": put_image(env)}},
              "3": {"class_type": "VAEEncode", "inputs": {"pixels": ["2", 0], "vae": ["1", 2]}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    with Slow(ids_of(vae.vae.encoder)) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "3", latency)


def test_tiled_vae_encode_stops_within_a_second(tiny, env):
    name, (_, _, vae) = checkpoint(env, tiny)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "2": {"class_type": "LoadImage", "inputs": {"image": put_image(env, size=256)}},
              "3": {"class_type": "VAEEncodeTiled", "inputs": {"pixels": ["2", 0], "vae": ["1", 2], "tile_size": 64,
                                                                "overlap": 0, "temporal_size": 64,
                                                                "temporal_overlap": 8}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    with Slow(ids_of(vae.vae.encoder)) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "3", latency)


def test_text_encoding_stops_within_a_second(tiny, env):
    name, (_, clip, _) = checkpoint(env, tiny)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red cube", "clip": ["1", 1]}},
              "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}}
    with Slow(ids_of(clip.encoders[0].model)) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "2", latency)


def test_model_upscale_stops_within_a_second(env, tmp_path):
    folder = env.folders.models / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    save(esrgan_old_state(scale=2, seed=3), folder / "2x_tiny.safetensors")
    prompt = {"1": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "2x_tiny.safetensors"}},
              "2": {"class_type": "LoadImage", "inputs": {"image": put_image(env, size=32)}},
              "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["1", 0], "image": ["2", 0]}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    # few module calls in a tiny ESRGAN: each sleeps longer so the node takes seconds
    with Slow(lambda m: type(m).__module__.startswith("spandrel"), delay=0.3) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "3", latency)


def test_clip_ranking_stops_within_a_second(env, tmp_path):
    folder, _, _ = tiny_clip(tmp_path)
    (env.folders.models / "clip_vision").mkdir(parents=True, exist_ok=True)
    (env.folders.models / "clip_vision" / "tiny_clip").symlink_to(folder)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": put_image(env)}},
              "2": {"class_type": "CLIPRankImages", "inputs": {"images": ["1", 0], "clip_name": "tiny_clip",
                                                                "prompt": "a cube", "keep_top_k": 0}},
              "3": {"class_type": "Sink", "inputs": {"value": ["2", 0]}}}
    with Slow(lambda m: type(m).__module__.startswith("transformers.models.clip")) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "2", latency)


def test_clip_vision_encode_stops_within_a_second(env):
    from safetensors.torch import save_file

    folder = env.folders.models / "clip_vision"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tiny_clip_vision().state_dict(), str(folder / "tiny_vision.safetensors"))
    prompt = {"1": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "tiny_vision.safetensors"}},
              "2": {"class_type": "LoadImage", "inputs": {"image": put_image(env)}},
              "3": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["1", 0], "image": ["2", 0],
                                                                 "crop": "center"}},
              "4": {"class_type": "Sink", "inputs": {"value": ["3", 0]}}}
    with Slow(lambda m: type(m).__module__.startswith("transformers.models.clip"), delay=0.3) as slow:
        outcome, latency, events = interrupt_when_started(env, prompt, slow.started)
    assert_interrupted_in(outcome, events, "3", latency)


def test_checkpoint_loading_stops_within_a_second(tiny, env, monkeypatch):
    from diffusion.weights_file import SafetensorsFile

    name = install(env, tiny("sd1"))
    started = threading.Event()
    read = SafetensorsFile.read

    def slow_read(self, *args, **kwargs):  # a slow disk: 968 tensors × 20 ms
        for item in read(self, *args, **kwargs):
            started.set()
            time.sleep(0.02)
            yield item

    monkeypatch.setattr(SafetensorsFile, "read", slow_read)
    prompt = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": name}},
              "2": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}}
    outcome, latency, events = interrupt_when_started(env, prompt, started)
    assert_interrupted_in(outcome, events, "1", latency)
    assert env.models.loaded_models() == []  # nothing half-loaded is kept

