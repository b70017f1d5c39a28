"""FLUX.1 LoRAs in kohya, XLabs, BFL-dotted and diffusers layouts: Loom's patched transformer
against diffusers' own ``load_lora_weights`` on the same tiny weights, and the split of BFL's
fused layers against the merged weight computed in BFL's layout."""

from __future__ import annotations

import copy

import pytest



@pytest.fixture(scope="module")
def fp32_dev(tiny_flux, tmp_path_factory):
    """The tiny dev transformer saved in float32 BFL layout: Loom keeps float32 weights, so a
    patched weight is not rounded to bf16 and can be compared tightly."""
    from safetensors.torch import save_file

    from tests.fixtures.tiny_flux import diffusers_to_bfl

    model = tiny_flux.modules["dev"]
    path = tmp_path_factory.mktemp("flux32") / "flux1-dev-fp32.safetensors"
    save_file(diffusers_to_bfl(model.state_dict(), 1, 2), str(path))
    return path


def _inputs():
    import torch

    from diffusion.flux_sampling import image_ids

    g = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(1, 16, 64, generator=g), encoder_hidden_states=torch.randn(1, 8, 32, generator=g),
                pooled_projections=torch.randn(1, 32, generator=g), timestep=torch.tensor([0.6]),
                guidance=torch.tensor([3.5]), img_ids=image_ids(4, 4), txt_ids=torch.zeros(8, 3), return_dict=False)


def _loom(flux_env, fp32_dev, state, tmp_path, strength):
    import torch
    from safetensors.torch import save_file

    from diffusion.flux_model import load_flux_model
    from diffusion.lora import load_lora, with_unet_lora

    path = tmp_path / "lora.safetensors"
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path))
    model = with_unet_lora(load_flux_model(flux_env.models, fp32_dev), load_lora(path), strength)
    with torch.inference_mode():
        return model.unet(**_inputs())[0], model


def _diffusers(tiny_flux, state, strength):
    import torch

    from tests.fixtures.tiny_flux import reference_pipeline

    pipe = reference_pipeline(tiny_flux, "dev")
    pipe.transformer = copy.deepcopy(pipe.transformer)  # the fixture's module stays unpatched
    pipe.load_lora_weights({k: v.clone() for k, v in state.items()})
    with torch.inference_mode():
        return pipe.transformer(**_inputs(), joint_attention_kwargs={"scale": strength})[0]


# diffusers' kohya and XLabs converters split single blocks' linear1 only at full width (3072),
# so the parity LoRAs leave it out; the split is checked on its own below.
PARITY_LAYERS = ("double_blocks.0.img_attn.qkv", "double_blocks.0.txt_attn.qkv", "double_blocks.0.img_attn.proj",
                 "double_blocks.0.txt_mlp.0", "double_blocks.0.img_mod.lin", "single_blocks.1.linear2")


def test_kohya_flux_lora_matches_diffusers_load_lora_weights(flux_env, tiny_flux, fp32_dev, tmp_path):
    import torch

    from tests.fixtures.tiny_flux import kohya_flux_lora, lora_factors

    state = kohya_flux_lora(lora_factors(PARITY_LAYERS))
    ours, _ = _loom(flux_env, fp32_dev, state, tmp_path, 0.7)
    theirs = _diffusers(tiny_flux, state, 0.7)
    with torch.inference_mode():
        plain = tiny_flux.modules["dev"](**_inputs())[0]
    assert (ours - plain).abs().max() > 1e-2  # the LoRA does something
    assert torch.allclose(ours, theirs, atol=1e-4), float((ours - theirs).abs().max())


def test_xlabs_flux_lora_matches_diffusers_load_lora_weights(flux_env, tiny_flux, fp32_dev, tmp_path):
    import torch

    from tests.fixtures.tiny_flux import lora_factors, xlabs_flux_lora

    state = xlabs_flux_lora(lora_factors(("double_blocks.0.img_attn.qkv", "double_blocks.0.txt_attn.qkv",
                                          "double_blocks.0.img_attn.proj", "single_blocks.1.linear2")))
    ours, _ = _loom(flux_env, fp32_dev, state, tmp_path, 1.0)
    theirs = _diffusers(tiny_flux, state, 1.0)
    assert torch.allclose(ours, theirs, atol=1e-4), float((ours - theirs).abs().max())


def test_diffusers_layout_flux_lora_matches_load_lora_weights(flux_env, tiny_flux, fp32_dev, tmp_path):
    import torch

    from diffusion.flux_lora import to_diffusers_names
    from tests.fixtures.tiny_flux import kohya_flux_lora, lora_factors

    renamed = to_diffusers_names(kohya_flux_lora(lora_factors(PARITY_LAYERS), alpha=None))
    peft = {k.replace(".lora_down.weight", ".lora_A.weight").replace(".lora_up.weight", ".lora_B.weight"): v
            for k, v in renamed.items()}
    ours, _ = _loom(flux_env, fp32_dev, peft, tmp_path, 0.5)
    theirs = _diffusers(tiny_flux, peft, 0.5)
    assert torch.allclose(ours, theirs, atol=1e-4), float((ours - theirs).abs().max())


