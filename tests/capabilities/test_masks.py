"""Mask nodes: ComfyUI's semantics, checked pixel by pixel on small hand-made masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from nodes.masks import (FeatherMask, GrowMask, ImageCompositeMasked, ImagePadForOutpaint, ImageToMask,
                         InvertMask, LoadImageMask, MaskComposite, MaskToImage, SolidMask, ThresholdMask)


def dot(size=7, at=(3, 3)):
    mask = torch.zeros(1, size, size)
    mask[0, at[0], at[1]] = 1.0
    return mask


def test_invert_mask_is_one_minus_mask():
    mask = torch.tensor([[[0.0, 0.25], [1.0, 0.5]]])
    assert torch.equal(InvertMask.fn(mask), torch.tensor([[[1.0, 0.75], [0.0, 0.5]]]))


def test_solid_mask_has_the_value_everywhere_in_a_batch_of_one():
    mask = SolidMask.fn(value=0.25, width=5, height=3)
    assert mask.shape == (1, 3, 5) and torch.all(mask == 0.25)


def test_threshold_mask_is_one_strictly_above_the_value():
    mask = torch.tensor([[[0.2, 0.5, 0.7]]])
    assert ThresholdMask.fn(mask, value=0.5).tolist() == [[[0.0, 0.0, 1.0]]]


def test_grow_mask_with_tapered_corners_grows_a_diamond():
    grown = GrowMask.fn(dot(), expand=2, tapered_corners=True)[0]
    rows, cols = torch.nonzero(grown, as_tuple=True)
    distances = (rows - 3).abs() + (cols - 3).abs()
    assert grown.sum() == 13 and int(distances.max()) == 2


def test_grow_mask_without_tapered_corners_grows_a_square():
    grown = GrowMask.fn(dot(), expand=2, tapered_corners=False)[0]
    expected = torch.zeros(7, 7)
    expected[1:6, 1:6] = 1
    assert torch.equal(grown, expected)


def test_grow_mask_with_negative_expand_shrinks():
    mask = torch.zeros(1, 7, 7)
    mask[0, 1:6, 1:6] = 1
    shrunk = GrowMask.fn(mask, expand=-1, tapered_corners=False)[0]
    expected = torch.zeros(7, 7)
    expected[2:5, 2:5] = 1
    assert torch.equal(shrunk, expected)


def test_grow_mask_matches_scipy_grey_dilation_on_grey_values():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    mask = torch.rand(2, 9, 11, generator=torch.Generator().manual_seed(0))
    kernel = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    expected = [m.numpy() for m in mask]
    for _ in range(3):
        expected = [scipy_ndimage.grey_dilation(m, footprint=kernel) for m in expected]
    assert np.array_equal(GrowMask.fn(mask, expand=3, tapered_corners=True).numpy(), np.stack(expected))


def test_grow_mask_accepts_a_mask_without_batch_dimension():
    assert GrowMask.fn(dot()[0], expand=1, tapered_corners=True).shape == (1, 7, 7)


def test_feather_mask_ramps_the_left_edge_from_one_nth_to_one():
    out = FeatherMask.fn(torch.ones(1, 2, 6), left=4, top=0, right=0, bottom=0)[0]
    assert out[0].tolist() == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0])


def test_feather_mask_right_edge_reproduces_comfyui_indexing():
    # ComfyUI multiplies column -x for x in 0..n-1: the 1/n factor lands on column 0.
    out = FeatherMask.fn(torch.ones(1, 1, 6), left=0, top=0, right=3, bottom=0)[0, 0]
    assert out.tolist() == pytest.approx([1 / 3, 1.0, 1.0, 1.0, 1.0, 2 / 3])


def test_feather_mask_top_and_bottom_edges():
    out = FeatherMask.fn(torch.ones(1, 5, 1), left=0, top=2, right=0, bottom=3)[0, :, 0]
    assert out.tolist() == pytest.approx([1 / 6, 1.0, 1.0, 1.0, 2 / 3])


@pytest.mark.parametrize("operation, expected", [
    ("multiply", [[0.0, 0.25], [0.5, 1.0]]),
    ("add", [[1.0, 1.0], [1.0, 1.0]]),
    ("subtract", [[0.0, 0.0], [0.5, 0.0]]),
    # logic ops round first: 0.5 rounds to 0 (half to even, as torch.round does in ComfyUI)
    ("and", [[0.0, 0.0], [0.0, 1.0]]),
    ("or", [[1.0, 0.0], [1.0, 1.0]]),
    ("xor", [[1.0, 0.0], [1.0, 0.0]]),
])
def test_mask_composite_operations(operation, expected):
    destination = torch.tensor([[[0.0, 0.5], [1.0, 1.0]]])
    source = torch.tensor([[[1.0, 0.5], [0.5, 1.0]]])
    out = MaskComposite.fn(destination, source, x=0, y=0, operation=operation)
    assert torch.allclose(out[0], torch.tensor(expected))


def test_mask_composite_places_source_at_offset_and_clips_at_the_border():
    out = MaskComposite.fn(torch.zeros(1, 3, 3), torch.ones(1, 2, 2), x=2, y=1, operation="add")[0]
    assert out.tolist() == [[0, 0, 0], [0, 0, 1], [0, 0, 1]]


def test_image_to_mask_takes_the_chosen_channel_of_every_image():
    image = torch.rand(2, 3, 4, 3)
    assert torch.equal(ImageToMask.fn(image, channel="green"), image[..., 1])


def test_image_to_mask_alpha_of_an_rgb_image_is_a_clear_error():
    with pytest.raises(ValueError, match="no alpha channel"):
        ImageToMask.fn(torch.rand(1, 2, 2, 3), channel="alpha")


def test_mask_to_image_repeats_the_mask_in_three_channels():
    mask = torch.rand(2, 3, 4)
    image = MaskToImage.fn(mask)
    assert image.shape == (2, 3, 4, 3) and all(torch.equal(image[..., c], mask) for c in range(3))


def test_image_composite_masked_pastes_source_at_x_y():
    destination = torch.zeros(1, 4, 4, 3)
    source = torch.ones(1, 2, 2, 3)
    out = ImageCompositeMasked.fn(destination, source, x=1, y=2, resize_source=False, mask=None)
    expected = torch.zeros(1, 4, 4, 3)
    expected[:, 2:4, 1:3] = 1
    assert torch.equal(out, expected)
    assert torch.all(destination == 0), "the destination input is not modified"


def test_image_composite_masked_blends_through_the_mask():
    mask = torch.tensor([[[1.0, 0.0], [0.5, 0.0]]])
    out = ImageCompositeMasked.fn(torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2, 3), x=0, y=0,
                                  resize_source=False, mask=mask)
    assert out[0, ..., 0].tolist() == [[1.0, 0.0], [0.5, 0.0]]


def test_image_composite_masked_resize_source_covers_the_destination():
    out = ImageCompositeMasked.fn(torch.zeros(1, 4, 6, 3), torch.ones(1, 2, 2, 3), x=0, y=0,
                                  resize_source=True, mask=None)
    assert torch.all(out == 1)


def test_image_composite_masked_gives_rgb_source_an_opaque_alpha_over_rgba():
    out = ImageCompositeMasked.fn(torch.zeros(1, 2, 2, 4), torch.full((1, 2, 2, 3), 0.5), x=0, y=0,
                                  resize_source=False, mask=None)
    assert out.shape[-1] == 4 and torch.all(out[..., 3] == 1) and torch.all(out[..., :3] == 0.5)


def comfy_outpaint_mask(d2, d3, left, top, right, bottom, feathering):
    """ComfyUI's loop, written out as the reference."""
    mask = torch.ones(d2 + top + bottom, d3 + left + right)
    t = torch.zeros(d2, d3)
    if feathering > 0 and feathering * 2 < d2 and feathering * 2 < d3:
        for i in range(d2):
            for j in range(d3):
                d = min(i if top else d2, d2 - i if bottom else d2, j if left else d3, d3 - j if right else d3)
                if d < feathering:
                    t[i, j] = ((feathering - d) / feathering) ** 2
    mask[top:top + d2, left:left + d3] = t
    return mask


