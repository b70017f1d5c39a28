"""Fixtures for the model runtime tests: tiny real-layout checkpoints (built once per
session), a host env whose models folder holds them, and a graph runner."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.tiny_models import TinyModel, build


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """``tiny(kind) -> TinyModel``, building each kind at most once per session."""
    built: dict[str, TinyModel] = {}

    def get(kind: str) -> TinyModel:
        if kind not in built:
            built[kind] = build(kind, tiny_dir)
        return built[kind]

    return get


@pytest.fixture(scope="session")
def manager():
    from diffusion.memory import ModelManager

    return ModelManager(device="cpu")


@pytest.fixture
def env(tmp_path):
    from nodes.runtime import LoomEnv

    env = LoomEnv.at(tmp_path / "loom", device="cpu")
    env.folders.ensure()
    return env


def install(env, model: TinyModel) -> str:
    """Link a tiny checkpoint into the env's models/checkpoints; returns its name."""
    folder = env.folders.models / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.checkpoint.name
    if not target.exists():
        os.symlink(model.checkpoint, target)
    return target.name


def txt2img_prompt(ckpt: str, *, positive="a photograph of an astronaut riding a horse",
                   negative="blurry, low quality", seed=42, steps=4, cfg=7.0, sampler="euler",
                   scheduler="normal", width=64, height=64, batch=1, denoise=1.0) -> dict[str, Any]:
    """ComfyUI's default txt2img graph in API format."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": positive, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": width, "height": height, "batch_size": batch}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": seed, "steps": steps, "cfg": cfg, "sampler_name": sampler, "scheduler": scheduler,
            "denoise": denoise, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "loom", "images": ["8", 0]}},
    }


def run_graph(env, prompt: dict, events: list | None = None, interrupt=None):
    from engine.executor import Executor
    from engine.registry import Registry
    from nodes import builtin_nodes

    registry = Registry(env=env)
    registry.add_all(builtin_nodes(), "nodes")
    sink = events.append if events is not None else (lambda event: None)
    return Executor(registry, cache="none").execute(prompt, prompt_id="test", sink=sink, interrupt=interrupt)


def saved_images(env, outcome, node_id: str = "9") -> list[Path]:
    return [env.folders.output / item.get("subfolder", "") / item["filename"]
            for item in outcome.outputs[node_id]["images"]]


def png_pixels(path: Path):
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


@pytest.fixture(scope="session")
def tiny_flux(tmp_path_factory):
    from tests.fixtures.tiny_flux import build

    return build(tmp_path_factory.mktemp("tiny_flux"))


def link_models(env, files) -> Any:
    """``env`` with each built model file linked into models/<its folder's name> under its own name."""
    for path in files:
        folder = env.folders.models / path.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / path.name
        if not target.exists():
            os.symlink(path, target)
    return env


@pytest.fixture
def flux_env(env, tiny_flux):
    """The test env with the tiny Flux files under the names ComfyUI's examples use."""
    return link_models(env, tiny_flux.files.values())


@pytest.fixture(scope="session")
def tiny_sd3(tmp_path_factory):
    from tests.fixtures.tiny_sd3 import build

    return build(tmp_path_factory.mktemp("tiny_sd3"))


@pytest.fixture
def sd3_env(env, tiny_sd3):
    """The test env with the tiny SD3 files under ComfyUI's folder and file names."""
    return link_models(env, tiny_sd3.files.values())


@pytest.fixture(scope="session")
def sd3_text(tmp_path_factory):
    """The tiny SD3 text encoder files (tests.fixtures.tiny_sd3_text) and their reference modules."""
    from tests.fixtures.tiny_sd3_text import build_text

    return build_text(tmp_path_factory.mktemp("tiny_sd3_text"))


@pytest.fixture
def sd3_text_env(env, sd3_text):
    """The test env with the tiny SD3 text encoders in models/text_encoders under ComfyUI's names."""
    return link_models(env, sd3_text.files.values())
