"""Conditioning composition: the Conditioning* nodes build the lists ComfyUI builds, and
the guidance predicts each entry over its area or mask, weights and averages them, and
skips entries outside their timestep range."""

from __future__ import annotations

import pytest
import torch

from diffusion import composition as ops
from diffusion.errors import SamplingError
from diffusion.guidance import GuidedModel
from diffusion.sampling import sample
from diffusion.text_encoding import encode as encode_text


@pytest.fixture(scope="module")
def sd1(manager, tiny):
    model, clip, _ = manager.load_checkpoint(tiny("sd1").checkpoint)
    return model, encode_text(clip, "a red house"), encode_text(clip, "a blue lake")


def predict(model, positive, x, t):
    """The guided model's output without CFG (cfg 1: positive entries only)."""
    return GuidedModel(model, positive, [], 1.0, latent_shape=x.shape)(x, t)


def x_in():
    return torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))


def left_half_mask():
    mask = torch.zeros(1, 64, 64)
    mask[:, :, :32] = 1
    return mask


def test_masked_conds_each_predict_their_own_half(sd1):
    model, a, b = sd1
    x = x_in()
    both = ops.combine(ops.set_mask(a, left_half_mask(), 1.0, "default"),
                       ops.set_mask(b, 1 - left_half_mask(), 1.0, "default"))
    out = predict(model, both, x, 500.0)
    assert torch.allclose(out[..., :4], predict(model, a, x, 500.0)[..., :4], atol=1e-5)
    assert torch.allclose(out[..., 4:], predict(model, b, x, 500.0)[..., 4:], atol=1e-5)


def test_combined_full_image_conds_average_by_strength(sd1):
    model, a, b = sd1
    x = x_in()
    mixed = ops.combine(a, ops.with_values(b, strength=3.0))
    expected = (predict(model, a, x, 500.0) + 3 * predict(model, b, x, 500.0)) / 4
    assert torch.allclose(predict(model, mixed, x, 500.0), expected, atol=1e-5)


def test_an_area_over_the_whole_image_equals_no_area(sd1):
    model, a, _ = sd1
    x = x_in()
    assert torch.allclose(predict(model, ops.set_area(a, 64, 64, 0, 0, 1.0), x, 500.0),
                          predict(model, a, x, 500.0), atol=1e-6)


def test_two_area_composition_differs_by_region(sd1):
    model, a, b = sd1
    x = x_in()
    composed = ops.combine(ops.set_area(a, 32, 64, 0, 0, 1.0), ops.set_area(b, 32, 64, 32, 0, 1.0))
    out = predict(model, composed, x, 500.0)
    only_a, only_b = predict(model, a, x, 500.0), predict(model, b, x, 500.0)

    def dist(p, q, cols):
        return float((p[..., cols] - q[..., cols]).abs().mean())

    left, right = slice(0, 4), slice(4, 8)
    assert dist(out, only_a, left) < dist(out, only_b, left)
    assert dist(out, only_b, right) < dist(out, only_a, right)


def test_percentage_area_resolves_to_the_same_latent_box_as_pixels(sd1):
    model, a, b = sd1
    x = x_in()
    by_pixels = ops.combine(b, ops.set_area(a, 32, 64, 32, 0, 1.0))
    by_percent = ops.combine(b, ops.set_area_percentage(a, 0.5, 1.0, 0.5, 0.0, 1.0))
    assert torch.allclose(predict(model, by_pixels, x, 500.0), predict(model, by_percent, x, 500.0), atol=1e-6)


def test_timestep_range_restricts_when_a_cond_applies(sd1):
    model, a, b = sd1
    x = x_in()
    early_a_late_b = ops.combine(ops.set_timestep_range(a, 0.0, 0.5), ops.set_timestep_range(b, 0.5, 1.0))
    # percent 0 is timestep 999 (most noise), percent 1 is timestep 0
    assert torch.allclose(predict(model, early_a_late_b, x, 900.0), predict(model, a, x, 900.0), atol=1e-6)
    assert torch.allclose(predict(model, early_a_late_b, x, 100.0), predict(model, b, x, 100.0), atol=1e-6)


