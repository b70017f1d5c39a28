"""LyCORIS layer types (LoHa, LoKr, Tucker LoCon, full diff, DoRA): each one's weight change
equals an independent reference (PEFT's own implementation where it has one, otherwise the
formula from LyCORIS written out here), the kohya-layout files load through the LoraLoader
node and change the image, strength 0 is no LoRA, removal restores the weights bit for bit,
and malformed layers are clear errors naming the layer."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from diffusion.errors import ModelLoadError
from diffusion.lora import LoraMismatch, applied_patches, apply_patches, load_lora, parse_lora, with_clip_lora, \
    with_unet_lora
from diffusion.lora_layers import FullDiff, LoHa, LoKr, LowRank, TuckerLowRank, WeightDecomposed
from tests.capabilities.test_graphs import txt2img
from tests.diffusion.conftest import install, run_graph, saved_images, png_pixels
from tests.fixtures.tiny_extras import save
from tests.fixtures.tiny_lora_lycoris import lycoris_state

peft = pytest.importorskip("peft")


class Pair(torch.nn.Module):
    """A Linear and a 3×3 Conv, the two layer kinds LyCORIS patches."""

    def __init__(self, linear=(64, 48), conv=(32, 48)):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(*linear)
        self.conv = torch.nn.Conv2d(*conv, 3)


def peft_model(config):
    return peft.inject_adapter_in_model(config, Pair())


def adapter(module, name):
    return getattr(module, name)["default"].detach()


def close(a, b, tol=1e-5):
    a, b = a.detach(), b.detach()
    return a.shape == b.shape and float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max()))


# -- each type against its reference ------------------------------------------------------------


@pytest.mark.parametrize("tucker", [True, False], ids=["tucker_conv", "flat_conv"])
def test_loha_delta_equals_peft_loha(tucker):
    model = peft_model(peft.LoHaConfig(r=3, alpha=5, target_modules=["lin", "conv"], init_weights=False,
                                       use_effective_conv2d=tucker))
    for layer in (model.lin, model.conv):
        parts = {n: adapter(layer, n) for n in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")}
        t = {n: adapter(layer, n) for n in ("hada_t1", "hada_t2") if "default" in getattr(layer, n)}
        ours = LoHa(parts["hada_w1_a"], parts["hada_w1_b"], parts["hada_w2_a"], parts["hada_w2_b"], 5.0,
                    t.get("hada_t1"), t.get("hada_t2"))
        shape = layer.get_base_layer().weight.shape
        assert ours.scale == 5 / 3
        with torch.no_grad():
            expected = layer.get_delta_weight("default")  # peft: scale · product, alpha/r as LyCORIS
        assert close(ours.scale * ours.delta(shape, torch.device("cpu")), expected)


def test_lokr_factored_delta_equals_peft_lokr():
    # r=1 is small enough that PEFT factors both w1 and w2 (lokr_w1_a/_b, lokr_w2_a/_b or the
    # Tucker lokr_t2 on the conv); then LyCORIS's alpha/rank applies, like PEFT's scaling
    model = peft_model(peft.LoKrConfig(r=1, alpha=3, target_modules=["lin", "conv"], init_weights=False,
                                       decompose_both=True, use_effective_conv2d=True))
    for layer in (model.lin, model.conv):
        names = ("lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b", "lokr_t2")
        parts = {n: adapter(layer, n) if "default" in getattr(layer, n) else None for n in names}
        assert parts["lokr_w1"] is None and parts["lokr_w2"] is None
        ours = LoKr(*parts.values(), alpha=3.0)
        assert ours.scale == 3.0
        with torch.no_grad():
            expected = layer.get_delta_weight("default")
        assert close(ours.scale * ours.delta(layer.get_base_layer().weight.shape, torch.device("cpu")), expected)
    assert parts["lokr_t2"] is not None, "the conv exercised the Tucker form"


def test_lokr_with_whole_factors_ignores_alpha_as_lycoris_does():
    # LyCORIS (lokr.py): when both lokr_w1 and lokr_w2 are stored whole, alpha is reset to the
    # rank, so the scale is 1; PEFT scales by alpha/r regardless, so its product is divided out
    model = peft_model(peft.LoKrConfig(r=8, alpha=3, target_modules=["lin", "conv"], init_weights=False))
    for layer in (model.lin, model.conv):
        w1, w2 = adapter(layer, "lokr_w1"), adapter(layer, "lokr_w2")
        ours = LoKr(w1, None, None, w2, None, None, None, alpha=3.0)
        assert ours.scale == 1.0
        with torch.no_grad():
            expected = layer.get_delta_weight("default") / layer.scaling["default"]
        assert close(ours.delta(layer.get_base_layer().weight.shape, torch.device("cpu")), expected)


def test_tucker_locon_delta_is_the_weight_of_down_then_mid_then_up():
    # LyCORIS's Tucker LoCon runs x → lora_down (1×1) → lora_mid (3×3) → lora_up (1×1); the
    # merged weight must be the one conv that does the same
    g = torch.Generator().manual_seed(1)
    down, mid, up = torch.randn(3, 6, 1, 1, generator=g), torch.randn(3, 3, 3, 3, generator=g), \
        torch.randn(5, 3, 1, 1, generator=g)
    layer = TuckerLowRank(up, down, mid, alpha=1.5)
    x = torch.randn(2, 6, 9, 9, generator=g)
    chained = torch.nn.functional.conv2d(torch.nn.functional.conv2d(torch.nn.functional.conv2d(x, down), mid), up)
    merged = torch.nn.functional.conv2d(x, layer.delta(torch.Size([5, 6, 3, 3]), torch.device("cpu")))
    assert layer.scale == 0.5 and layer.out_in() == (5, 54)
    assert close(merged, chained)


@pytest.mark.parametrize("layer_name", ["lin", "conv"])
def test_dora_on_the_output_axis_equals_peft_dora_merge(layer_name):
    model = peft_model(peft.LoraConfig(r=2, lora_alpha=6, target_modules=["lin", "conv"], init_lora_weights=False,
                                       use_dora=True))
    layer = getattr(model, layer_name)
    with torch.no_grad():
        magnitude = layer.lora_magnitude_vector["default"].weight
        magnitude.mul_(torch.linspace(0.5, 1.5, magnitude.numel()).reshape(magnitude.shape))  # a trained magnitude
    original = layer.get_base_layer().weight.detach().clone()
    ours = WeightDecomposed(LowRank(layer.lora_B["default"].weight.detach(),
                                    layer.lora_A["default"].weight.detach(), alpha=6.0),
                            magnitude.detach().reshape(-1, 1).clone())
    with torch.no_grad():
        layer.merge()
    assert close(ours.patched(original.clone(), 1.0), layer.get_base_layer().weight.detach())


def test_dora_on_the_input_axis_rescales_each_input_column_of_w_plus_delta():
    # LyCORIS apply_weight_decompose with wd_on_out=False (the [1, in, …] dora_scale of older
    # LyCORIS/kohya files): W' = (W + s·ΔW) · dora_scale / ‖W + s·ΔW‖ over dims (0, 2, 3)
    g = torch.Generator().manual_seed(2)
    weight = torch.randn(5, 4, 3, 3, generator=g)
    up, down = torch.randn(5, 2, 1, 1, generator=g), torch.randn(2, 4, 3, 3, generator=g)
    magnitude = torch.rand(1, 4, 1, 1, generator=g) + 0.5
    merged = weight + (3.0 / 2) * (up.flatten(1) @ down.flatten(1)).reshape(weight.shape)
    expected = merged * magnitude / torch.linalg.vector_norm(merged, dim=(0, 2, 3), keepdim=True)
    ours = WeightDecomposed(LowRank(up, down, 3.0), magnitude)
    assert ours.misfit(weight.shape) is None
    assert close(ours.patched(weight.clone(), 1.0), expected)


def test_dora_strength_interpolates_between_the_weight_and_its_decomposed_result():
    # ComfyUI's rule (weight_decompose): W + strength·(W' − W); strength 0 is the weight itself
    g = torch.Generator().manual_seed(3)
    weight = torch.randn(6, 8, generator=g)
    layer = WeightDecomposed(LowRank(torch.randn(6, 2, generator=g), torch.randn(2, 8, generator=g), None),
                             torch.rand(6, 1, generator=g) + 0.5)
    full = layer.patched(weight.clone(), 1.0)
    assert close(layer.patched(weight.clone(), 0.3), weight + 0.3 * (full - weight))
    assert torch.equal(layer.patched(weight.clone(), 0.0), weight)


def test_full_diff_adds_the_weight_and_bias_differences():
    layer = FullDiff(torch.full((3, 2), 0.5), torch.tensor([1.0, 2.0, 3.0]))
    (weight_name, weight_patch), (bias_name, bias_patch) = layer.targets()
    assert (weight_name, bias_name) == ("weight", "bias")
    assert torch.equal(weight_patch.patched(torch.ones(3, 2), 2.0), torch.full((3, 2), 2.0))
    assert torch.equal(bias_patch.patched(torch.zeros(3), 0.5), torch.tensor([0.5, 1.0, 1.5]))


# -- the kohya-layout files on a tiny SD1 model ---------------------------------------------------


@pytest.fixture
def sd1(tiny):
    from diffusion.memory import ModelManager

    return ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)


def weights(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


KINDS = {"loha": LoHa, "lokr": LoKr, "full": FullDiff, "dora_out": WeightDecomposed, "dora_in": WeightDecomposed}


@pytest.mark.parametrize("algo", ["loha", "lokr", "locon_tucker", "full", "dora_out", "dora_in"])
def test_kohya_layout_lycoris_file_patches_unet_convs_and_text_encoder_then_restores_exactly(sd1, tmp_path, algo):
    model, clip, _ = sd1
    encoder = clip.encoders[0].model
    path = save(lycoris_state(model.unet, [encoder], algo=algo), tmp_path / f"{algo}.safetensors")
    lora = load_lora(path)
    conv = lora.component("unet")["down_blocks_0_resnets_0_conv1"]
    assert isinstance(conv, KINDS.get(algo, TuckerLowRank))
    assert lora.components() == {"unet", "te"}
    original_unet, original_text = weights(model.unet), weights(encoder)
    patched_model, patched_clip = with_unet_lora(model, lora, 0.7), with_clip_lora(clip, lora, 1.0)
    apply_patches(model.unet, patched_model.patches)
    apply_patches(encoder, tuple(p for _, p in patched_clip.patches))
    changed = {k for k, v in model.unet.state_dict().items() if not torch.equal(v, original_unet[k])}
    assert "down_blocks.0.resnets.0.conv1.weight" in changed
    assert changed == {name for name, _ in patched_model.patches[0].layers}
    if algo == "full":
        assert "down_blocks.0.resnets.0.conv1.bias" in changed
    assert any(not torch.equal(v, original_text[k]) for k, v in encoder.state_dict().items())
    apply_patches(model.unet, ())
    apply_patches(encoder, ())
    for original, module in ((original_unet, model.unet), (original_text, encoder)):
        assert all(torch.equal(original[k], v) for k, v in module.state_dict().items())


@pytest.mark.parametrize("algo", ["loha", "lokr", "dora_in"])
def test_patched_conv_weight_is_original_plus_the_layer_result(sd1, tmp_path, algo):
    model, _, _ = sd1
    lora = load_lora(save(lycoris_state(model.unet, algo=algo, alpha=4.0), tmp_path / "a.safetensors"))
    name = "down_blocks.0.resnets.0.conv1.weight"
    original = model.unet.state_dict()[name].clone()
    layer = lora.component("unet")["down_blocks_0_resnets_0_conv1"]
    apply_patches(model.unet, with_unet_lora(model, lora, 0.5).patches)
    assert torch.equal(model.unet.state_dict()[name], layer.patched(original.clone(), 0.5))


@pytest.mark.parametrize("algo", ["loha", "lokr", "dora_out"])
def test_strength_zero_patch_leaves_every_weight_bit_identical(sd1, tmp_path, algo):
    model, _, _ = sd1
    lora = load_lora(save(lycoris_state(model.unet, algo=algo), tmp_path / "a.safetensors"))
    original = weights(model.unet)
    apply_patches(model.unet, with_unet_lora(model, lora, 0.0).patches)
    assert all(torch.equal(original[k], v) for k, v in model.unet.state_dict().items())


@pytest.mark.parametrize("algo", ["loha", "lokr", "locon_tucker", "full", "dora_out"])
def test_lora_loader_node_applies_a_lycoris_file_and_leaves_no_trace(env, tiny, tmp_path, algo):
    from diffusion.memory import ModelManager

    ckpt = install(env, tiny("sd1"))
    model, clip, _ = ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)
    state = lycoris_state(model.unet, [e.model for e in clip.encoders], algo=algo, scale=0.5 if algo != "full" else 0.05)
    folder = env.folders.models / "loras"
    folder.mkdir(parents=True, exist_ok=True)
    name = save(state, folder / f"{algo}_style.safetensors").name

    def image(lora, strength):
        outcome = run_graph(env, txt2img(ckpt, lora, strength))
        assert outcome.status == "success", outcome.error
        return png_pixels(saved_images(env, outcome)[0])

    plain = image(None, 1.0)
    shared = env.models.load_checkpoint(env.folders.model_path("checkpoints", ckpt))[0].unet
    before = weights(shared)
    styled, off = image(name, 1.0), image(name, 0.0)
    assert np.abs(styled - plain).max() > 2 / 255
    assert np.array_equal(off, plain)
    assert applied_patches(shared) == ()
    assert all(torch.equal(before[k], v) for k, v in shared.state_dict().items())


# -- malformed files ------------------------------------------------------------------------


@pytest.mark.parametrize("state, message", [
    ({"lora_unet_mid_block_attn.hada_w1_a": torch.zeros(4, 2), "lora_unet_mid_block_attn.hada_w1_b": torch.zeros(2, 4),
      "lora_unet_mid_block_attn.hada_w2_a": torch.zeros(4, 2)}, r"'mid_block_attn' is a LoHa layer without hada_w2_b"),
    ({"lora_unet_x_to_q.hada_w1_a": torch.zeros(4, 2), "lora_unet_x_to_q.hada_w1_b": torch.zeros(3, 4),
      "lora_unet_x_to_q.hada_w2_a": torch.zeros(4, 2), "lora_unet_x_to_q.hada_w2_b": torch.zeros(2, 4)},
     r"'x_to_q' has LoHa hada_w1_a \[4, 2\] and hada_w1_b \[3, 4\], whose ranks differ"),
    ({"lora_unet_x_to_q.hada_w1_a": torch.zeros(4, 2), "lora_unet_x_to_q.hada_w1_b": torch.zeros(2, 4),
      "lora_unet_x_to_q.hada_w2_a": torch.zeros(4, 2), "lora_unet_x_to_q.hada_w2_b": torch.zeros(2, 6)},
     r"'x_to_q' has LoHa products of different shapes"),
    ({"lora_unet_conv1.hada_w1_a": torch.zeros(2, 4), "lora_unet_conv1.hada_w1_b": torch.zeros(2, 4),
      "lora_unet_conv1.hada_w2_a": torch.zeros(2, 4), "lora_unet_conv1.hada_w2_b": torch.zeros(2, 4),
      "lora_unet_conv1.hada_t1": torch.zeros(2, 2, 3, 3)}, r"'conv1' is a Tucker LoHa layer without hada_t2"),
    ({"lora_unet_x_to_k.lokr_w1": torch.zeros(2, 2), "lora_unet_x_to_k.lokr_w2_a": torch.zeros(4, 2)},
     r"'x_to_k' is a LoKr layer without lokr_w2_b"),
    ({"lora_unet_x_to_k.lokr_w2": torch.zeros(2, 2)}, r"'x_to_k' is a LoKr layer without lokr_w1_a / lokr_w1_b"),
    ({"lora_unet_conv1.lora_up.weight": torch.zeros(4, 2, 1, 1), "lora_unet_conv1.lora_down.weight": torch.zeros(2, 4, 1, 1),
      "lora_unet_conv1.lora_mid.weight": torch.zeros(3, 3, 3, 3)}, r"'conv1' has lora_mid \[3, 3, 3, 3\] whose ranks"),
    ({"lora_unet_x_to_v.diff_b": torch.zeros(4)}, r"'x_to_v' is a full diff layer without diff"),
    ({"lora_unet_x_to_v.dora_scale": torch.zeros(4, 1), "lora_unet_x_to_v.alpha": torch.tensor(1.0)},
     r"'x_to_v' has only alpha / dora_scale, no weights"),
    ({"lora_unet_x_to_v.hada_w1_a": torch.zeros(4, 2), "lora_unet_x_to_v.lora_up.weight": torch.zeros(4, 2)},
     r"'x_to_v' mixes LoHa and LoRA weights"),
], ids=["loha_missing_factor", "loha_rank_mismatch", "loha_products_differ", "loha_tucker_missing_t2",
        "lokr_missing_w2_b", "lokr_missing_w1", "locon_mid_ranks", "diff_b_alone", "dora_alone", "mixed_types"])
def test_malformed_lycoris_layer_is_a_clear_error_naming_the_layer(state, message):
    with pytest.raises(ModelLoadError, match=r"LoRA 'bad\.safetensors': layer " + message):
        parse_lora(state, "bad.safetensors")


def test_glora_layers_are_refused_with_a_clear_error():
    with pytest.raises(ModelLoadError, match=r"GLoRA layers \(e\.g\. 'lora_unet_x\.a1\.weight'\) are not supported"):
        parse_lora({"lora_unet_x.a1.weight": torch.zeros(2, 2)}, "glora.safetensors")


def test_lokr_whose_kronecker_size_differs_from_the_model_layer_names_both_sizes(sd1):
    model, _, _ = sd1
    lora = parse_lora({"lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lokr_w1": torch.zeros(2, 2),
                       "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lokr_w2": torch.zeros(3, 3)},
                      "odd_lokr.safetensors")
    with pytest.raises(LoraMismatch, match=r"odd_lokr\.safetensors.*attn1_to_q \(LoKr 6→6, model \d+→\d+\)"):
        with_unet_lora(model, lora, 1.0)


def test_dora_magnitude_that_fits_neither_axis_is_a_clear_mismatch(sd1):
    model, _, _ = sd1
    base = "lora_unet_down_blocks_0_resnets_0_conv1"
    weight = model.unet.state_dict()["down_blocks.0.resnets.0.conv1.weight"]
    out_dim, in_dim = weight.shape[:2]
    lora = parse_lora({f"{base}.lora_up.weight": torch.zeros(out_dim, 2, 1, 1),
                       f"{base}.lora_down.weight": torch.zeros(2, in_dim, 3, 3),
                       f"{base}.dora_scale": torch.ones(1, in_dim + 1, 1, 1)}, "dora.safetensors")
    with pytest.raises(LoraMismatch, match=r"DoRA magnitude \[1, \d+, 1, 1\] fits neither"):
        with_unet_lora(model, lora, 1.0)


# -- other spellings and stacking ---------------------------------------------------------------


def test_peft_layout_dora_file_patches_like_peft_merges_it():
    # diffusers/PEFT files store DoRA as `<layer>.lora_magnitude_vector` next to lora_A/lora_B
    # (PEFT drops the ".default.weight" of the in-memory parameter when saving); a conv's
    # magnitude is [1, out, 1, 1] there, one value per output all the same
    from diffusion.lora import resolve

    model = peft_model(peft.LoraConfig(r=2, lora_alpha=4, target_modules=["lin", "conv"], init_lora_weights=False,
                                       use_dora=True))
    state = {}
    for name in ("lin", "conv"):
        layer = getattr(model, name)
        with torch.no_grad():
            layer.lora_magnitude_vector["default"].weight.mul_(1.3)
        state[f"unet.{name}.lora_A.weight"] = layer.lora_A["default"].weight.detach().clone()
        state[f"unet.{name}.lora_B.weight"] = layer.lora_B["default"].weight.detach().clone()
        state[f"unet.{name}.lora_magnitude_vector"] = layer.lora_magnitude_vector["default"].weight.detach().clone()
    state = {k: v * (4 / 2) if k.endswith("lora_B.weight") else v for k, v in state.items()}  # no alpha key: scale 1
    plain = Pair()
    apply_patches(plain, (resolve(parse_lora(state, "peft_dora.safetensors"), "unet", plain, 1.0),))
    with torch.no_grad():
        model.lin.merge()
        model.conv.merge()
    assert close(plain.lin.weight, model.lin.get_base_layer().weight)
    assert close(plain.conv.weight, model.conv.get_base_layer().weight)


def test_norm_layer_differences_change_the_group_norm_weight_and_bias(sd1):
    model, _, _ = sd1
    base = "lora_unet_down_blocks_0_resnets_0_norm1"
    norm = model.unet.down_blocks[0].resnets[0].norm1
    channels = norm.weight.shape[0]
    original_weight, original_bias = norm.weight.detach().clone(), norm.bias.detach().clone()
    lora = parse_lora({f"{base}.w_norm": torch.full((channels,), 0.25), f"{base}.b_norm": torch.full((channels,), -1.0)},
                      "norms.safetensors")
    apply_patches(model.unet, with_unet_lora(model, lora, 2.0).patches)
    assert torch.equal(norm.weight.detach(), original_weight + 0.5)
    assert torch.equal(norm.bias.detach(), original_bias - 2.0)


def test_dora_stacked_after_a_lora_decomposes_the_weight_the_lora_left(sd1, tmp_path):
    model, _, _ = sd1
    plain = load_lora(save(lycoris_state(model.unet, algo="loha", seed=1), tmp_path / "loha.safetensors"))
    dora = load_lora(save(lycoris_state(model.unet, algo="dora_out", seed=2), tmp_path / "dora.safetensors"))
    name, key = "down_blocks.0.resnets.0.conv1.weight", "down_blocks_0_resnets_0_conv1"
    original = model.unet.state_dict()[name].clone()
    apply_patches(model.unet, with_unet_lora(with_unet_lora(model, plain, 1.0), dora, 0.8).patches)
    after_loha = plain.component("unet")[key].patched(original.clone(), 1.0)
    expected = dora.component("unet")[key].patched(after_loha, 0.8)
    assert torch.equal(model.unet.state_dict()[name], expected)