def test_image_pad_for_outpaint_pads_with_grey_and_masks_the_border():
    image = torch.rand(1, 10, 12, 3)
    padded, mask = ImagePadForOutpaint.fn(image, left=8, top=0, right=0, bottom=16, feathering=0)
    assert padded.shape == (1, 26, 20, 3)
    assert torch.equal(padded[:, :10, 8:], image) and torch.all(padded[:, 10:] == 0.5)
    assert torch.equal(mask[0], comfy_outpaint_mask(10, 12, 8, 0, 0, 16, 0))


def test_image_pad_for_outpaint_feathers_like_comfyui():
    _, mask = ImagePadForOutpaint.fn(torch.rand(1, 20, 24, 3), left=8, top=8, right=0, bottom=0, feathering=6)
    assert torch.allclose(mask[0], comfy_outpaint_mask(20, 24, 8, 8, 0, 0, 6))


def save_png(path, array, mode):
    Image.fromarray(array, mode=mode).save(path)


def test_load_image_mask_alpha_channel_is_inverted(ctx, env):
    rgba = np.zeros((2, 3, 4), dtype=np.uint8)
    rgba[..., 3] = [[0, 255, 51], [255, 255, 0]]
    save_png(env.folders.input / "m.png", rgba, "RGBA")
    mask = LoadImageMask.fn(ctx, image="m.png", channel="alpha")
    assert mask.shape == (1, 2, 3)
    assert torch.allclose(mask[0], torch.tensor([[1.0, 0.0, 0.8], [0.0, 0.0, 1.0]]))


def test_load_image_mask_colour_channel_is_taken_as_is(ctx, env):
    rgb = np.zeros((1, 2, 3), dtype=np.uint8)
    rgb[0, :, 1] = [0, 255]
    save_png(env.folders.input / "g.png", rgb, "RGB")
    assert LoadImageMask.fn(ctx, image="g.png", channel="green")[0].tolist() == [[0.0, 1.0]]


def test_load_image_mask_of_an_opaque_image_alpha_is_all_zero(ctx, env):
    save_png(env.folders.input / "o.png", np.full((2, 2, 3), 9, dtype=np.uint8), "RGB")
    assert torch.all(LoadImageMask.fn(ctx, image="o.png", channel="alpha") == 0)


def test_load_image_mask_of_a_missing_file_names_it(ctx):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        LoadImageMask.fn(ctx, image="nope.png", channel="alpha")