def test_timestep_range_changes_the_sampled_latent(sd1):
    model, a, b = sd1
    latent = {"samples": torch.zeros(1, 4, 8, 8)}

    def run(positive):
        return sample(model, seed=1, steps=4, cfg=1.0, sampler_name="euler", scheduler="normal",
                      positive=positive, negative=[], latent=latent)["samples"]

    switched = run(ops.combine(ops.set_timestep_range(a, 0.0, 0.5), ops.set_timestep_range(b, 0.5, 1.0)))
    assert not torch.allclose(switched, run(a)) and not torch.allclose(switched, run(b))


def test_zero_out_gives_zero_tensors_and_pooled_output():
    cond = [[torch.randn(1, 77, 32), {"pooled_output": torch.randn(1, 16), "strength": 0.5}]]
    zeroed = ops.zero_out(cond)
    assert torch.equal(zeroed[0][0], torch.zeros(1, 77, 32))
    assert torch.equal(zeroed[0][1]["pooled_output"], torch.zeros(1, 16)) and zeroed[0][1]["strength"] == 0.5
    assert cond[0][0].abs().sum() > 0  # the input is untouched


def test_concat_appends_the_tokens_of_the_first_source_entry():
    to = [[torch.ones(1, 77, 8), {}], [torch.zeros(1, 77, 8), {}]]
    out = ops.concat(to, [[torch.full((1, 77, 8), 2.0), {}]])
    assert [c.shape[1] for c, _ in out] == [154, 154]
    assert torch.equal(out[0][0][:, 77:], torch.full((1, 77, 8), 2.0))


def test_average_blends_tokens_and_pads_a_shorter_source_with_zeros():
    to = [[torch.ones(1, 154, 8), {"pooled_output": torch.ones(1, 4)}]]
    source = [[torch.full((1, 77, 8), 3.0), {"pooled_output": torch.zeros(1, 4)}]]
    out = ops.average(to, source, 0.25)
    assert torch.allclose(out[0][0][:, :77], torch.full((1, 77, 8), 0.25 + 0.75 * 3))
    assert torch.allclose(out[0][0][:, 77:], torch.full((1, 77, 8), 0.25))
    assert torch.allclose(out[0][1]["pooled_output"], torch.full((1, 4), 0.25))


def test_set_area_stores_latent_pixels_and_strength():
    out = ops.set_area([[torch.zeros(1, 77, 8), {}]], 128, 64, 40, 16, 0.7)
    assert out[0][1]["area"] == (8, 16, 2, 5) and out[0][1]["strength"] == 0.7


def test_bad_composition_inputs_are_clear_errors(sd1):
    model, a, _ = sd1
    with pytest.raises(SamplingError, match="start .* must not be after end"):
        ops.set_timestep_range(a, 0.8, 0.2)
    with pytest.raises(SamplingError, match="cannot concatenate 8-wide"):
        ops.concat(a, [[torch.zeros(1, 77, 8), {}]])
    with pytest.raises(SamplingError, match="outside the 64×64 image"):
        predict(model, ops.set_area(a, 64, 64, 128, 0, 1.0), x_in(), 500.0)


def test_composition_nodes_run_in_a_graph(tiny, env):
    from tests.diffusion.conftest import install, run_graph, saved_images, txt2img_prompt

    prompt = txt2img_prompt(install(env, tiny("sd1")), width=128)
    prompt["20"] = {"class_type": "CLIPTextEncode", "inputs": {"text": "a tree", "clip": ["4", 1]}}
    prompt["21"] = {"class_type": "ConditioningSetArea", "inputs": {
        "conditioning": ["20", 0], "width": 64, "height": 64, "x": 64, "y": 0, "strength": 1.0}}
    prompt["22"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0],
                                                                    "conditioning_2": ["21", 0]}}
    prompt["23"] = {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["7", 0]}}
    prompt["3"]["inputs"].update(positive=["22", 0], negative=["23", 0])
    outcome = run_graph(env, prompt)
    assert outcome.status == "success", outcome.error
    assert len(saved_images(env, outcome)) == 1
