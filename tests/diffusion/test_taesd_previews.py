"""TAESD live previews: decoder files found by name per latent family, converted onto
diffusers' AutoencoderTiny exactly, previews at full image size, ``auto`` and the
fallback to latent2rgb when the file is missing."""

from __future__ import annotations

import io
import logging
from types import SimpleNamespace

import pytest
import torch

from diffusion import preview as preview_module
from diffusion.errors import ModelLoadError
from diffusion.latent_formats import SD15, SDXL
from diffusion.taesd import decode, decoder_file, expected_keys, DecoderShape, load_decoder
from tests.fixtures.tiny_taesd import reference_decode, reference_decoder, write_decoder


def jpeg_size(data: bytes) -> tuple[int, int]:
    from PIL import Image

    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return image.size


@pytest.mark.parametrize("family, names, found", [
    ("sd15", ["taesdxl_decoder.safetensors", "taesd_decoder.safetensors", "taesd_encoder.safetensors"],
     "taesd_decoder.safetensors"),
    ("sdxl", ["taesd_decoder.safetensors", "taesdxl_decoder.pth"], "taesdxl_decoder.pth"),
    ("sd3", ["taesd3_decoder.safetensors"], "taesd3_decoder.safetensors"),
    ("flux", ["sub/taef1_decoder.safetensors"], "sub/taef1_decoder.safetensors"),
    ("sdxl", ["taesd_decoder.safetensors", "taesdxl_encoder.safetensors"], None),
    ("sd15", ["taesd_decoder.txt"], None),
])
def test_decoder_file_is_found_by_name_per_latent_family(family, names, found):
    assert decoder_file(names, family) == found


def test_the_released_layout_has_the_published_key_set():
    keys = expected_keys(DecoderShape(4, 64))
    # conv_in, 10 blocks × 3 convs (weight+bias), 3 bias-free upsample convs, conv_out
    assert len(keys) == 2 + 10 * 6 + 3 + 2
    assert keys["1.weight"] == (64, 4, 3, 3) and keys["19.weight"] == (3, 64, 3, 3)
    assert "7.weight" in keys and "7.bias" not in keys and "18.conv.4.bias" in keys


