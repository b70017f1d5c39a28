"""LoRA: parsing both layouts, patching the shared model in place, exact restore,
stacking, handles that each see their own patches, parity with diffusers, clear errors."""

from __future__ import annotations

import pytest
import torch

from diffusion.lora import (LoraMismatch, apply_patches, applied_patches, load_lora, parse_lora,
                            with_clip_lora, with_unet_lora)
from diffusion.errors import ModelLoadError
from tests.fixtures.tiny_extras import kohya_lora_state, peft_lora_state, save


@pytest.fixture
def sd1(tiny):
    """A freshly loaded tiny SD1 checkpoint (its own manager, so patches never leak between tests)."""
    from diffusion.memory import ModelManager

    return ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def unet_inputs(unet, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    context = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    return x, torch.tensor([500, 500]), context


def run_unet(unet, seed=0):
    x, t, context = unet_inputs(unet, seed)
    with torch.inference_mode():
        return unet(x, t, encoder_hidden_states=context, return_dict=False)[0]


@pytest.fixture
def kohya_file(sd1, tmp_path):
    model, clip, _ = sd1
    return save(kohya_lora_state(model.unet, [e.model for e in clip.encoders], rank=4, alpha=2.0),
                tmp_path / "style_kohya.safetensors")


def test_kohya_lora_is_parsed_into_unet_and_text_encoder_layers(kohya_file):
    lora = load_lora(kohya_file)
    assert lora.components() == {"unet", "te"}
    assert all(lr.rank == 4 and lr.scale == 0.5 for lr in lora.layers.values())


def test_applying_a_lora_changes_exactly_the_targeted_weights_in_place(sd1, kohya_file):
    model, _, _ = sd1
    shared = model.unet
    before = weights(shared)
    patched = with_unet_lora(model, load_lora(kohya_file), 1.0)
    apply_patches(shared, patched.patches)
    after = shared.state_dict()
    targeted = {name for name, _ in patched.patches[0].layers}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == targeted and len(targeted) > 0
    assert patched.unet.shared is shared


def test_patching_keeps_the_same_parameter_storage(sd1, kohya_file):
    model, _, _ = sd1
    pointers = {k: p.data_ptr() for k, p in model.unet.named_parameters()}
    patched = with_unet_lora(model, load_lora(kohya_file), 1.0)
    apply_patches(model.unet, patched.patches)
    assert {k: p.data_ptr() for k, p in model.unet.named_parameters()} == pointers


def test_removing_the_lora_restores_the_original_weights_bit_for_bit(sd1, kohya_file):
    model, clip, _ = sd1
    original_unet, original_text = weights(model.unet), weights(clip.encoders[0].model)
    lora = load_lora(kohya_file)
    patched_model, patched_clip = with_unet_lora(model, lora, 0.8), with_clip_lora(clip, lora, 1.3)
    apply_patches(model.unet, patched_model.patches)
    apply_patches(clip.encoders[0].model, tuple(p for _, p in patched_clip.patches))
    apply_patches(model.unet, ())
    apply_patches(clip.encoders[0].model, ())
    for original, module in ((original_unet, model.unet), (original_text, clip.encoders[0].model)):
        now = module.state_dict()
        assert all(torch.equal(original[k], now[k]) for k in original)


def test_two_handles_with_different_strengths_each_get_their_own_weights(sd1, kohya_file):
    model, _, _ = sd1
    lora = load_lora(kohya_file)
    weak, strong = with_unet_lora(model, lora, 0.5), with_unet_lora(model, lora, 1.0)
    out_plain = run_unet(model.unet)
    out_weak_first = run_unet(weak.unet)
    out_strong = run_unet(strong.unet)
    out_weak_again = run_unet(weak.unet)
    out_plain_again = run_unet(model.unet)  # the unpatched handle calls the shared module directly
    assert not torch.allclose(out_weak_first, out_strong)
    assert torch.equal(out_weak_first, out_weak_again)
    assert torch.equal(out_plain, out_plain_again)
    assert applied_patches(model.unet) == ()


def test_patched_view_runs_inside_inference_mode(sd1, kohya_file):
    model, _, _ = sd1
    patched = with_unet_lora(model, load_lora(kohya_file), 1.0)
    x, t, context = unet_inputs(model.unet)
    with torch.inference_mode():
        out = patched.unet(x, t, encoder_hidden_states=context, return_dict=False)[0]
    assert out.shape == x.shape and applied_patches(model.unet) == patched.patches


def test_stacked_loras_add_their_deltas(sd1, tmp_path):
    model, _, _ = sd1
    a = load_lora(save(kohya_lora_state(model.unet, seed=1), tmp_path / "a.safetensors"))
    b = load_lora(save(kohya_lora_state(model.unet, seed=2), tmp_path / "b.safetensors"))
    original = weights(model.unet)
    both = with_unet_lora(with_unet_lora(model, a, 1.0), b, 0.5)
    assert len(both.patches) == 2
    apply_patches(model.unet, both.patches)
    name, lr_a = both.patches[0].layers[0]
    lr_b = dict(both.patches[1].layers)[name]
    w = original[name]
    expected = w + lr_a.scale * lr_a.delta(w.shape, w.device) + 0.5 * lr_b.scale * lr_b.delta(w.shape, w.device)
    assert torch.allclose(model.unet.state_dict()[name], expected, atol=1e-6)


def test_locon_conv_layers_are_patched_with_the_reshaped_product(sd1, tmp_path):
    model, _, _ = sd1
    state = kohya_lora_state(model.unet, conv=True, rank=2, alpha=None)
    lora = load_lora(save(state, tmp_path / "locon.safetensors"))
    conv_name = "down_blocks.0.resnets.0.conv1.weight"
    original = model.unet.state_dict()[conv_name].clone()
    patched = with_unet_lora(model, lora, 1.0)
    apply_patches(model.unet, patched.patches)
    base = "lora_unet_down_blocks_0_resnets_0_conv1"
    up, down = state[f"{base}.lora_up.weight"], state[f"{base}.lora_down.weight"]
    expected = original + (up.flatten(1) @ down.flatten(1)).reshape(original.shape)
    assert torch.allclose(model.unet.state_dict()[conv_name], expected, atol=1e-6)


def test_peft_format_lora_patches_the_same_layers(sd1, tmp_path):
    model, clip, _ = sd1
    state = peft_lora_state(model.unet, clip.encoders[0].model, rank=2)
    lora = load_lora(save(state, tmp_path / "peft.safetensors"))
    assert lora.components() == {"unet", "te"}
    patched = with_clip_lora(clip, lora, 1.0)
    name = "text_model.encoder.layers.0.self_attn.q_proj"
    module_name = next(n for n, _ in patched.patches[0][1].layers if "layers.0.self_attn.q_proj" in n)
    original = clip.encoders[0].model.state_dict()[module_name].clone()
    apply_patches(clip.encoders[0].model, (patched.patches[0][1],))
    expected = original + state[f"text_encoder.{name}.lora_B.weight"] @ state[f"text_encoder.{name}.lora_A.weight"]
    assert torch.allclose(clip.encoders[0].model.state_dict()[module_name], expected, atol=1e-6)


def test_sdxl_lora_on_an_sd1_model_names_both(sd1, tiny, tmp_path):
    from diffusion.memory import ModelManager

    xl_model, xl_clip, _ = ModelManager(device="cpu").load_checkpoint(tiny("sdxl").checkpoint)
    path = save(kohya_lora_state(xl_model.unet, [e.model for e in xl_clip.encoders], sdxl=True),
                tmp_path / "xl_style.safetensors")
    model, clip, _ = sd1
    with pytest.raises(LoraMismatch, match=r"xl_style\.safetensors.*tiny_sd1\.safetensors"):
        with_unet_lora(model, load_lora(path), 1.0)
    with pytest.raises(LoraMismatch, match=r"xl_style\.safetensors.*SDXL.*tiny_sd1\.safetensors"):
        with_clip_lora(clip, load_lora(path), 1.0)


def test_a_file_without_lora_weights_is_a_clear_error(tmp_path):
    path = save({"model.diffusion_model.out.2.weight": torch.zeros(2, 2)}, tmp_path / "ckpt.safetensors")
    with pytest.raises(ModelLoadError, match=r"'ckpt\.safetensors' is not a LoRA file"):
        load_lora(path)


def test_a_truncated_lora_file_is_a_clear_error(tmp_path, kohya_file):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(kohya_file.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="broken.safetensors"):
        load_lora(broken)


def test_lora_layer_with_up_and_down_ranks_that_differ_is_a_clear_error():
    state = {"lora_unet_x.lora_up.weight": torch.zeros(4, 3), "lora_unet_x.lora_down.weight": torch.zeros(2, 4)}
    with pytest.raises(ModelLoadError, match="ranks differ"):
        parse_lora(state, "odd.safetensors")


def test_glora_layers_are_reported_as_unsupported():
    square = torch.zeros(2, 2)
    glora = {f"lora_unet_x.{part}.weight": square for part in ("a1", "a2", "b1", "b2")}
    with pytest.raises(ModelLoadError, match="GLoRA layers .* are not supported"):
        parse_lora(glora, "glora.safetensors")


# -- parity with diffusers ------------------------------------------------------------------


@pytest.fixture
def diffusers_fused(tiny, kohya_file):
    """diffusers' own pipeline on the same weights with the kohya file loaded and fused."""
    pytest.importorskip("peft")
    from diffusers import StableDiffusionPipeline

    def make(strength: float):
        pipe = StableDiffusionPipeline.from_pretrained(tiny("sd1").diffusers_dir, safety_checker=None,
                                                       local_files_only=True)
        pipe.load_lora_weights(str(kohya_file.parent), weight_name=kohya_file.name, adapter_name="style")
        pipe.fuse_lora(lora_scale=strength)
        pipe.unload_lora_weights()
        return pipe

    return make


@pytest.mark.parametrize("strength", [1.0, 0.6])
def test_patched_unet_weights_match_diffusers_fused_lora(sd1, kohya_file, diffusers_fused, strength):
    model, _, _ = sd1
    pipe = diffusers_fused(strength)
    patched = with_unet_lora(model, load_lora(kohya_file), strength)
    apply_patches(model.unet, patched.patches)
    ours, theirs = model.unet.state_dict(), pipe.unet.state_dict()
    assert set(ours) == set(theirs)
    worst = max(float((ours[k] - theirs[k]).abs().max()) for k in ours)
    assert worst < 1e-5
    # ...and the outputs agree far inside the 2/255 budget
    assert float((run_unet(patched.unet) - run_unet(pipe.unet)).abs().max()) < 2 / 255


def test_patched_text_encoder_weights_match_diffusers_fused_lora(sd1, kohya_file, diffusers_fused):
    _, clip, _ = sd1
    pipe = diffusers_fused(1.0)
    patched = with_clip_lora(clip, load_lora(kohya_file), 1.0)
    apply_patches(clip.encoders[0].model, tuple(p for _, p in patched.patches))
    ours = {k.removeprefix("text_model."): v for k, v in clip.encoders[0].model.state_dict().items()}
    theirs = {k.removeprefix("text_model."): v for k, v in pipe.text_encoder.state_dict().items()}
    common = set(ours) & set(theirs)
    assert len(common) > 10
    assert max(float((ours[k] - theirs[k]).abs().max()) for k in common) < 1e-5
