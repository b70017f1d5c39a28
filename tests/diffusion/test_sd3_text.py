"""SD3's text side through Loom: ComfyUI's clip_l / clip_g / t5xxl files, the CLIPs the loaders make
of them, and ComfyUI's SD3 encoding, checked against diffusers' StableDiffusion3Pipeline on the
same tiny weights (tests.fixtures.tiny_sd3_text: CLIP-L and CLIP-G 32 wide, T5 64 wide)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from tests.diffusion.conftest import run_graph

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a photograph of an astronaut riding a horse"


def _triple(manager, sd3_text, t5="t5"):
    from diffusion.sd3_text import load_triple_clip

    return load_triple_clip(manager, [sd3_text.files[t5], sd3_text.files["clip_g"], sd3_text.files["clip_l"]])


def _dual(manager, sd3_text, first, second, clip_type="sd3"):
    from diffusion.sd3_text import load_dual_clip

    return load_dual_clip(manager, [sd3_text.files[first], sd3_text.files[second]], clip_type)


def _encode(clip, clip_l, clip_g, t5xxl, empty_padding="none"):
    from diffusion.sd3_text import encode_sd3

    [[features, meta]] = encode_sd3(clip, clip_l, clip_g, t5xxl, empty_padding)
    return features, meta["pooled_output"]


def _clip_ids(text, pad="<|endoftext|>"):
    from diffusion.tokenizer import clip_tokenizer

    return clip_tokenizer(pad)(text, padding="max_length", max_length=77, return_tensors="pt").input_ids


def _close(a, b, atol=1e-5):
    import torch

    return a.shape == b.shape and torch.allclose(a, b, atol=atol)


# -- parity with diffusers ------------------------------------------------------------------------

@pytest.mark.parametrize("prompt", [PROMPT, "a red cat, sitting on a chair"])
def test_clip_text_encode_matches_diffusers_sd3_encode_prompt(manager, sd3_text, prompt):
    import torch
    from diffusers import StableDiffusion3Pipeline

    from diffusion.text_encoding import encode
    from tests.fixtures.tiny_sd3_text import reference_text

    pipe = StableDiffusion3Pipeline(transformer=None, vae=None, scheduler=None, **reference_text(sd3_text))
    with torch.inference_mode():
        embeds, _, pooled, _ = pipe.encode_prompt(prompt, prompt, prompt, do_classifier_free_guidance=False,
                                                  max_sequence_length=77)
    [[features, meta]] = encode(_triple(manager, sd3_text), prompt)
    assert features.shape == (1, 154, 64) and meta["pooled_output"].shape == (1, 64)
    assert _close(features, embeds) and _close(meta["pooled_output"], pooled)


def test_clip_text_encode_sdxl_on_an_sd3_clip_gives_text_l_to_clip_l_and_text_g_to_the_rest(manager, sd3_text):
    from diffusion.text_encoding import encode

    clip = _triple(manager, sd3_text)
    [[features, meta]] = encode(clip, "a dog", text_l="a cat")
    expected, pooled = _encode(clip, "a cat", "a dog", "a dog", "empty_prompt")
    assert _close(features, expected) and _close(meta["pooled_output"], pooled)
    assert not _close(features, _encode(clip, "a dog", "a dog", "a dog")[0], atol=1e-3)


def test_triple_loader_orders_the_encoders_clip_l_clip_g_t5_whatever_the_file_order(manager, sd3_text):
    clip = _triple(manager, sd3_text)
    assert clip.family == "sd3" and [e.kind for e in clip.encoders] == ["clip_l", "clip_g", "t5"]
    assert type(clip.encoders[0].model).__name__ == "CLIPTextModel"  # CLIP-L's projection is not used
    assert type(clip.encoders[1].model).__name__ == "CLIPTextModelWithProjection"


def test_clip_l_pooled_output_is_unprojected_as_comfyuis(manager, tmp_path):
    import torch
    from safetensors.torch import save_file

    from diffusion.sd3_text import load_clip
    from tests.fixtures.tiny_sd3_text import clip_file_state, tiny_clip_l

    model = tiny_clip_l(seed=29, identity_projection=False)
    save_file(clip_file_state(model), str(tmp_path / "clip_l.safetensors"))
    _, pooled = _encode(load_clip(manager, tmp_path / "clip_l.safetensors", "sd3"), "a cat", "a cat", "")
    with torch.inference_mode():
        unprojected = model.text_model(input_ids=_clip_ids("a cat")).pooler_output
        projected = model(input_ids=_clip_ids("a cat")).text_embeds
    assert _close(pooled[:, :32], unprojected) and not _close(pooled[:, :32], projected, atol=1e-3)
    assert torch.equal(pooled[:, 32:], torch.zeros(1, 32))  # no CLIP-G


def test_t5xxl_fp8_file_keeps_fp8_weights_and_encodes_as_its_rounded_weights(manager, sd3_text):
    import torch

    from diffusion.t5_tokenizer import t5_ids

    clip = _triple(manager, sd3_text, t5="t5_fp8")
    linears = [m for m in clip.encoders[2].model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.float8_e4m3fn for m in linears)
    features, _ = _encode(clip, PROMPT, PROMPT, PROMPT)
    with torch.inference_mode():
        expected = sd3_text.modules["t5_fp8"](input_ids=torch.tensor([t5_ids(PROMPT, 77)])).last_hidden_state
    assert _close(features[:, 77:], expected)


# -- CLIPTextEncodeSD3 ----------------------------------------------------------------------------

def test_empty_padding_none_leaves_empty_clip_texts_out(manager, sd3_text):
    import torch

    clip = _triple(manager, sd3_text)
    dropped, dropped_pooled = _encode(clip, "", "", "a cat", "none")
    padded, padded_pooled = _encode(clip, "", "", "a cat", "empty_prompt")
    assert dropped.shape == (1, 77, 64) and torch.equal(dropped_pooled, torch.zeros(1, 64))
    assert padded.shape == (1, 154, 64) and _close(padded[:, 77:], dropped) and padded_pooled.abs().sum() > 0


def test_an_empty_clip_l_text_beside_a_clip_g_one_is_an_empty_prompt_either_way(manager, sd3_text):
    clip = _triple(manager, sd3_text)
    none, none_pooled = _encode(clip, "", "a cat", "a cat", "none")
    empty, empty_pooled = _encode(clip, "", "a cat", "a cat", "empty_prompt")
    assert _close(none, empty) and _close(none_pooled, empty_pooled)


def test_empty_t5_text_with_padding_none_encodes_the_end_token_alone(manager, sd3_text):
    import torch

    features, _ = _encode(_triple(manager, sd3_text), "a cat", "a cat", "", "none")
    with torch.inference_mode():
        end_only = sd3_text.modules["t5"](input_ids=torch.tensor([[1]])).last_hidden_state
    assert features.shape == (1, 78, 64) and _close(features[:, 77:], end_only)


def test_clip_l_and_clip_g_are_padded_to_the_same_number_of_chunks(manager, sd3_text):
    clip = _triple(manager, sd3_text)
    long, _ = _encode(clip, " ".join(["cat"] * 80), "a dog", "x")
    short, _ = _encode(clip, "cat", "a dog", "x")
    empty_g, _ = _encode(clip, "cat", "", "x", "empty_prompt")
    assert long.shape == (1, 154 + 77, 64)
    assert _close(long[:, :77, 32:], short[:, :77, 32:]) and _close(long[:, 77:154, 32:], empty_g[:, :77, 32:])


def test_prompt_weights_move_clip_features_along_the_empty_prompt_and_leave_pooled(manager, sd3_text):
    import torch

    clip = _triple(manager, sd3_text)
    plain, plain_pooled = _encode(clip, "a red cat", "a red cat", "x")
    weighted, weighted_pooled = _encode(clip, "a (red:1.5) cat", "a (red:1.5) cat", "x")
    empty, _ = _encode(clip, "", "", "x", "empty_prompt")
    w = torch.ones(77)
    w[2] = 1.5  # start, "a", "red"
    expected = (plain[:, :77] - empty[:, :77]) * w[None, :, None] + empty[:, :77]
    assert _close(weighted[:, :77], expected) and _close(weighted_pooled, plain_pooled)


def test_clip_set_last_layer_moves_clip_l_and_clip_g_not_t5(manager, sd3_text):
    import torch

    clip = _triple(manager, sd3_text)
    default, default_pooled = _encode(clip, PROMPT, PROMPT, PROMPT)
    last, last_pooled = _encode(clip.clone(layer=-1), PROMPT, PROMPT, PROMPT)
    with torch.inference_mode():
        l_last = sd3_text.modules["clip_l"](_clip_ids(PROMPT), output_hidden_states=True).hidden_states[-1]
        g_last = sd3_text.modules["clip_g"](_clip_ids(PROMPT, "!"), output_hidden_states=True).hidden_states[-1]
    assert _close(last[:, :77], torch.cat([l_last, g_last], dim=-1))
    assert torch.equal(last[:, 77:], default[:, 77:]) and _close(last_pooled, default_pooled)


# -- missing encoders -----------------------------------------------------------------------------

def test_dual_sd3_clip_l_and_clip_g_gives_77_tokens_padded_to_4096(manager, sd3_text):
    full, full_pooled = _encode(_triple(manager, sd3_text), PROMPT, PROMPT, PROMPT)
    features, pooled = _encode(_dual(manager, sd3_text, "clip_g", "clip_l"), PROMPT, PROMPT, PROMPT)
    assert features.shape == (1, 77, 4096) and not features[..., 64:].any()
    assert _close(features[..., :64], full[:, :77]) and _close(pooled, full_pooled)


def test_t5_alone_gives_t5_features_and_zero_pooled(manager, sd3_text):
    import torch

    from diffusion.sd3_text import load_clip

    full, _ = _encode(_triple(manager, sd3_text), PROMPT, PROMPT, PROMPT)
    features, pooled = _encode(load_clip(manager, sd3_text.files["t5"], "sd3"), PROMPT, PROMPT, PROMPT)
    assert _close(features, full[:, 77:]) and torch.equal(pooled, torch.zeros(1, 64))


def test_a_missing_clip_l_is_zeros_left_of_clip_g(manager, sd3_text):
    full, full_pooled = _encode(_triple(manager, sd3_text), PROMPT, PROMPT, PROMPT)
    features, pooled = _encode(_dual(manager, sd3_text, "t5", "clip_g"), PROMPT, PROMPT, PROMPT)
    assert features.shape == (1, 154, 64) and not features[:, :77, :32].any() and not pooled[:, :32].any()
    assert _close(features[:, :77, 32:], full[:, :77, 32:]) and _close(features[:, 77:], full[:, 77:])
    assert _close(pooled[:, 32:], full_pooled[:, 32:])


def test_a_missing_clip_g_is_zeros_right_of_clip_l(manager, sd3_text):
    full, full_pooled = _encode(_triple(manager, sd3_text), PROMPT, PROMPT, PROMPT)
    features, pooled = _encode(_dual(manager, sd3_text, "clip_l", "t5"), PROMPT, PROMPT, PROMPT)
    assert not features[:, :77, 32:].any() and not pooled[:, 32:].any()
    assert _close(features[:, :77, :32], full[:, :77, :32]) and _close(pooled[:, :32], full_pooled[:, :32])


def _stub(kind, width, projection=None):
    config = SimpleNamespace(d_model=width) if kind == "t5" else SimpleNamespace(hidden_size=width,
                                                                                 projection_dim=projection or width)
    return SimpleNamespace(kind=kind, model=SimpleNamespace(config=config))


@pytest.mark.parametrize("loaded, expected", [
    ([("clip_g", 1280)], (768, 1280, 4096)),            # ComfyUI's zeros(1, 768) beside a real CLIP-G
    ([("clip_l", 768), ("t5", 4096)], (768, 1280, 4096)),
    ([("t5", 4096)], (768, 1280, 4096)),
    ([("clip_g", 32), ("t5", 64)], (32, 32, 64)),       # test-size encoders: as wide as the loaded CLIP
    ([("t5", 64)], (32, 32, 64)),                       # or half the T5
])
def test_a_missing_clip_takes_its_real_width_or_the_test_size_rule(loaded, expected):
    from diffusion.sd3_text import widths

    size = widths([_stub(kind, width) for kind, width in loaded])
    assert (size.l, size.g, size.target) == expected


def test_clips_wider_together_than_the_t5_are_refused():
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_text import sd3_clip

    with pytest.raises(ModelLoadError, match=r"CLIP-L \(768\) and CLIP-G \(1280\) together are wider than the "
                                             r"T5-XXL \(64\)"):
        sd3_clip({"clip_l": _stub("clip_l", 768), "clip_g": _stub("clip_g", 1280), "t5": _stub("t5", 64)},
                 None, "mix")


def test_a_checkpoint_without_text_encoders_is_refused_when_it_encodes(manager):
    from diffusion.errors import PromptError
    from diffusion.sd3_text import sd3_clip

    clip = sd3_clip({}, manager, "sd3.5_large.safetensors")
    with pytest.raises(PromptError, match="sd3.5_large.safetensors holds no text encoders.*TripleCLIPLoader"):
        _encode(clip, "a", "a", "a")


def test_build_sd3_text_encoders_reads_whichever_encoders_a_checkpoint_holds(manager, sd3_text, tmp_path):
    from safetensors.torch import save_file

    from diffusion.loading import WeightSource
    from diffusion.sd3_text import build_sd3_text_encoders, sd3_clip
    from tests.fixtures.tiny_sd3_text import checkpoint_text_state

    save_file(checkpoint_text_state(sd3_text.modules, with_t5=False), str(tmp_path / "sd3_incl_clips.safetensors"))
    encoders = build_sd3_text_encoders(WeightSource(tmp_path / "sd3_incl_clips.safetensors"), manager.text_dtype,
                                       "sd3_incl_clips.safetensors")
    assert sorted(encoders) == ["clip_g", "clip_l"]
    separate = _encode(_dual(manager, sd3_text, "clip_l", "clip_g"), PROMPT, PROMPT, PROMPT)
    combined = _encode(sd3_clip(encoders, manager, "sd3_incl_clips.safetensors"), PROMPT, PROMPT, PROMPT)
    assert _close(combined[0], separate[0]) and _close(combined[1], separate[1])


# -- SDXL from separate files ---------------------------------------------------------------------

def test_dual_sdxl_is_an_sdxl_clip_of_the_same_modules(manager, sd3_text):
    from diffusion.text_encoding import encode

    clip = _dual(manager, sd3_text, "clip_g", "clip_l", "sdxl")
    sd3 = _triple(manager, sd3_text)
    assert clip.family == "sdxl" and [e.kind for e in clip.encoders] == ["clip_l", "openclip"]
    assert clip.encoders[1].model is sd3.encoders[1].model  # loaded once
    [[features, meta]] = encode(clip, PROMPT)
    full, full_pooled = _encode(sd3, PROMPT, PROMPT, PROMPT)
    assert _close(features, full[:, :77]) and _close(meta["pooled_output"], full_pooled[:, 32:])


# -- loader errors --------------------------------------------------------------------------------

def test_loaders_refuse_the_same_encoder_twice(manager, sd3_text):
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_text import load_triple_clip

    with pytest.raises(ModelLoadError, match="TripleCLIPLoader: clip_l.safetensors and clip_l.safetensors are both "
                                             "clip_l"):
        load_triple_clip(manager, [sd3_text.files["clip_l"], sd3_text.files["t5"], sd3_text.files["clip_l"]])
    with pytest.raises(ModelLoadError, match="DualCLIPLoader: .* are both t5xxl"):
        _dual(manager, sd3_text, "t5", "t5_fp8")


def test_dual_sdxl_wants_clip_l_and_clip_g(manager, sd3_text):
    from diffusion.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="type sdxl needs a clip_l and a clip_g file; t5xxl is not an SDXL"):
        _dual(manager, sd3_text, "clip_l", "t5", "sdxl")


@pytest.mark.parametrize("loader, clip_type", [("DualCLIPLoader", "hidream"), ("CLIPLoader", "wan")])
def test_an_unsupported_type_names_the_supported_ones(manager, sd3_text, loader, clip_type):
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_text import load_clip

    with pytest.raises(ModelLoadError, match=f"{loader}: type '{clip_type}' is not supported.*sd3"):
        if loader == "CLIPLoader":
            load_clip(manager, sd3_text.files["t5"], clip_type)
        else:
            _dual(manager, sd3_text, "clip_l", "t5", clip_type)


@pytest.fixture
def wrong_files(tmp_path):
    """Small files that are not text encoders: an SD3 transformer's and a VAE's header names."""
    import torch
    from safetensors.torch import save_file

    files = {"SD3 transformer (MMDiT)": {"joint_blocks.0.x_block.attn.qkv.weight": torch.zeros(6, 2),
                                         "x_embedder.proj.weight": torch.zeros(2, 16, 2, 2)},
             "VAE": {"decoder.conv_in.weight": torch.zeros(2, 16, 3, 3), "encoder.conv_in.weight": torch.zeros(2, 3, 3, 3)}}
    paths = {}
    for what, state in files.items():
        paths[what] = tmp_path / f"{what.split()[0].lower()}.safetensors"
        save_file(state, str(paths[what]))
    return paths


@pytest.mark.parametrize("what", ["SD3 transformer (MMDiT)", "VAE"])
def test_a_wrong_file_names_the_loader_the_file_and_what_it_is(manager, sd3_text, wrong_files, what):
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_text import load_clip, load_triple_clip

    path = wrong_files[what]
    with pytest.raises(ModelLoadError) as triple:
        load_triple_clip(manager, [sd3_text.files["clip_l"], path, sd3_text.files["t5"]])
    with pytest.raises(ModelLoadError) as single:
        load_clip(manager, path, "sd3")
    with pytest.raises(ModelLoadError) as stable_diffusion:
        load_clip(manager, path, "stable_diffusion")
    for info, loader in ((triple, "TripleCLIPLoader"), (single, "CLIPLoader"), (stable_diffusion, "CLIPLoader")):
        assert f"{loader}: {path.name} is a {what}" in str(info.value)


def test_clip_loader_stable_diffusion_points_a_t5_file_to_type_sd3(manager, sd3_text):
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_text import load_clip

    with pytest.raises(ModelLoadError, match="t5xxl_fp16.safetensors is a t5xxl text encoder.*use type sd3"):
        load_clip(manager, sd3_text.files["t5"], "stable_diffusion")
    assert load_clip(manager, sd3_text.files["clip_l"], "stable_diffusion").family == "sd1"


def test_a_clip_h_file_is_named_and_refused(manager, tmp_path):
    from safetensors.torch import save_file

    from diffusion.errors import ModelLoadError
    from diffusion.sd3_text import load_clip
    from tests.fixtures.tiny_sd3_text import CLIP_L, clip_file_state, tiny_clip

    save_file(clip_file_state(tiny_clip({**CLIP_L, "num_hidden_layers": 24}, 31, False)),
              str(tmp_path / "clip_h.safetensors"))
    with pytest.raises(ModelLoadError, match="CLIPLoader: clip_h.safetensors is CLIP-H"):
        load_clip(manager, tmp_path / "clip_h.safetensors", "sd3")


def test_clip_text_encode_sd3_refuses_another_families_clip(manager, sd3_text):
    from diffusion.errors import PromptError

    with pytest.raises(PromptError, match="needs an SD3 CLIP.*this is a sdxl CLIP"):
        _encode(_dual(manager, sd3_text, "clip_l", "clip_g", "sdxl"), "a", "a", "a")


# -- nodes ----------------------------------------------------------------------------------------

def test_nodes_have_comfyuis_inputs_and_categories(env):
    import nodes
    from engine.object_info import object_info
    from engine.registry import Registry

    registry = Registry(env=env)
    registry.add_all(nodes.builtin_nodes())
    info = object_info(registry)
    triple, encode = info["TripleCLIPLoader"], info["CLIPTextEncodeSD3"]
    assert list(triple["input"]["required"]) == ["clip_name1", "clip_name2", "clip_name3"]
    assert triple["category"] == "advanced/loaders" and triple["output"] == ["CLIP"]
    assert list(encode["input"]["required"]) == ["clip", "clip_l", "clip_g", "t5xxl", "empty_padding"]
    assert encode["input"]["required"]["empty_padding"][0] == ["none", "empty_prompt"]
    assert encode["category"] == "advanced/conditioning" and encode["output"] == ["CONDITIONING"]
    types = info["CLIPLoader"]["input"]["required"]["type"][0]
    assert types[:3] == ["stable_diffusion", "stable_cascade", "sd3"] and "wan" in types


def _text_graph(loader: dict) -> dict:
    return {"1": loader,
            "2": {"class_type": "CLIPTextEncodeSD3", "inputs": {"clip": ["1", 0], "clip_l": "a cat", "clip_g": "a cat",
                                                                "t5xxl": "", "empty_padding": "none"}},
            "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}}}


def test_triple_clip_loader_and_clip_text_encode_sd3_run_in_a_graph(sd3_text_env):
    triple = {"class_type": "TripleCLIPLoader", "inputs": {
        "clip_name1": "t5xxl_fp16.safetensors", "clip_name2": "clip_l.safetensors", "clip_name3": "clip_g.safetensors"}}
    outcome = run_graph(sd3_text_env, _text_graph(triple))
    assert outcome.status == "success", outcome.error


@pytest.mark.parametrize("loader, message", [
    ({"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                 "clip_name2": "t5xxl_fp16.safetensors", "type": "sdxl"}},
     "type sdxl needs a clip_l and a clip_g file"),
    ({"class_type": "CLIPLoader", "inputs": {"clip_name": "t5xxl_fp16.safetensors", "type": "stable_diffusion"}},
     "use type sd3"),
])
def test_loader_nodes_report_what_is_wrong_with_the_files(sd3_text_env, loader, message):
    outcome = run_graph(sd3_text_env, _text_graph(loader))
    assert outcome.status == "error" and message in str(outcome.error)


def test_dual_and_single_clip_loader_nodes_dispatch_on_type(sd3_text_env):
    from nodes.flux import DualCLIPLoader
    from nodes.loaders import CLIPLoader

    ctx = SimpleNamespace(env=sd3_text_env)
    dual = DualCLIPLoader.fn(ctx, "clip_g.safetensors", "t5xxl_fp16.safetensors", "sd3")
    single = CLIPLoader.fn(ctx, "clip_g.safetensors", "sd3")
    sdxl = DualCLIPLoader.fn(ctx, "clip_l.safetensors", "clip_g.safetensors", "sdxl")
    assert [e.kind for e in dual.encoders] == ["clip_g", "t5"] and [e.kind for e in single.encoders] == ["clip_g"]
    assert (dual.family, single.family, sdxl.family) == ("sd3", "sd3", "sdxl")
