"""The model manager (load once, list, free) and the VAE nodes' maths."""

from __future__ import annotations


import pytest
import torch

from diffusion.errors import ModelLoadError
from diffusion.memory import ModelManager
from diffusion.vae import decode, decode_tiled, encode


def test_a_file_is_loaded_once_and_shared(tiny):
    manager = ModelManager(device="cpu")
    first = manager.load_checkpoint(tiny("sd1").checkpoint)
    second = manager.load_checkpoint(tiny("sd1").checkpoint)
    assert first[0].unet is second[0].unet and first[2].vae is second[2].vae


def test_loaded_models_lists_each_component_on_its_device(tiny):
    manager = ModelManager(device="cpu")
    manager.load_checkpoint(tiny("sdxl").checkpoint)
    listed = manager.loaded_models()
    assert sorted(m.component for m in listed) == ["text_encoder", "text_encoder", "unet", "vae"]
    assert {m.device for m in listed} == {"cpu"} and all(m.size_bytes > 0 for m in listed)


def test_free_forgets_loaded_models(tiny):
    manager = ModelManager(device="cpu")
    first = manager.load_checkpoint(tiny("sd1").checkpoint)
    manager.free(unload_models=True)
    assert manager.loaded_models() == []
    assert manager.load_checkpoint(tiny("sd1").checkpoint)[0].unet is not first[0].unet


def test_cpu_device_is_honoured_with_fp32_weights(tiny):
    manager = ModelManager(device="cpu")
    model = manager.load_checkpoint(tiny("sd1").checkpoint)[0]
    p = next(model.unet.parameters())
    assert (p.device.type, p.dtype) == ("cpu", torch.float32)


def test_weights_equal_the_diffusers_originals(tiny):
    from diffusers import UNet2DConditionModel

    ours = ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)[0].unet.state_dict()
    theirs = UNet2DConditionModel.from_pretrained(tiny("sd1").diffusers_dir, subfolder="unet").state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_diffusers_folder_loads_as_model_clip_vae(tiny):
    model, clip, vae = ModelManager(device="cpu").load_checkpoint(tiny("sd1").diffusers_dir)
    assert (model.family, len(clip.encoders), vae.scale_factor) == ("sd1", 1, pytest.approx(0.18215))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="not found"):
        ModelManager(device="cpu").load_checkpoint(tmp_path / "nope.safetensors")


def test_standalone_vae_file_loads(tiny, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(tiny("sd1").checkpoint), "pt") as f:
        vae_only = {k.removeprefix("first_stage_model."): f.get_tensor(k) for k in f.keys()
                    if k.startswith("first_stage_model.")}
    save_file(vae_only, str(tmp_path / "vae.safetensors"))
    vae = ModelManager(device="cpu").load_vae(tmp_path / "vae.safetensors")
    assert decode(vae, torch.zeros(1, 4, 8, 8)).shape == (1, 64, 64, 3)


@pytest.fixture(scope="module")
def vae(manager, tiny):
    return manager.load_checkpoint(tiny("sd1").checkpoint)[2]


def test_decode_gives_images_in_0_1_with_8x_size(vae):
    image = decode(vae, torch.randn(2, 4, 8, 6))
    assert image.shape == (2, 64, 48, 3) and image.min() >= 0 and image.max() <= 1


def test_encode_gives_scaled_latents_at_one_eighth(vae):
    latent = encode(vae, torch.rand(1, 64, 72, 3))
    assert latent.shape == (1, 4, 8, 9)


def test_tiled_decode_with_one_tile_equals_decode(vae):
    latent = torch.randn(1, 4, 8, 8)
    assert torch.allclose(decode_tiled(vae, latent, tile_size=64, overlap=0), decode(vae, latent))


def test_tiled_decode_covers_large_latents_with_blended_tiles(vae):
    latent = torch.randn(1, 4, 20, 12)
    tiled = decode_tiled(vae, latent, tile_size=64, overlap=16)
    assert tiled.shape == (1, 160, 96, 3) and torch.isfinite(tiled).all()
    # far from tile seams, a tile's pixels equal a full decode's only up to the VAE's
    # receptive field; the mean colour must agree closely
    assert abs(tiled.mean() - decode(vae, latent).mean()) < 0.05


def test_sd2_diffusers_folder_is_recognised_as_sd2_v_prediction(tiny):
    model, clip, _ = ModelManager(device="cpu").load_checkpoint(tiny("sd2_v").diffusers_dir)
    assert (model.family, model.prediction_type, clip.encoders[0].kind) == ("sd2", "v_prediction", "openclip")
