"""Text-encoder LoRA layers on SD3 and FLUX.1 CLIPs reach the encoder they were trained for, by its
kind: kohya's ``lora_te1_`` CLIP-L, ``lora_te2_`` CLIP-G (FLUX.1: the T5), ``lora_te3_`` the T5 —
also on an SD3 CLIP that holds only some of its encoders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a photograph of an astronaut riding a horse"
#: kohya layer name per component, on the tiny encoders' first layer
LAYERS = {"te1": "lora_te1_text_model_encoder_layers_0_self_attn_q_proj",
          "te2": "lora_te2_text_model_encoder_layers_0_self_attn_q_proj",
          "te3": "lora_te3_encoder_block_0_layer_0_SelfAttention_q"}
#: Where each SD3 encoder's features are (tokens, channels): CLIP-L and CLIP-G 32 wide side by
#: side over the first 77 tokens, the T5's 64 wide over the next 77
PARTS = {"clip_l": (slice(0, 77), slice(0, 32)), "clip_g": (slice(0, 77), slice(32, 64)),
         "t5": (slice(77, 154), slice(0, 64))}


def _lora(tmp_path, shapes: dict[str, tuple[int, int]], name: str = "te_lora"):
    """A kohya LoRA file with a rank-2 change of each given layer (``{component: (out, in)}``)."""
    import torch
    from safetensors.torch import save_file

    from diffusion.lora import load_lora

    state = {}
    for comp, (out_f, in_f) in shapes.items():
        g = torch.Generator().manual_seed(10 + int(comp[-1]))  # a component's change is the same in any file
        state[LAYERS[comp] + ".lora_down.weight"] = torch.randn(2, in_f, generator=g) * 0.5
        state[LAYERS[comp] + ".lora_up.weight"] = torch.randn(out_f, 2, generator=g) * 0.5
    path = tmp_path / f"{name}.safetensors"
    save_file(state, str(path))
    return load_lora(path)


def _sd3_shapes(sd3_text, *comps) -> dict[str, tuple[int, int]]:
    modules = sd3_text.modules
    t5_q = modules["t5"].encoder.block[0].layer[0].SelfAttention.q.weight
    every = {"te1": (32, 32), "te2": (32, 32), "te3": tuple(t5_q.shape)}
    return {comp: every[comp] for comp in comps}


def _sd3(manager, sd3_text, *kinds):
    from diffusion.sd3_text import load_dual_clip, load_triple_clip

    paths = [sd3_text.files[k] for k in kinds]
    return load_triple_clip(manager, paths) if len(paths) == 3 else load_dual_clip(manager, paths, "sd3")


def _features(clip):
    from diffusion.sd3_text import encode_sd3

    [[features, _]] = encode_sd3(clip, PROMPT, PROMPT, PROMPT)
    return features


def _changed(before, after) -> set[str]:
    import torch

    return {kind for kind, (rows, cols) in PARTS.items()
            if not torch.allclose(before[:, rows, cols], after[:, rows, cols], atol=1e-6)}


@pytest.mark.parametrize("comp, kind", [("te1", "clip_l"), ("te2", "clip_g"), ("te3", "t5")])
def test_sd3_kohya_components_patch_clip_l_clip_g_and_t5(manager, sd3_text, tmp_path, comp, kind):
    from diffusion.lora import with_clip_lora

    clip = _sd3(manager, sd3_text, "clip_l", "clip_g", "t5")
    patched = with_clip_lora(clip, _lora(tmp_path, _sd3_shapes(sd3_text, comp)), 1.0)
    assert _changed(_features(clip), _features(patched)) == {kind}


def test_an_sd3_clip_of_clip_g_and_t5_gives_te2_to_clip_g_and_te3_to_the_t5(manager, sd3_text, tmp_path):
    import torch

    from diffusion.lora import with_clip_lora

    lora = _lora(tmp_path, _sd3_shapes(sd3_text, "te2", "te3"))
    triple = with_clip_lora(_sd3(manager, sd3_text, "clip_l", "clip_g", "t5"), lora, 1.0)
    plain = _sd3(manager, sd3_text, "clip_g", "t5")
    dual = with_clip_lora(plain, lora, 1.0)
    assert _changed(_features(plain), _features(dual)) == {"clip_g", "t5"}
    expected, got = _features(triple), _features(dual)
    for kind in ("clip_g", "t5"):
        rows, cols = PARTS[kind]
        assert torch.allclose(got[:, rows, cols], expected[:, rows, cols], atol=1e-6)


def test_layers_for_an_encoder_the_sd3_clip_lacks_are_left_out(manager, sd3_text, tmp_path, caplog):
    from diffusion.lora import with_clip_lora

    clip = _sd3(manager, sd3_text, "clip_g", "t5")
    only_g = with_clip_lora(clip, _lora(tmp_path, _sd3_shapes(sd3_text, "te2"), "g"), 1.0)
    every = with_clip_lora(clip, _lora(tmp_path, _sd3_shapes(sd3_text, "te1", "te2"), "lg"), 1.0)
    assert not _changed(_features(only_g), _features(every))  # te1 had nowhere to go
    assert "te1 layers are left out" in caplog.text


def test_flux_te3_layers_patch_the_t5_as_comfyuis(flux_env, tiny_flux, tmp_path):
    import torch

    from diffusion.flux_text import encode_flux, load_dual_clip
    from diffusion.lora import with_clip_lora

    clip = load_dual_clip(flux_env.models, [tiny_flux.files["clip_l"], tiny_flux.files["t5"]], "flux")
    t5_q = tiny_flux.modules["t5"].encoder.block[0].layer[0].SelfAttention.q.weight
    patched = with_clip_lora(clip, _lora(tmp_path, {"te3": tuple(t5_q.shape)}), 1.0)
    [[plain, plain_meta]], [[lora, lora_meta]] = encode_flux(clip, PROMPT), encode_flux(patched, PROMPT)
    assert not torch.allclose(plain, lora) and torch.equal(plain_meta["pooled_output"], lora_meta["pooled_output"])


def test_an_sd3_lora_on_an_sdxl_clip_is_refused_as_sd3(manager, sd3_text, tmp_path):
    from diffusion.lora import LoraMismatch, with_clip_lora
    from diffusion.sd3_text import load_dual_clip

    clip = load_dual_clip(manager, [sd3_text.files["clip_l"], sd3_text.files["clip_g"]], "sdxl")
    with pytest.raises(LoraMismatch, match="looks like a SD3 LoRA and does not fit.*te1, te2, te3"):
        with_clip_lora(clip, _lora(tmp_path, _sd3_shapes(sd3_text, "te1", "te2", "te3")), 1.0)
