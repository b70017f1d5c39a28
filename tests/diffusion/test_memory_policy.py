"""ComfyUI's precision and VRAM flags → the model manager's policy.

The mapping is a pure function (no torch, no device), so every device's answer is
tested here on the CPU; the manager then loads and patches in the dtypes it chose."""

from __future__ import annotations

import pytest
import torch

from diffusion.memory_policy import MemoryPolicy, component_dtypes, device_notes, policy_from_flags


def dtypes(device: str, bf16: bool = False, **flags) -> dict:
    return component_dtypes(policy_from_flags(flags), device, bf16)


# -- the defaults per device ------------------------------------------------------------------


def test_cpu_computes_everything_in_float32():
    assert dtypes("cpu") == {"unet": "float32", "text": "float32", "vae": "float32"}


def test_cuda_with_bf16_uses_bf16_everywhere_the_vae_included():
    assert dtypes("cuda", bf16=True) == {"unet": "bfloat16", "text": "bfloat16", "vae": "bfloat16"}


@pytest.mark.parametrize("device,bf16", [("cuda", False), ("mps", False)])
def test_gpus_without_bf16_use_fp16_with_a_float32_vae(device, bf16):
    assert dtypes(device, bf16) == {"unet": "float16", "text": "float16", "vae": "float32"}


# -- the flags ------------------------------------------------------------------------------------


def test_force_fp32_makes_every_component_float32_on_a_gpu():
    assert dtypes("cuda", bf16=True, force_fp32=True) == {"unet": "float32", "text": "float32", "vae": "float32"}


def test_force_fp16_halves_unet_and_text_but_keeps_the_safe_vae():
    assert dtypes("cuda", bf16=True, force_fp16=True) == {"unet": "float16", "text": "float16", "vae": "bfloat16"}
    assert dtypes("cpu", force_fp16=True) == {"unet": "float16", "text": "float16", "vae": "float32"}


@pytest.mark.parametrize("flag,component,dtype", [
    ("bf16_unet", "unet", "bfloat16"), ("fp16_unet", "unet", "float16"), ("fp32_unet", "unet", "float32"),
    ("fp64_unet", "unet", "float64"), ("fp16_vae", "vae", "float16"), ("fp32_vae", "vae", "float32"),
    ("bf16_vae", "vae", "bfloat16"), ("fp16_text_enc", "text", "float16"), ("fp32_text_enc", "text", "float32"),
    ("bf16_text_enc", "text", "bfloat16"),
])
def test_a_component_flag_beats_force_and_the_device_default(flag, component, dtype):
    for device, bf16 in (("cpu", False), ("cuda", True), ("cuda", False)):
        for force in ({}, {"force_fp32": True}, {"force_fp16": True}):
            assert dtypes(device, bf16, **force, **{flag: True})[component] == dtype


def test_fp8_and_no_op_flags_warn_instead_of_failing():
    policy = policy_from_flags({"fp8_e4m3fn_unet": True, "fp8_e5m2_text_enc": True, "cpu_vae": True})
    assert component_dtypes(policy, "cpu") == {"unet": "float32", "text": "float32", "vae": "float32"}
    assert [w.split(":")[0].split(" ")[0] for w in policy.warnings] == [
        "--fp8_e4m3fn-unet", "--fp8_e5m2-text-enc", "--cpu-vae"]


@pytest.mark.parametrize("flag,vram,exclusive,evicts", [
    (None, "normal", False, True), ("normalvram", "normal", False, True), ("highvram", "high", False, True),
    ("gpu_only", "gpu-only", False, False), ("lowvram", "low", True, True), ("novram", "no", True, True),
    ("disable_smart_memory", "normal", True, True),
])
def test_vram_flags_set_what_the_manager_may_keep_on_the_device(flag, vram, exclusive, evicts):
    policy = policy_from_flags({flag: True} if flag else {})
    assert (policy.vram, policy.exclusive, policy.evicts) == (vram, exclusive, evicts)


def test_reserve_vram_is_read_in_gigabytes_and_a_bad_value_warns():
    assert policy_from_flags({"reserve_vram": 1.5}).reserve_vram_gb == 1.5
    bad = policy_from_flags({"reserve_vram": "lots"})
    assert bad.reserve_vram_gb == 0 and "--reserve-vram" in bad.warnings[0]


def test_gpu_only_flags_on_the_cpu_are_one_line_notes():
    notes = device_notes(policy_from_flags({"lowvram": True, "force_fp16": True, "reserve_vram": 2}), "cpu")
    assert len(notes) == 3 and all("\n" not in n for n in notes)
    assert any("--lowvram" in n for n in notes) and any("half precision" in n for n in notes)
    assert device_notes(MemoryPolicy(), "cpu") == [] and device_notes(policy_from_flags({"lowvram": True}), "cuda") == []


