"""Image transform nodes: exact pixel math, shapes, and ComfyUI's inputs."""

from __future__ import annotations

import pytest
import torch

from nodes.image import BLEND_MODES, ImageBatch, ImageBlend, ImageInvert, ImageScale, ImageScaleBy
from nodes.imaging import MAX_RESOLUTION, UPSCALE_METHODS, resize


def ramp(batch: int = 1, height: int = 2, width: int = 2, channels: int = 3) -> torch.Tensor:
    """Distinct values in 0..1 so every pixel can be traced."""
    count = batch * height * width * channels
    return (torch.arange(count, dtype=torch.float32) / count).reshape(batch, height, width, channels)


def solid(value: float, batch: int = 1, height: int = 4, width: int = 4) -> torch.Tensor:
    return torch.full((batch, height, width, 3), value)


# -- invert ----------------------------------------------------------------------------


def test_invert_gives_one_minus_each_value():
    image = ramp()
    assert torch.equal(ImageInvert.fn(image), 1.0 - image)


# -- scale -----------------------------------------------------------------------------


def test_nearest_upscale_repeats_each_pixel():
    image = ramp(height=2, width=2)
    scaled = ImageScale.fn(image, "nearest-exact", 4, 4, "disabled")
    expected = image.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    assert torch.equal(scaled, expected)


def test_area_downscale_averages_blocks():
    image = ramp(height=4, width=4)
    scaled = ImageScale.fn(image, "area", 2, 2, "disabled")
    expected = image.reshape(1, 2, 2, 2, 2, 3).mean(dim=(2, 4))
    assert torch.allclose(scaled, expected, atol=1e-6)


def test_scaling_keeps_batch_and_channels():
    for method in UPSCALE_METHODS:
        assert ImageScale.fn(ramp(batch=3, height=5, width=7, channels=4), method, 10, 6, "disabled").shape == (3, 6, 10, 4)


def test_lanczos_keeps_a_flat_colour_flat_and_in_range():
    scaled = ImageScale.fn(solid(0.25, height=5, width=5), "lanczos", 13, 9, "disabled")
    assert scaled.shape == (1, 9, 13, 3)
    assert torch.allclose(scaled, torch.full_like(scaled, 0.25), atol=1e-5)


def test_lanczos_results_are_clamped_to_the_unit_range():
    checker = torch.zeros(1, 8, 8, 3)
    checker[:, ::2, ::2] = 1.0
    scaled = ImageScale.fn(checker, "lanczos", 20, 20, "disabled")
    assert scaled.min() >= 0.0 and scaled.max() <= 1.0


def test_a_zero_side_keeps_the_aspect_ratio():
    image = ramp(height=4, width=8)
    assert ImageScale.fn(image, "bilinear", 0, 2, "disabled").shape == (1, 2, 4, 3)
    assert ImageScale.fn(image, "bilinear", 16, 0, "disabled").shape == (1, 8, 16, 3)


def test_zero_width_and_height_leave_the_image_alone():
    image = ramp()
    assert ImageScale.fn(image, "bicubic", 0, 0, "center") is image


def test_center_crop_keeps_the_middle_at_the_target_aspect_ratio():
    image = ramp(height=4, width=8)
    cropped = ImageScale.fn(image, "nearest-exact", 4, 4, "center")
    assert torch.equal(cropped, image[:, :, 2:6])


def test_scale_by_multiplies_both_sides_and_rounds():
    assert ImageScaleBy.fn(ramp(height=4, width=6), "bilinear", 1.5).shape == (1, 6, 9, 3)


def test_scale_by_never_shrinks_a_side_to_nothing():
    assert ImageScaleBy.fn(ramp(height=3, width=3), "nearest-exact", 0.01).shape == (1, 1, 1, 3)


def test_an_unknown_upscale_method_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown upscale method 'sinc'"):
        resize(ramp(), 4, 4, "sinc")


# -- batch -----------------------------------------------------------------------------


def test_batch_stacks_images_of_the_same_size_in_order():
    first, second = ramp(batch=2), ramp(batch=1) * 0.5
    batch = ImageBatch.fn(first, second)
    assert batch.shape == (3, 2, 2, 3)
    assert torch.equal(batch[:2], first) and torch.equal(batch[2:], second)


def test_batch_resizes_the_second_image_to_the_first():
    batch = ImageBatch.fn(solid(0.1, height=4, width=6), solid(0.7, height=8, width=8))
    assert batch.shape == (2, 4, 6, 3)
    assert torch.allclose(batch[1], torch.full((4, 6, 3), 0.7))


def test_batch_refuses_images_with_different_channel_counts():
    with pytest.raises(ValueError, match="image1 has 3 channels and image2 4"):
        ImageBatch.fn(ramp(), ramp(channels=4))


