"""ComfyUI's "scaled fp8" files (``sd3.5_large_fp8_scaled.safetensors``, ``t5xxl_fp8_e4m3fn_scaled``):
each Linear weight is stored in fp8 with a ``scale_weight`` it is multiplied by, and a
``scaled_fp8`` marker says so.  Loaded, they compute what the scaled weights compute."""

from __future__ import annotations

import pytest

FP8_MAX = 448.0


def to_scaled_fp8(state: dict, prefix: str = "") -> dict:
    """A state dict as ComfyUI saves scaled fp8: 2-D weights in fp8 with their scale, plus the marker."""
    import torch

    out = {}
    for key, tensor in state.items():
        if key.endswith(".weight") and tensor.ndim == 2:
            scale = tensor.float().abs().max() / FP8_MAX
            out[key] = (tensor.float() / scale).to(torch.float8_e4m3fn)
            out[key[: -len(".weight")] + ".scale_weight"] = scale.reshape(())
        else:
            out[key] = tensor
    out[prefix + "scaled_fp8"] = torch.empty(0, dtype=torch.float8_e4m3fn)
    return out


def dequantized(state: dict) -> dict:
    """What a scaled fp8 state stands for: ``weight·scale`` (in bf16), the rest as stored."""

    out = {}
    for key, tensor in state.items():
        if key.endswith(("scaled_fp8", ".scale_weight")):
            continue
        scale = state.get(key[: -len(".weight")] + ".scale_weight") if key.endswith(".weight") else None
        out[key] = tensor if scale is None else (tensor.float() * scale.float()).bfloat16()
    return out


def test_weight_source_hides_the_scales_and_reads_scaled_weights(tmp_path):
    import torch
    from safetensors.torch import save_file

    from diffusion.loading import WeightSource

    weight = torch.tensor([[0.5, -0.25], [0.125, 1.0]])
    state = to_scaled_fp8({"layer.weight": weight, "layer.bias": torch.ones(2)})
    save_file(state, str(tmp_path / "scaled.safetensors"))
    source = WeightSource(tmp_path / "scaled.safetensors")
    assert set(source.shapes()) == {"layer.weight", "layer.bias"}
    read = source.read(["layer.weight", "layer.bias"])
    assert read["layer.weight"].dtype == torch.bfloat16
    assert torch.allclose(read["layer.weight"].float(), weight, rtol=2 ** -3)
    assert torch.equal(read["layer.weight"], dequantized(state)["layer.weight"])


def test_a_file_with_scale_keys_but_no_marker_is_read_as_stored(tmp_path):
    import torch
    from safetensors.torch import save_file

    from diffusion.loading import WeightSource

    save_file({"a.weight": torch.ones(2, 2), "a.scale_weight": torch.tensor(2.0)}, str(tmp_path / "plain.safetensors"))
    source = WeightSource(tmp_path / "plain.safetensors")
    assert set(source.shapes()) == {"a.weight", "a.scale_weight"}
    assert torch.equal(source.read(["a.weight"])["a.weight"], torch.ones(2, 2))


def test_a_scaled_fp8_sd3_transformer_computes_with_its_scaled_weights(tmp_path, tiny_sd3, manager):
    import torch
    from diffusers import SD3Transformer2DModel
    from safetensors.torch import save_file

    from diffusion.sd3_files import mmdit_to_diffusers, sd3_architecture
    from diffusion.sd3_model import load_diffusion_model
    from tests.fixtures.tiny_sd3 import mmdit_file_state

    state = to_scaled_fp8(mmdit_file_state(tiny_sd3.modules["sd35_large"]))
    save_file(state, str(tmp_path / "sd3.5_large_fp8_scaled.safetensors"))
    plain = dequantized(state)
    arch = sd3_architecture({k: tuple(v.shape) for k, v in plain.items()})
    reference = SD3Transformer2DModel.from_config(arch.config).eval()
    reference.load_state_dict({k: v.float() for k, v in mmdit_to_diffusers(dict(plain), arch).items()})
    model = load_diffusion_model(manager, tmp_path / "sd3.5_large_fp8_scaled.safetensors")
    torch.manual_seed(0)
    kwargs = dict(hidden_states=torch.randn(1, 16, 8, 8), encoder_hidden_states=torch.randn(1, 5, 64),
                  pooled_projections=torch.randn(1, 64), timestep=torch.tensor([400.0]), return_dict=False)
    with torch.inference_mode():
        assert torch.allclose(model.unet(**kwargs)[0], reference(**kwargs)[0], atol=1e-5)


def test_a_scaled_fp8_t5_encodes_as_its_scaled_weights(tmp_path, tiny_flux, manager):
    import torch
    from safetensors.torch import save_file

    from diffusion.flux_text import load_text_encoder_file
    from tests.fixtures.tiny_flux import t5_file_state, tiny_t5

    state = to_scaled_fp8(t5_file_state(tiny_flux.modules["t5"]))
    save_file(state, str(tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors"))
    reference = tiny_t5()
    plain = dequantized(state)
    plain["encoder.embed_tokens.weight"] = plain["shared.weight"]
    reference.load_state_dict({k: v.float() for k, v in plain.items()})
    kind, loaded = load_text_encoder_file(manager, tmp_path / "t5xxl_fp8_e4m3fn_scaled.safetensors", "DualCLIPLoader")
    assert kind == "t5"
    ids = torch.tensor([[3, 9, 1202, 1, 0, 0]])
    with torch.inference_mode():
        expected = reference(input_ids=ids).last_hidden_state
    got = loaded.model(input_ids=ids).last_hidden_state.float()
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("suffix", ["scaled_fp8", "x.scale_weight", "x.scale_input"])
def test_scale_keys_are_recognised(suffix):
    from diffusion.loading import is_scale_key

    assert is_scale_key(suffix) and not is_scale_key("x.weight")
