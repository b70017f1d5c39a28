"""img2img and inpainting: a loaded image sampled at denoise < 1, the latent noise mask
(unmasked latent kept bit for bit, masked part regenerated) for every kind of sampler
loop, VAEEncodeForInpaint's grey fill and grown mask, and 9-channel inpainting UNets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion.errors import SamplingError
from diffusion.inpaint import encode_for_inpaint, latent_mask, set_noise_mask, unet_extra_channels
from diffusion.sampling import sample
from diffusion.text_encoding import encode as encode_text
from diffusion.vae import decode, encode
from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images


@pytest.fixture(scope="module")
def sd1(manager, tiny):
    model, clip, vae = manager.load_checkpoint(tiny("sd1").checkpoint)
    return model, vae, encode_text(clip, "a red house"), encode_text(clip, "")


def smooth_image(size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(1, size, size, 3, generator=g)
    return torch.nn.functional.avg_pool2d(image.movedim(-1, 1), 5, 1, 2).movedim(1, -1)


def right_half(size=64):
    mask = torch.zeros(1, size, size)
    mask[:, :, size // 2:] = 1
    return mask


def inpaint(model, positive, negative, latent, sampler="euler", denoise=1.0):
    return sample(model, seed=1, steps=3, cfg=7.0, sampler_name=sampler, scheduler="normal", positive=positive,
                  negative=negative, latent=latent, denoise=denoise)["samples"]


@pytest.mark.parametrize("sampler", ["euler", "dpmpp_2m", "ddim", "dpmpp_2s_ancestral"])
def test_noise_mask_keeps_the_unmasked_latent_bit_for_bit_and_regenerates_the_rest(sd1, sampler):
    model, vae, positive, negative = sd1
    latent = encode(vae, smooth_image())
    out = inpaint(model, positive, negative, set_noise_mask({"samples": latent}, right_half()), sampler)
    assert torch.equal(out[..., :4], latent[..., :4])
    assert (out[..., 4:] - latent[..., 4:]).abs().amax() > 0.5


def test_noise_mask_at_partial_denoise_keeps_the_unmasked_latent(sd1):
    model, vae, positive, negative = sd1
    latent = encode(vae, smooth_image())
    out = inpaint(model, positive, negative, set_noise_mask({"samples": latent}, right_half()), denoise=0.5)
    assert torch.equal(out[..., :4], latent[..., :4]) and not torch.equal(out, latent)


def test_noise_mask_is_resized_bilinearly_to_the_latent():
    mask = latent_mask(right_half(64).reshape(1, 1, 64, 64), (2, 4, 8, 8))
    assert mask.shape == (2, 1, 8, 8)
    assert torch.equal(mask[..., :4], torch.zeros(2, 1, 8, 4)) and torch.equal(mask[..., 4:], torch.ones(2, 1, 8, 4))


def test_noise_mask_of_a_bad_shape_is_a_clear_error():
    with pytest.raises(SamplingError, match="noise_mask must be"):
        latent_mask(torch.zeros(1, 3, 8, 8), (1, 4, 8, 8))


def test_encode_for_inpaint_greys_the_masked_pixels_before_encoding(sd1):
    _, vae, _, _ = sd1
    image = smooth_image()
    latent = encode_for_inpaint(vae, image, right_half(), grow_mask_by=0)
    greyed = image.clone()
    greyed[:, :, 32:] = 0.5
    assert torch.allclose(latent["samples"], encode(vae, greyed), atol=1e-6)


def test_encode_for_inpaint_grows_the_noise_mask_by_the_given_pixels(sd1):
    _, vae, _, _ = sd1
    mask = torch.zeros(1, 64, 64)
    mask[:, 30:34, 30:34] = 1
    grown = encode_for_inpaint(vae, smooth_image(), mask, grow_mask_by=6)["noise_mask"]
    assert grown.shape == (1, 1, 64, 64)
    rows = torch.nonzero(grown[0, 0].amax(dim=1)).flatten()
    # a 6×6 box with padding 3, output cut to the input size (ComfyUI's kernel): output row i
    # sees input rows i-3..i+2, so the square grows 2 pixels up and 3 down
    assert (int(rows.min()), int(rows.max())) == (28, 36)
    assert set(grown.unique().tolist()) == {0.0, 1.0}


def test_img2img_graph_keeps_the_picture_closer_to_the_input_than_txt2img(tiny, env):
    from PIL import Image

    ckpt = install(env, tiny("sd1"))
    source = (smooth_image()[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(source).save(env.folders.input / "photo.png")

    def graph(denoise):
        return {
            "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red house", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
            "10": {"class_type": "LoadImage", "inputs": {"image": "photo.png"}},
            "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
            "3": {"class_type": "KSampler", "inputs": {
                "seed": 5, "steps": 4, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
                "denoise": denoise, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
                "latent_image": ["11", 0]}},
            "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "i2i", "images": ["8", 0]}},
        }

    images = {}
    for denoise in (0.3, 1.0):
        outcome = run_graph(env, graph(denoise))
        assert outcome.status == "success", outcome.error
        images[denoise] = png_pixels(saved_images(env, outcome)[0])
    target = source.astype(np.float32) / 255
    assert images[0.3].shape == (64, 64, 3)
    assert np.abs(images[0.3] - target).mean() < np.abs(images[1.0] - target).mean()


def test_inpaint_graph_loads_a_transparent_hole_as_mask_and_runs_end_to_end(tiny, env):
    from PIL import Image

    ckpt = install(env, tiny("sd1"))
    rgba = np.concatenate([(smooth_image()[0].numpy() * 255).astype(np.uint8),
                           np.full((64, 64, 1), 255, np.uint8)], axis=-1)
    rgba[:, 40:, 3] = 0  # transparent = masked (LoadImage's mask is 1 - alpha)
    Image.fromarray(rgba, "RGBA").save(env.folders.input / "hole.png")
    prompt = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a red house", "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "10": {"class_type": "LoadImage", "inputs": {"image": "hole.png"}},
        "11": {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["10", 0], "vae": ["4", 2],
                                                               "mask": ["10", 1], "grow_mask_by": 6}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 5, "steps": 3, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["11", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inpaint", "images": ["8", 0]}},
    }
    outcome = run_graph(env, prompt)
    assert outcome.status == "success", outcome.error
    assert png_pixels(saved_images(env, outcome)[0]).shape == (64, 64, 3)


def test_inpainting_unet_sees_the_mask_and_the_masked_image_latent(manager, tiny):
    model, _, _ = manager.load_checkpoint(tiny("sd1_inpaint").checkpoint)
    latent = torch.randn(2, 4, 8, 8)
    mask = latent_mask(right_half().reshape(1, 1, 64, 64), latent.shape)
    extra = unet_extra_channels(model, latent, mask)
    assert extra.shape == (2, 5, 8, 8)
    assert torch.equal(extra[:, :1], mask) and torch.equal(extra[:, 1:], latent)


def test_inpainting_unet_without_a_mask_is_told_everything_is_masked(manager, tiny):
    model, _, _ = manager.load_checkpoint(tiny("sd1_inpaint").checkpoint)
    extra = unet_extra_channels(model, torch.zeros(1, 4, 8, 8), None)
    assert torch.equal(extra[:, 0], torch.ones(1, 8, 8))


def test_inpainting_checkpoint_keeps_the_unmasked_latent_and_uses_the_masked_image(manager, tiny):
    model, clip, vae = manager.load_checkpoint(tiny("sd1_inpaint").checkpoint)
    positive, negative = encode_text(clip, "a red house"), encode_text(clip, "")
    a = encode_for_inpaint(vae, smooth_image(seed=1), right_half(), 0)
    b = encode_for_inpaint(vae, smooth_image(seed=2), right_half(), 0)
    b_same_left = {"samples": torch.cat([a["samples"][..., :4], b["samples"][..., 4:]], -1),
                   "noise_mask": a["noise_mask"]}
    out_a = inpaint(model, positive, negative, a)
    assert torch.equal(out_a[..., :4], a["samples"][..., :4])
    # the masked-image channels reach the UNet: other content under the mask, other result
    assert not torch.equal(out_a[..., 4:], inpaint(model, positive, negative, b_same_left)[..., 4:])


def test_decoded_inpaint_changes_inside_the_mask(sd1):
    model, vae, positive, negative = sd1
    latent = encode(vae, smooth_image())
    out = inpaint(model, positive, negative, set_noise_mask({"samples": latent}, right_half()))
    changed = (decode(vae, out) - decode(vae, latent)).abs()
    assert changed[:, :, 32:].mean() > 0.05
