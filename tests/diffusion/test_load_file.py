"""ModelManager.load_file: the public way to load a model file once and keep it resident
(GLIGEN, CLIP vision and the unCLIP tower go through it)."""

from __future__ import annotations

import os

import pytest
import torch

from diffusion.errors import ModelLoadError
from diffusion.memory import ModelManager


class CountingLoader:
    """Builds a small module from the file's bytes and counts how often it was asked to."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        module = torch.nn.Linear(2, 2)
        with torch.no_grad():
            module.bias.fill_(float(len(path.read_bytes())))
        return module


@pytest.fixture
def weights(tmp_path):
    path = tmp_path / "extra.safetensors"
    path.write_bytes(b"first")
    return path


def test_the_same_file_gives_the_same_object_and_is_read_once(weights):
    manager, loader = ModelManager(device="cpu"), CountingLoader()
    first = manager.load_file(weights, "extra", loader)
    assert manager.load_file(str(weights), "extra", loader) is first
    assert loader.calls == 1


def test_a_file_of_another_size_is_loaded_again(weights):
    manager, loader = ModelManager(device="cpu"), CountingLoader()
    first = manager.load_file(weights, "extra", loader)
    weights.write_bytes(b"second, longer")
    second = manager.load_file(weights, "extra", loader)
    assert second is not first and second.bias[0] == len(b"second, longer")


def test_a_file_with_a_new_modification_time_is_loaded_again(weights):
    manager, loader = ModelManager(device="cpu"), CountingLoader()
    first = manager.load_file(weights, "extra", loader)
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert manager.load_file(weights, "extra", loader) is not first and loader.calls == 2


def test_free_drops_the_loaded_file(weights):
    manager, loader = ModelManager(device="cpu"), CountingLoader()
    first = manager.load_file(weights, "extra", loader)
    manager.free(unload_models=True)
    assert manager.loaded_models() == []
    assert manager.load_file(weights, "extra", loader) is not first and loader.calls == 2


def test_each_kind_read_from_one_file_is_cached_on_its_own(weights):
    manager, loader = ModelManager(device="cpu"), CountingLoader()
    assert manager.load_file(weights, "one", loader) is not manager.load_file(weights, "two", loader)
    assert loader.calls == 2


def test_loaded_modules_are_listed_under_the_file_name_and_component(weights):
    manager = ModelManager(device="cpu")
    manager.load_file(weights, "extra", CountingLoader())
    manager.load_file(weights, "tower", lambda p: {"model": torch.nn.Linear(3, 3)},
                      modules=lambda value: (value["model"],), component="clip_vision")
    assert [(m.source, m.component) for m in manager.loaded_models()] == [
        ("extra.safetensors", "extra"), ("extra.safetensors", "clip_vision")]


def test_a_value_that_is_not_a_module_holds_no_device_memory(weights):
    manager = ModelManager(device="cpu")
    assert manager.load_file(weights, "notes", lambda p: p.read_text()) == "first"
    assert manager.loaded_models() == []


def test_loaded_modules_are_placed_on_the_compute_device(weights):
    # The meta device stands in for a GPU: a manager that computes elsewhere moves the module there.
    manager = ModelManager(device="meta")
    module = manager.load_file(weights, "extra", CountingLoader())
    assert next(module.parameters()).device.type == "meta"


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"model file not found: .*absent\.safetensors"):
        ModelManager(device="cpu").load_file(tmp_path / "absent.safetensors", "extra", CountingLoader())