@pytest.mark.parametrize("channels, width", [(4, 16), (16, 8), (4, 64)])
def test_autoencoder_tiny_decoder_gives_the_released_networks_output(tmp_path, channels, width):
    path = tmp_path / "taesd_decoder.safetensors"
    reference = write_decoder(path, latent_channels=channels, width=width, seed=3)
    ours = load_decoder(path)
    assert type(ours).__name__ == "DecoderTiny" and ours.latent_channels == channels
    latent = torch.randn(2, channels, 6, 5, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        got = ours(latent)
    assert torch.allclose(got, reference_decode(reference, latent), atol=1e-5)
    assert not any(p.is_meta for p in ours.parameters())


def test_fp16_file_loads_in_the_asked_dtype(tmp_path):
    path = tmp_path / "taesdxl_decoder.safetensors"
    write_decoder(path, dtype=torch.float16)
    assert {p.dtype for p in load_decoder(path, torch.float32).parameters()} == {torch.float32}


def test_combined_file_with_a_taesd_decoder_prefix_loads(tmp_path):
    path = tmp_path / "taesd_decoder.safetensors"
    reference = write_decoder(path, prefix="taesd_decoder.")
    latent = torch.randn(1, 4, 4, 4)
    with torch.no_grad():
        assert torch.allclose(load_decoder(path)(latent), reference_decode(reference, latent), atol=1e-5)


def test_preview_is_the_full_size_first_image_as_uint8(tmp_path):
    write_decoder(tmp_path / "taesd_decoder.safetensors")
    decoder = load_decoder(tmp_path / "taesd_decoder.safetensors")
    image = decode(decoder, torch.randn(3, 4, 8, 6))
    assert image.shape == (64, 48, 3) and image.dtype == torch.uint8
    assert int(image.max()) > int(image.min())  # not a flat image


def test_a_large_latent_is_shrunk_before_decoding_to_the_preview_size(tmp_path):
    write_decoder(tmp_path / "taesd_decoder.safetensors")
    decoder = load_decoder(tmp_path / "taesd_decoder.safetensors")
    assert decode(decoder, torch.randn(1, 4, 128, 64), max_side=512).shape == (512, 256, 3)


def test_a_file_in_another_layout_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    state = reference_decoder(width=8).state_dict()
    del state["18.conv.2.weight"]
    save_file(state, str(tmp_path / "taesd_decoder.safetensors"))
    with pytest.raises(ModelLoadError, match=r"taesd_decoder\.safetensors is not a TAESD decoder.*1 keys missing"):
        load_decoder(tmp_path / "taesd_decoder.safetensors")
    save_file({"decoder.conv_in.weight": torch.zeros(8, 4, 3, 3)}, str(tmp_path / "taesd_decoder_vae.safetensors"))
    with pytest.raises(ModelLoadError, match="no first convolution"):
        load_decoder(tmp_path / "taesd_decoder_vae.safetensors")


def test_wrong_latent_channels_is_a_clear_error(tmp_path):
    write_decoder(tmp_path / "taesd3_decoder.safetensors", latent_channels=16, width=8)
    with pytest.raises(ValueError, match="latent has 4 channels; this TAESD decoder takes 16"):
        decode(load_decoder(tmp_path / "taesd3_decoder.safetensors"), torch.zeros(1, 4, 8, 8))


# -- choosing the previewer (the sampler nodes' path, with a real env) ----------------------

def previewer_for(env, fmt, method):
    from nodes.previews import sampling_previewer

    env.preview_method = method
    return sampling_previewer(SimpleNamespace(env=env), SimpleNamespace(latent_format=fmt))


@pytest.fixture
def warnings_reset(monkeypatch):
    monkeypatch.setattr(preview_module, "_warned", set())


def test_auto_picks_taesd_when_the_file_is_there_else_latent2rgb(env, warnings_reset, caplog):
    with caplog.at_level(logging.WARNING, logger="loom.preview"):
        assert previewer_for(env, SD15, "auto").method == "latent2rgb"
    assert not caplog.records  # auto is quiet about a missing file
    write_decoder(env.folders.models / "vae_approx" / "taesd_decoder.safetensors")
    chosen = previewer_for(env, SD15, "auto")
    assert chosen.method == "taesd"
    assert jpeg_size(chosen(torch.randn(1, 4, 8, 8))) == (64, 64)
    assert previewer_for(env, SDXL, "auto").method == "latent2rgb"  # SDXL needs taesdxl_decoder


def test_taesd_without_its_file_warns_one_line_and_falls_back_to_latent2rgb(env, warnings_reset, caplog):
    with caplog.at_level(logging.WARNING, logger="loom.preview"):
        chosen = previewer_for(env, SDXL, "taesd")
        again = previewer_for(env, SDXL, "taesd")
    assert chosen.method == again.method == "latent2rgb"
    assert jpeg_size(chosen(torch.randn(1, 4, 8, 8))) == (8, 8)
    [record] = caplog.records
    assert "taesdxl_decoder" in record.getMessage() and "\n" not in record.getMessage()


def test_the_decoder_is_loaded_once_and_kept_by_the_model_manager(env):
    write_decoder(env.folders.models / "vae_approx" / "taesd_decoder.safetensors")
    first = previewer_for(env, SD15, "taesd")
    second = previewer_for(env, SD15, "taesd")
    assert first.decoder is second.decoder
    assert [m.component for m in env.models.loaded_models()] == ["vae_approx"]


def test_none_makes_no_previewer(env):
    write_decoder(env.folders.models / "vae_approx" / "taesd_decoder.safetensors")
    assert previewer_for(env, SD15, "none") is None


def test_unknown_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown preview method 'fast'"):
        preview_module.choose_previewer("fast", SD15, None, lambda p: None)