# -- the command line -------------------------------------------------------------------------------

COMFY_FLAGS = ["--force-fp32", "--force-fp16", "--fp32-unet", "--fp64-unet", "--bf16-unet", "--fp16-unet",
               "--fp8_e4m3fn-unet", "--fp8_e5m2-unet", "--fp8_e8m0fnu-unet", "--fp16-vae", "--fp32-vae", "--bf16-vae",
               "--fp16-text-enc", "--fp32-text-enc", "--bf16-text-enc", "--fp8_e4m3fn-text-enc", "--fp8_e5m2-text-enc",
               "--cpu-vae", "--gpu-only", "--highvram", "--normalvram", "--lowvram", "--novram", "--disable-smart-memory"]


@pytest.mark.parametrize("command", ["serve", "run"])
@pytest.mark.parametrize("flag", COMFY_FLAGS)
def test_every_comfyui_spelling_parses_for_serve_and_run(command, flag):
    from server.cli import parser

    argv = [command] + (["workflow.json"] if command == "run" else []) + [flag, "--reserve-vram", "1"]
    args = parser().parse_args(argv)
    assert policy_from_flags(args).reserve_vram_gb == 1.0


def test_the_host_built_from_the_flags_loads_in_the_dtypes_they_ask_for(tmp_path, tiny):
    from server.cli import parser
    from server.host import build_host

    args = parser().parse_args(["run", "w.json", "--cpu", "--base-directory", str(tmp_path), "--bf16-unet",
                                "--fp16-text-enc", "--disable-custom-nodes"])
    env = build_host(args).env
    model, clip, vae = env.models.load_checkpoint(tiny("sd1").checkpoint)
    assert {p.dtype for p in model.unet.parameters()} == {torch.bfloat16}
    assert {p.dtype for e in clip.encoders for p in e.model.parameters()} == {torch.float16}
    assert {p.dtype for p in vae.vae.parameters()} == {torch.float32}


def test_a_lora_stored_in_fp16_patches_a_bf16_unet_in_bf16(tiny, tmp_path):
    from diffusion.lora import load_lora, with_unet_lora
    from diffusion.memory import ModelManager
    from tests.fixtures.tiny_extras import kohya_lora_state, resave, save

    manager = ModelManager(device="cpu", policy=policy_from_flags({"bf16_unet": True}))
    model, _, _ = manager.load_checkpoint(tiny("sd1").checkpoint)
    lora = resave(save(kohya_lora_state(model.unet, rank=4, alpha=2.0), tmp_path / "l.safetensors"),
                  tmp_path / "l16.safetensors", torch.float16)
    before = {k: v.clone() for k, v in model.unet.state_dict().items()}
    patched = with_unet_lora(model, load_lora(lora), 1.0)
    g = torch.Generator().manual_seed(0)
    x, context = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.inference_mode():
        patched.unet(x.bfloat16(), torch.tensor([500]), encoder_hidden_states=context.bfloat16())
    after = model.unet.state_dict()
    assert {v.dtype for v in after.values() if v.is_floating_point()} == {torch.bfloat16}
    assert any(not torch.equal(after[k], before[k]) for k in before)


class _Placed(torch.nn.Module):
    """A module that only records where it is put (no GPU on the test machine: the
    manager's placement logic is the same for any non-CPU device)."""

    def __init__(self):
        super().__init__()
        self.where = "cpu"

    def to(self, device=None, *args, **kwargs):
        self.where = str(device)
        return self

    def parameters(self, recurse: bool = True):
        yield torch.empty(0, device=torch.device("meta") if self.where == "meta" else "cpu")


@pytest.mark.parametrize("flags,first_stays", [({}, True), ({"highvram": True}, True), ({"gpu_only": True}, True),
                                               ({"lowvram": True}, False), ({"novram": True}, False),
                                               ({"disable_smart_memory": True}, False)])
def test_low_vram_modes_keep_only_the_model_in_use_on_the_device(flags, first_stays):
    from diffusion.memory import ModelManager

    manager = ModelManager(device="cpu", policy=policy_from_flags(flags))
    manager.device = torch.device("meta")  # stands in for the GPU
    first, second = _Placed(), _Placed()
    manager._own("a.safetensors", "unet", first)
    manager._own("a.safetensors", "vae", second)
    assert first.where == "meta" or not first_stays
    manager.use(first)
    manager.use(second)
    assert second.where == "meta"
    assert first.where == ("meta" if first_stays else "cpu")
