"""Upscale models through spandrel: tiny ESRGANs in the old and new key layouts, tiled
upscaling that matches the untiled result, no fake torchvision left behind, clear errors."""

from __future__ import annotations

import sys

import pytest
import torch

from diffusion.errors import ModelLoadError
from diffusion.upscale import load_upscale_model, spandrel_module, tiled_upscale, upscale
from nodes.upscale import ImageUpscaleWithModel, UpscaleModelLoader
from tests.capabilities.conftest import install
from tests.fixtures.tiny_extras import esrgan_new_state, esrgan_old_state, save


@pytest.fixture(scope="module")
def esrgan_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("esrgan")
    old = esrgan_old_state()
    x2 = esrgan_old_state(scale=2, seed=3)
    return {"old": save(old, folder / "4x_tiny_old.safetensors"),
            "new": save(esrgan_new_state(old), folder / "4x_tiny_new.safetensors"),
            "x2": save(x2, folder / "2x_tiny.safetensors")}


def test_importing_spandrel_leaves_no_torchvision_stand_in_behind():
    spandrel_module()
    assert not any(name == "torchvision" or name.startswith("torchvision.") for name in sys.modules)


def test_old_layout_esrgan_loads_with_its_scale(esrgan_files):
    model = load_upscale_model(esrgan_files["old"])
    assert model.scale == 4 and model.model.architecture.name == "ESRGAN"


def test_new_layout_esrgan_gives_the_same_pixels_as_the_old_layout(esrgan_files):
    image = torch.rand(1, 12, 10, 3, generator=torch.Generator().manual_seed(0))
    old, new = load_upscale_model(esrgan_files["old"]), load_upscale_model(esrgan_files["new"])
    assert torch.allclose(upscale(old, image), upscale(new, image), atol=1e-6)


def test_upscaled_image_has_scale_times_the_size_and_stays_in_range(esrgan_files):
    out = upscale(load_upscale_model(esrgan_files["x2"]), torch.rand(2, 9, 7, 3))
    assert out.shape == (2, 18, 14, 3) and float(out.min()) >= 0 and float(out.max()) <= 1


def test_tiled_upscale_matches_the_whole_image_run(esrgan_files):
    model = load_upscale_model(esrgan_files["old"])
    image = torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        whole = model.model(image)
        tiled = tiled_upscale(image, model.model, 4, tile=24, overlap=8)
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().mean()) < 2e-3 and float((tiled - whole).abs().max()) < 0.05


def test_tiling_an_identity_model_reproduces_the_input_exactly():
    image = torch.rand(2, 3, 37, 51)
    out = tiled_upscale(image, lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2), 2, tile=16, overlap=5)
    assert torch.allclose(out, image.repeat_interleave(2, -1).repeat_interleave(2, -2), atol=1e-6)


def test_tiled_upscale_reports_progress_per_tile():
    calls = []
    tiled_upscale(torch.rand(1, 3, 28, 28), lambda t: t, 1, tile=16, overlap=4, progress=lambda d, t: calls.append((d, t)))
    assert calls[-1] == (4, 4) and len(calls) == 4


def test_loader_and_upscale_nodes(ctx, env, esrgan_files):
    name = install(env, "upscale_models", esrgan_files["x2"])
    model = UpscaleModelLoader.fn(ctx, model_name=name)
    assert ImageUpscaleWithModel.fn(ctx, upscale_model=model, image=torch.rand(1, 8, 8, 3)).shape == (1, 16, 16, 3)


def test_a_file_that_is_not_an_upscale_model_is_a_clear_error(tmp_path):
    path = save({"lora_unet_x.lora_up.weight": torch.zeros(2, 2)}, tmp_path / "not_esrgan.safetensors")
    with pytest.raises(ModelLoadError, match=r"not_esrgan\.safetensors is not an upscale model"):
        load_upscale_model(path)


def test_a_pickled_pth_with_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"

    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model.0.weight": Payload()}, path)
    with pytest.raises(ModelLoadError, match="evil.pth"):
        load_upscale_model(path)
