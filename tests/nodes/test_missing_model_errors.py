"""A prompt naming a model file the user lacks fails validation with the file
and the folder to put it in — not a bare "value not in list"."""

from __future__ import annotations

import pytest

from typing import Any

from engine.declare import node
from engine.registry import Registry
from engine.validation import validate_prompt
from nodes import builtin_nodes

LOADERS = [
    ("CheckpointLoaderSimple", "ckpt_name", "checkpoints", {}),
    ("VAELoader", "vae_name", "vae", {}),
    ("UpscaleModelLoader", "model_name", "upscale_models", {}),
    ("ControlNetLoader", "control_net_name", "controlnet", {}),
    ("CLIPVisionLoader", "clip_name", "clip_vision", {}),
    ("unCLIPCheckpointLoader", "ckpt_name", "checkpoints", {}),
    ("GLIGENLoader", "gligen_name", "gligen", {}),
]


@node(category="test", output_node=True)
def Sink(value: Any) -> None:
    """Consumes any output, so a loader alone makes a runnable prompt."""


@pytest.fixture
def registry(env):
    registry = Registry(env=env)
    registry.add_all(builtin_nodes(), "builtin")
    registry.add(Sink)
    return registry


def only_error(result, node_id="1"):
    (error,) = result.node_errors[node_id]["errors"]
    return error


def loader_prompt(class_type, input_name, value):
    return {"1": {"class_type": class_type, "inputs": {input_name: value}},
            "9": {"class_type": "Sink", "inputs": {"value": ["1", 0]}}}


@pytest.mark.parametrize("class_type,input_name,kind,_", LOADERS)
def test_a_missing_model_names_the_file_and_its_folder(registry, class_type, input_name, kind, _):
    result = validate_prompt(registry, loader_prompt(class_type, input_name, "absent_model.safetensors"))
    error = only_error(result)
    assert error["message"] == "Model file not found"
    assert "'absent_model.safetensors' not found" in error["details"]
    assert f"put it in models/{kind}/" in error["details"]


def test_a_missing_lora_names_the_file_and_the_loras_folder(registry):
    prompt = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "base.safetensors"}},
        "2": {"class_type": "LoraLoader", "inputs": {"model": ["1", 0], "clip": ["1", 1],
                                                     "lora_name": "style.safetensors",
                                                     "strength_model": 1.0, "strength_clip": 1.0}},
    }
    prompt["9"] = {"class_type": "Sink", "inputs": {"value": ["2", 0]}}
    result = validate_prompt(registry, prompt)
    error = only_error(result, "2")
    assert "1" in result.node_errors  # the checkpoint is missing too, and reported alongside
    assert "LoRA" in error["details"] and "'style.safetensors'" in error["details"]
    assert "put it in models/loras/" in error["details"]


def test_a_model_name_that_climbs_out_of_its_folder_is_refused_by_name(registry):
    result = validate_prompt(registry, loader_prompt("CheckpointLoaderSimple", "ckpt_name", "../secrets.safetensors"))
    assert "may not leave its folder" in only_error(result)["details"]


def test_a_present_model_passes_validation(registry, folders):
    folders.ensure()
    (folders.models / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folders.models / "checkpoints" / "have.safetensors").write_bytes(b"x")
    result = validate_prompt(registry, loader_prompt("CheckpointLoaderSimple", "ckpt_name", "have.safetensors"))
    assert "1" not in result.node_errors