# -- blend -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, base, layer, expected", [
    ("normal", 0.2, 0.6, 0.6),
    ("multiply", 0.2, 0.6, 0.12),
    ("screen", 0.2, 0.6, 1 - 0.8 * 0.4),
    ("overlay", 0.2, 0.6, 2 * 0.2 * 0.6),
    ("overlay", 0.8, 0.6, 1 - 2 * 0.2 * 0.4),
    ("soft_light", 0.2, 0.3, 0.2 - (1 - 0.6) * 0.2 * 0.8),
    ("soft_light", 0.2, 0.6, 0.2 + 0.2 * (((16 * 0.2 - 12) * 0.2 + 4) * 0.2 - 0.2)),
    ("soft_light", 0.64, 0.6, 0.64 + 0.2 * (0.8 - 0.64)),
    ("difference", 0.6, 0.2, 0.4),
])
def test_blend_modes_at_full_strength(mode, base, layer, expected):
    blended = ImageBlend.fn(solid(base), solid(layer), 1.0, mode)
    assert torch.allclose(blended, torch.full_like(blended, expected), atol=1e-6)


def test_blend_factor_mixes_the_blend_into_the_first_image():
    blended = ImageBlend.fn(solid(0.2), solid(0.6), 0.25, "multiply")
    assert torch.allclose(blended, torch.full_like(blended, 0.2 * 0.75 + 0.12 * 0.25))


def test_blend_results_are_clamped_to_the_unit_range():
    blended = ImageBlend.fn(solid(0.2), solid(0.6), 1.0, "difference")
    assert torch.equal(blended, torch.zeros_like(blended))


def test_blend_resizes_the_second_image_to_the_first():
    blended = ImageBlend.fn(solid(0.2, height=4, width=6), solid(0.6, height=2, width=2), 1.0, "normal")
    assert blended.shape == (1, 4, 6, 3)
    assert torch.allclose(blended, torch.full_like(blended, 0.6), atol=1e-6)


def test_one_image_blends_over_a_whole_batch():
    blended = ImageBlend.fn(solid(0.2, batch=3), solid(0.6), 1.0, "normal")
    assert blended.shape == (3, 4, 4, 3)


def test_blending_batches_of_different_sizes_is_a_clear_error():
    with pytest.raises(ValueError, match="cannot blend a batch of 2 over a batch of 3"):
        ImageBlend.fn(solid(0.2, batch=3), solid(0.6, batch=2), 1.0, "normal")


def test_an_unknown_blend_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown blend mode 'dodge'"):
        ImageBlend.fn(solid(0.2), solid(0.6), 1.0, "dodge")


# -- schemas match ComfyUI's -------------------------------------------------------------


def widgets(definition):
    """Each widget input's (type, default, min, max, choices)."""
    return {spec.name: (spec.type, spec.default, spec.min, spec.max, spec.choices)
            for spec in definition.schema().inputs if spec.is_widget}


def test_image_scale_has_comfyuis_inputs():
    schema = ImageScale.schema()
    assert (schema.category, schema.display_name) == ("image/upscaling", "Upscale Image")
    assert schema.input("image").type == "IMAGE"
    assert widgets(ImageScale) == {
        "upscale_method": ("COMBO", "nearest-exact", None, None, UPSCALE_METHODS),
        "width": ("INT", 512, 0, MAX_RESOLUTION, None),
        "height": ("INT", 512, 0, MAX_RESOLUTION, None),
        "crop": ("COMBO", "disabled", None, None, ("disabled", "center")),
    }
    assert [spec.name for spec in schema.inputs] == ["image", "upscale_method", "width", "height", "crop"]


def test_image_scale_by_has_comfyuis_inputs():
    spec = ImageScaleBy.schema().input("scale_by")
    assert (spec.default, spec.min, spec.max, spec.step) == (1.0, 0.01, 8.0, 0.01)
    assert [s.name for s in ImageScaleBy.schema().inputs] == ["image", "upscale_method", "scale_by"]


def test_image_blend_has_comfyuis_inputs():
    schema = ImageBlend.schema()
    assert schema.category == "image/postprocessing"
    assert [s.name for s in schema.inputs] == ["image1", "image2", "blend_factor", "blend_mode"]
    factor = schema.input("blend_factor")
    assert (factor.default, factor.min, factor.max, factor.step) == (0.5, 0.0, 1.0, 0.01)
    assert schema.input("blend_mode").choices == BLEND_MODES


def test_batch_and_invert_have_comfyuis_inputs():
    assert [s.name for s in ImageBatch.schema().inputs] == ["image1", "image2"]
    assert [s.name for s in ImageInvert.schema().inputs] == ["image"]
    assert ImageBatch.schema().category == ImageInvert.schema().category == "image"
