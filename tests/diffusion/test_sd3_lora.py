"""SD3 / SD3.5 LoRAs in diffusers (PEFT), kohya and ComfyUI (MMDiT-dotted) layouts: Loom's patched
transformer against diffusers' own ``load_lora_weights``, and MMDiT-named LoRAs against the merged
weight computed in MMDiT's layout (fused q, k, v; (shift, scale) modulations)."""

from __future__ import annotations

import copy

import pytest

#: MMDiT layer → its (out, in) size in the tiny SD3.5-large-like model (width 128, two blocks, the last pre-only)
LAYERS = {
    "joint_blocks.0.x_block.attn.qkv": (384, 128), "joint_blocks.0.context_block.attn.qkv": (384, 128),
    "joint_blocks.0.x_block.attn.proj": (128, 128), "joint_blocks.0.context_block.attn.proj": (128, 128),
    "joint_blocks.1.x_block.mlp.fc1": (512, 128), "joint_blocks.0.context_block.mlp.fc2": (128, 512),
    "joint_blocks.0.x_block.adaLN_modulation.1": (768, 128),
    "joint_blocks.1.context_block.adaLN_modulation.1": (256, 128),
    "final_layer.adaLN_modulation.1": (256, 128), "final_layer.linear": (64, 128), "context_embedder": (128, 64),
    "y_embedder.mlp.0": (128, 64),
}
RANK, ALPHA = 4, 2.0


@pytest.fixture(scope="module")
def fp32_large(tiny_sd3, tmp_path_factory):
    """The tiny SD3.5-large transformer saved in float32 MMDiT layout (no bf16 rounding of patched weights)."""
    from safetensors.torch import save_file

    from tests.fixtures.tiny_sd3 import diffusers_to_mmdit

    path = tmp_path_factory.mktemp("sd3_fp32") / "sd3.5_large_fp32.safetensors"
    save_file(diffusers_to_mmdit(tiny_sd3.modules["sd35_large"].state_dict(), 2), str(path))
    return path


def _factors(seed: int = 3, scale: float = 0.2) -> dict:
    import torch

    g = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(RANK, size[1], generator=g) * scale, torch.randn(size[0], RANK, generator=g) * scale)
            for name, size in LAYERS.items()}


def _inputs():
    import torch

    g = torch.Generator().manual_seed(1)
    return dict(hidden_states=torch.randn(1, 16, 8, 8, generator=g), encoder_hidden_states=torch.randn(1, 5, 64, generator=g),
                pooled_projections=torch.randn(1, 64, generator=g), timestep=torch.tensor([600.0]), return_dict=False)


def _loom(env, path_model, state, tmp_path, strength=1.0):
    import torch
    from safetensors.torch import save_file

    from diffusion.lora import load_lora, with_unet_lora
    from diffusion.sd3_model import load_diffusion_model

    path = tmp_path / "sd3_lora.safetensors"
    save_file({k: v.contiguous().clone() for k, v in state.items()}, str(path))
    model = with_unet_lora(load_diffusion_model(env.models, path_model), load_lora(path), strength)
    with torch.inference_mode():
        return model.unet(**_inputs())[0]


def _kohya(factors: dict) -> dict:
    import torch

    out = {}
    for name, (down, up) in factors.items():
        key = "lora_unet_" + name.replace(".", "_")
        out[key + ".lora_down.weight"], out[key + ".lora_up.weight"] = down, up
        out[key + ".alpha"] = torch.tensor(ALPHA)
    return out


def _merged_reference(tiny_sd3, factors: dict, strength: float):
    """The tiny transformer with W + strength·(alpha/rank)·up@down added in MMDiT's layout, then converted."""
    from diffusers import SD3Transformer2DModel

    from diffusion.sd3_files import mmdit_to_diffusers, sd3_architecture
    from tests.fixtures.tiny_sd3 import diffusers_to_mmdit

    module = tiny_sd3.modules["sd35_large"]
    state = diffusers_to_mmdit(module.state_dict(), 2)
    for name, (down, up) in factors.items():
        state[name + ".weight"] = state[name + ".weight"] + strength * (ALPHA / RANK) * (up @ down)
    arch = sd3_architecture({k: tuple(v.shape) for k, v in state.items()})
    reference = SD3Transformer2DModel.from_config(arch.config).eval()
    reference.load_state_dict(mmdit_to_diffusers(state, arch))
    return reference


@pytest.mark.parametrize("layout", ["kohya", "comfyui_dotted"])
def test_an_mmdit_named_lora_equals_the_weight_merged_in_mmdits_layout(sd3_env, tiny_sd3, fp32_large, tmp_path, layout):
    import torch

    factors = _factors()
    state = _kohya(factors)
    if layout == "comfyui_dotted":
        state = {}
        for name, (down, up) in factors.items():
            state[f"diffusion_model.{name}.lora_down.weight"] = down
            state[f"diffusion_model.{name}.lora_up.weight"] = up
            state[f"diffusion_model.{name}.alpha"] = torch.tensor(ALPHA)
    got = _loom(sd3_env, fp32_large, state, tmp_path, strength=0.8)
    with torch.inference_mode():
        expected = _merged_reference(tiny_sd3, factors, 0.8)(**_inputs())[0]
        plain = tiny_sd3.modules["sd35_large"](**_inputs())[0]
    assert not torch.allclose(expected, plain, atol=1e-3)  # the LoRA changes the output
    assert torch.allclose(got, expected, atol=1e-4), float((got - expected).abs().max())


def test_a_diffusers_layout_sd3_lora_matches_diffusers_load_lora_weights(sd3_env, tiny_sd3, fp32_large, tmp_path):
    import torch

    from diffusion.sd3_lora import to_diffusers_names
    from tests.fixtures.tiny_sd3 import reference_pipeline

    renamed = to_diffusers_names(_kohya({k: v for k, v in _factors().items()
                                        if "adaLN" not in k and not k.startswith(("final", "y_emb"))}))
    rank = RANK
    peft = {}
    for key, value in renamed.items():
        if key.endswith(".alpha"):
            continue
        scale = ALPHA / rank if key.endswith(".lora_up.weight") else 1.0  # PEFT files carry no alpha: fold it in
        peft[key.replace(".lora_down.weight", ".lora_A.weight").replace(".lora_up.weight", ".lora_B.weight")] = value * scale
    got = _loom(sd3_env, fp32_large, peft, tmp_path, strength=0.7)
    pipe = reference_pipeline(tiny_sd3, "sd35_large")
    pipe.transformer = copy.deepcopy(pipe.transformer)
    pipe.load_lora_weights({k: v.clone() for k, v in peft.items()})
    with torch.inference_mode():
        expected = pipe.transformer(**_inputs(), joint_attention_kwargs={"scale": 0.7})[0]
    assert torch.allclose(got, expected, atol=1e-4), float((got - expected).abs().max())


def test_an_sd3_lora_layer_without_its_up_weight_is_named(sd3_env, fp32_large, tmp_path):
    from diffusion.errors import ModelLoadError

    state = _kohya(_factors())
    del state["lora_unet_joint_blocks_0_x_block_attn_qkv.lora_up.weight"]
    with pytest.raises(ModelLoadError, match="joint_blocks.0.x_block.attn.qkv.*lacks its up weight"):
        _loom(sd3_env, fp32_large, state, tmp_path)
