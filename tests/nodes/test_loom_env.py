"""LoomEnv: the host environment nodes receive as ctx.env."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from nodes.runtime import LoomEnv

REPO = Path(__file__).resolve().parents[2]


def test_defaults_pick_the_device_automatically_and_latent2rgb_previews(tmp_path):
    env = LoomEnv.at(tmp_path)
    assert (env.device, env.preview_method) == ("auto", "latent2rgb")
    assert env.folders.base == tmp_path


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:1", "mps"])
def test_known_devices_are_accepted(tmp_path, device):
    assert LoomEnv.at(tmp_path, device=device).device == device


def test_an_unknown_device_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown device 'gpu0'; use auto, cpu, mps, cuda or cuda:N"):
        LoomEnv.at(tmp_path, device="gpu0")


def test_an_unknown_preview_method_is_refused_with_the_choices(tmp_path):
    with pytest.raises(ValueError, match="unknown preview method 'taesdxl'; use one of auto, latent2rgb, taesd, none"):
        LoomEnv.at(tmp_path, preview_method="taesdxl")


def test_building_an_env_loads_no_model_runtime(tmp_path):
    code = (
        "import sys; from nodes.runtime import LoomEnv; env = LoomEnv.at(sys.argv[1]); "
        "assert not env.models_loaded; "
        "assert 'diffusion.memory' not in sys.modules and 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, cwd=REPO)


def test_the_model_manager_is_created_once_on_first_use(tmp_path, monkeypatch):
    created = []

    class RecordingManager:
        def __init__(self, device, policy=None):  # the host's precision/VRAM policy rides along
            created.append(device)

    monkeypatch.setitem(sys.modules, "diffusion.memory", types.SimpleNamespace(ModelManager=RecordingManager))
    env = LoomEnv.at(tmp_path, device="cpu")
    assert created == []
    first = env.models
    assert env.models is first
    assert created == ["cpu"]
    assert env.models_loaded