@pytest.mark.parametrize("layout", ["kohya", "bfl_dotted"])
def test_fused_layers_split_exactly_as_the_merged_bfl_weight(flux_env, tiny_flux, fp32_dev, tmp_path, layout):
    """W' = W + strength·alpha/rank·up@down in BFL's layout, converted to diffusers' names,
    equals Loom's patched weights — for every layer kind, single blocks' linear1 included."""
    import torch

    from diffusion.flux_files import bfl_to_diffusers, flux_architecture
    from diffusion.lora import apply_patches, shared_module
    from tests.fixtures.tiny_flux import diffusers_to_bfl, kohya_flux_lora, lora_factors

    factors = lora_factors()
    state = kohya_flux_lora(factors, alpha=2.0)
    if layout == "bfl_dotted":  # ComfyUI's saved form: diffusion_model.<layer>.lora_A/B
        state = {}
        for name, (down, up) in factors.items():
            state[f"diffusion_model.{name}.lora_A.weight"], state[f"diffusion_model.{name}.lora_B.weight"] = down, up
            state[f"diffusion_model.{name}.alpha"] = torch.tensor(2.0)
    _, model = _loom(flux_env, fp32_dev, state, tmp_path, 0.8)
    shared = shared_module(model.unet)
    apply_patches(shared, model.patches)
    try:
        bfl = diffusers_to_bfl(tiny_flux.modules["dev"].state_dict(), 1, 2)
        for name, (down, up) in factors.items():
            bfl[name + ".weight"] = bfl[name + ".weight"] + 0.8 * (2.0 / 4) * (up @ down)
        expected = bfl_to_diffusers(bfl, flux_architecture({k: tuple(v.shape) for k, v in bfl.items()}))
        got = shared.state_dict()
        for key, value in expected.items():
            assert torch.allclose(got[key].float(), value, atol=1e-6), key
    finally:
        apply_patches(shared, ())


def test_a_flux_lora_on_an_sd_model_is_refused_naming_both(tiny, flux_env, tmp_path):
    from safetensors.torch import save_file

    from diffusion.errors import ModelLoadError
    from diffusion.lora import load_lora, with_unet_lora
    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_flux import kohya_flux_lora, lora_factors

    path = tmp_path / "flux_lora.safetensors"
    save_file(kohya_flux_lora(lora_factors(PARITY_LAYERS)), str(path))
    model, _, _ = ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)
    with pytest.raises(ModelLoadError, match="flux_lora.safetensors.*does not fit.*sd1"):
        with_unet_lora(model, load_lora(path), 1.0)


def test_kohya_text_encoder_layers_patch_flux_clip_l_and_t5(flux_env, tiny_flux, tmp_path):
    """sd-scripts' Flux LoRAs name CLIP-L ``lora_te1_*`` and T5-XXL ``lora_te2_*``."""
    import torch
    from safetensors.torch import save_file

    from diffusion.flux_text import encode_flux, load_dual_clip
    from diffusion.lora import load_lora, with_clip_lora

    g = torch.Generator().manual_seed(4)
    state = {}
    for key, (out_f, in_f) in (("lora_te1_text_model_encoder_layers_0_self_attn_q_proj", (32, 32)),
                               ("lora_te2_encoder_block_0_layer_0_SelfAttention_q", (32, 32))):
        state[key + ".lora_down.weight"] = torch.randn(2, in_f, generator=g) * 0.5
        state[key + ".lora_up.weight"] = torch.randn(out_f, 2, generator=g) * 0.5
    path = tmp_path / "flux_te_lora.safetensors"
    save_file(state, str(path))
    files = tiny_flux.files
    clip = load_dual_clip(flux_env.models, [files["clip_l"], files["t5"]], "flux")
    patched = with_clip_lora(clip, load_lora(path), 1.0)
    [[plain_t5, plain_meta]] = encode_flux(clip, "a cat")
    [[lora_t5, lora_meta]] = encode_flux(patched, "a cat")
    assert not torch.allclose(plain_meta["pooled_output"], lora_meta["pooled_output"])
    assert not torch.allclose(plain_t5, lora_t5)
    [[again_t5, again_meta]] = encode_flux(clip, "a cat")  # the shared encoders are left as they were
    assert torch.equal(again_t5, plain_t5) and torch.equal(again_meta["pooled_output"], plain_meta["pooled_output"])
