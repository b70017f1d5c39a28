"""Canny and threshold preprocessors; latent and pixel-budget resizing."""

from __future__ import annotations

import pytest
import torch

from nodes.latent_resize import LatentUpscale, LatentUpscaleBy, bislerp
from nodes.preprocess import Canny, ImageThreshold
from nodes.upscale import ImageScaleToTotalPixels


def vertical_step(height=16, width=16, at=8):
    image = torch.zeros(1, height, width, 3)
    image[:, :, at:] = 1.0
    return image


def test_canny_finds_a_vertical_step_as_a_thin_vertical_line():
    edges = Canny.fn(vertical_step(), low_threshold=0.4, high_threshold=0.8)
    assert edges.shape == (1, 16, 16, 3)
    columns = torch.nonzero(edges[0, :, :, 0].sum(0)).flatten().tolist()
    assert len(columns) == 1 and columns[0] in (7, 8)
    assert torch.all(edges[0, :, columns[0], 0] == 1)


def test_canny_output_is_black_and_white_in_three_equal_channels():
    edges = Canny.fn(torch.rand(2, 20, 24, 3, generator=torch.Generator().manual_seed(1)), 0.2, 0.5)
    assert set(edges.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(edges[..., 0], edges[..., 1]) and torch.equal(edges[..., 0], edges[..., 2])


def test_canny_on_a_flat_image_finds_no_edges():
    assert torch.all(Canny.fn(torch.full((1, 12, 12, 3), 0.3), 0.1, 0.2) == 0)


def test_canny_high_threshold_above_the_edge_strength_removes_it():
    faint = vertical_step() * 0.05
    assert torch.all(Canny.fn(faint, low_threshold=0.5, high_threshold=0.9) == 0)


def test_canny_hysteresis_keeps_weak_edges_connected_to_strong_ones():
    from diffusion.preprocess import canny

    # A step whose contrast fades along it (edge strength ~1.25 at the top, ~0.2 at the bottom).
    image = torch.zeros(1, 24, 16, 3)
    image[0, :, 8:] = torch.linspace(0.5, 0.08, 24)[:, None, None]
    no_seed = canny(image, low_threshold=0.15, high_threshold=2.0)
    seeded = canny(image, low_threshold=0.15, high_threshold=1.0)  # only the top rows are strong
    assert no_seed.sum() == 0
    assert bool(seeded[0, :, :, 0].sum(1).gt(0).all()), "the whole line survives through its strong top"


def test_canny_rejects_low_threshold_above_high():
    with pytest.raises(ValueError, match="low"):
        Canny.fn(vertical_step(), low_threshold=0.9, high_threshold=0.2)


def test_image_threshold_uses_luma():
    image = torch.tensor([[[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]])  # luma 0.299 and 0.587
    out = ImageThreshold.fn(image, threshold=0.5)
    assert out[0, 0, :, 0].tolist() == [0.0, 1.0] and out.shape == (1, 1, 2, 3)


def latent(b=2, c=4, h=8, w=12, **extra):
    return {"samples": torch.randn(b, c, h, w, generator=torch.Generator().manual_seed(0)), **extra}


def test_latent_upscale_resizes_to_an_eighth_of_the_pixel_size():
    out = LatentUpscale.fn(latent(), upscale_method="nearest-exact", width=192, height=128, crop="disabled")
    assert out["samples"].shape == (2, 4, 16, 24)


def test_latent_upscale_nearest_by_two_repeats_each_latent_pixel():
    src = latent(b=1, h=2, w=2)
    out = LatentUpscale.fn(src, upscale_method="nearest-exact", width=64, height=64, crop="disabled")["samples"]
    assert torch.equal(out, src["samples"].repeat_interleave(4, -1).repeat_interleave(4, -2))


def test_latent_upscale_zero_width_keeps_aspect_and_minimum_is_64_pixels():
    out = LatentUpscale.fn(latent(h=8, w=16), upscale_method="bilinear", width=0, height=32, crop="disabled")
    assert out["samples"].shape[-2:] == (8, 16)  # height raised to 64 px, width follows the aspect


def test_latent_upscale_zero_by_zero_returns_the_input():
    src = latent()
    assert LatentUpscale.fn(src, upscale_method="bilinear", width=0, height=0, crop="disabled") is src


def test_latent_upscale_keeps_batch_index_and_does_not_modify_its_input():
    src = latent(batch_index=[3, 4])
    before = src["samples"].clone()
    out = LatentUpscale.fn(src, upscale_method="bicubic", width=128, height=128, crop="center")
    assert out["batch_index"] == [3, 4] and torch.equal(src["samples"], before)


def test_latent_upscale_center_crop_crops_the_noise_mask_too():
    mask = torch.zeros(1, 1, 64, 128)
    mask[..., 32:96] = 1  # the middle half
    src = latent(b=1, h=8, w=16, noise_mask=mask)
    out = LatentUpscale.fn(src, upscale_method="nearest-exact", width=64, height=64, crop="center")
    assert out["samples"].shape[-2:] == (8, 8)
    assert torch.all(out["noise_mask"] == 1) and out["noise_mask"].shape[-2:] == (64, 64)


def test_latent_upscale_by_rounds_the_scaled_size():
    out = LatentUpscaleBy.fn(latent(h=8, w=12), upscale_method="area", scale_by=1.5)
    assert out["samples"].shape[-2:] == (12, 18)


def test_bislerp_keeps_identical_neighbours_and_interpolates_their_length():
    a = torch.tensor([1.0, 0.0, 0.0, 0.0])
    src = torch.stack([a, 3 * a], -1).reshape(1, 4, 1, 2)  # same direction, lengths 1 and 3
    out = bislerp(src, 4, 1)
    assert torch.allclose(out[0, 0, 0], torch.tensor([1.0, 1.5, 2.5, 3.0]))


def test_bislerp_keeps_unit_length_between_orthogonal_vectors():
    src = torch.zeros(1, 2, 1, 2)
    src[0, 0, 0, 0] = 1.0
    src[0, 1, 0, 1] = 1.0
    out = bislerp(src, 5, 1)
    assert torch.allclose(out[0].norm(dim=0), torch.ones(1, 5), atol=1e-6)


def test_latent_upscale_bislerp_output_shape():
    out = LatentUpscale.fn(latent(), upscale_method="bislerp", width=160, height=96, crop="disabled")
    assert out["samples"].shape == (2, 4, 12, 20)


def test_image_scale_to_total_pixels_hits_the_pixel_budget_with_the_aspect_ratio():
    out = ImageScaleToTotalPixels.fn(torch.rand(1, 30, 60, 3), upscale_method="bilinear", megapixels=0.01,
                                     resolution_steps=1)
    height, width = out.shape[1:3]
    # 0.01 * 1024² px at 2:1 → 144.8 x 72.4, each side rounded on its own (as ComfyUI does)
    assert (width, height) == (145, 72)


def test_image_scale_to_total_pixels_rounds_to_resolution_steps():
    out = ImageScaleToTotalPixels.fn(torch.rand(1, 30, 50, 3), upscale_method="area", megapixels=0.02,
                                     resolution_steps=16)
    assert out.shape[1] % 16 == 0 and out.shape[2] % 16 == 0
