"""CLIPTextEncode semantics: weights, chunks, clip skip, SDXL's two encoders."""

from __future__ import annotations

import torch

from diffusion.text_encoding import encode


def _clip(manager, tiny, kind):
    return manager.load_checkpoint(tiny(kind).checkpoint)[1]


def test_conditioning_is_a_list_of_tensor_and_dict_pairs(manager, tiny):
    cond = encode(_clip(manager, tiny, "sd1"), "a horse")
    assert isinstance(cond, list) and len(cond) == 1
    tensor, meta = cond[0]
    assert tensor.shape == (1, 77, 32) and "pooled_output" in meta


def test_weight_one_equals_the_plain_prompt(manager, tiny):
    clip = _clip(manager, tiny, "sd1")
    assert torch.allclose(encode(clip, "a (horse:1.0)")[0][0], encode(clip, "a horse")[0][0])


def test_weight_scales_distance_from_the_empty_prompt_at_its_tokens_only(manager, tiny):
    clip = _clip(manager, tiny, "sd1")
    plain, weighted, empty = (encode(clip, t)[0][0][0] for t in ("a horse", "a (horse:1.5)", ""))
    assert torch.allclose(weighted[2], (plain[2] - empty[2]) * 1.5 + empty[2], atol=1e-5)
    assert torch.allclose(weighted[1], plain[1]) and torch.allclose(weighted[3], plain[3])


def test_long_prompt_gives_one_77_token_block_per_chunk(manager, tiny):
    cond = encode(_clip(manager, tiny, "sd1"), " ".join(["horse"] * 100))[0][0]
    assert cond.shape == (1, 154, 32)


def test_clip_skip_reads_an_earlier_layer_through_the_final_norm(manager, tiny):
    clip = _clip(manager, tiny, "sd1")
    model = clip.encoders[0].model
    ids = torch.tensor([[49406, 320, 4558, 49407] + [49407] * 73])
    with torch.no_grad():
        states = model(input_ids=ids, output_hidden_states=True).hidden_states
        expected = model.final_layer_norm(states[-2])
    assert torch.allclose(encode(clip.clone(layer=-2), "a horse")[0][0], expected, atol=1e-5)
    assert not torch.allclose(encode(clip, "a horse")[0][0], expected, atol=1e-3)


def test_sdxl_joins_both_encoders_and_carries_the_pooled_output(manager, tiny):
    tensor, meta = encode(_clip(manager, tiny, "sdxl"), "a horse")[0]
    assert tensor.shape == (1, 77, 32 + 64) and meta["pooled_output"].shape == (1, 64)


def test_sdxl_size_conditioning_is_recorded(manager, tiny):
    _, meta = encode(_clip(manager, tiny, "sdxl"), "a horse", text_l="a horse",
                     extra={"width": 1024, "height": 768, "crop_w": 0, "crop_h": 0,
                            "target_width": 1024, "target_height": 768})[0]
    assert (meta["width"], meta["height"], meta["target_height"]) == (1024, 768, 768)
