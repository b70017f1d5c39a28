"""ControlNet: the original single-file layout and diffusers folders load into the same
model; Apply nodes put chained control entries into CONDITIONING; residuals match the
call diffusers' ControlNet pipeline makes; bad files and wrong families are clear errors."""

from __future__ import annotations

import pytest
import torch

from diffusion.controlnet import ControlApplication, load_controlnet, percent_to_timestep
from diffusion.errors import ModelLoadError
from nodes.controlnet import ControlNetApply, ControlNetApplyAdvanced, ControlNetLoader
from tests.capabilities.conftest import install
from tests.fixtures.tiny_extras import save, tiny_controlnet


@pytest.fixture(scope="module")
def control_files(tiny, tmp_path_factory):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(tiny("sd1").diffusers_dir, subfolder="unet", local_files_only=True)
    return tiny_controlnet(unet, tmp_path_factory.mktemp("controlnet"))


def inputs(seed=0, batch=2, context_width=32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 4, 8, 8, generator=g), torch.tensor(700),
            torch.randn(batch, 77, context_width, generator=g), torch.rand(1, 64, 64, 3, generator=g))


def reference(model, latents, t, context, image, scale):
    """diffusers' pipeline call: hint [B, 3, H, W] in 0..1, conditioning_scale = strength."""
    hint = image.movedim(-1, 1).repeat(latents.shape[0], 1, 1, 1)
    with torch.no_grad():
        return model(latents, t, encoder_hidden_states=context, controlnet_cond=hint, conditioning_scale=scale,
                     guess_mode=False, return_dict=False)


def test_single_file_controlnet_loads_to_the_same_weights(control_files):
    single, _, original = control_files
    loaded = load_controlnet(single)
    theirs = original.state_dict()
    ours = loaded.model.state_dict()
    assert set(ours) == set(theirs) and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert loaded.model.config.conditioning_embedding_out_channels == original.config.conditioning_embedding_out_channels


def test_diffusers_folder_controlnet_loads(control_files):
    _, folder, original = control_files
    loaded = load_controlnet(folder)
    assert loaded.source == folder.name
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in loaded.model.state_dict().items())


def test_residuals_match_the_diffusers_pipeline_call(control_files):
    single, _, original = control_files
    latents, t, context, image = inputs()
    application = ControlApplication(load_controlnet(single), image, strength=0.7)
    with torch.no_grad():
        down, mid = application.residuals(latents, t, context)
    ref_down, ref_mid = reference(original, latents, t, context, image, 0.7)
    assert len(down) == len(ref_down)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(down, ref_down))
    assert torch.allclose(mid, ref_mid, atol=1e-5) and float(mid.abs().max()) > 0


def test_chained_controlnets_sum_their_residuals(control_files):
    single, folder, original = control_files
    latents, t, context, image = inputs()
    first = ControlApplication(load_controlnet(single), image, strength=0.5)
    second = ControlApplication(load_controlnet(folder), 1 - image, strength=1.2, previous=first)
    with torch.no_grad():
        down, mid = second.residuals(latents, t, context)
    a_down, a_mid = reference(original, latents, t, context, image, 0.5)
    b_down, b_mid = reference(original, latents, t, context, 1 - image, 1.2)
    assert torch.allclose(mid, a_mid + b_mid, atol=1e-5)
    assert all(torch.allclose(d, x + y, atol=1e-5) for d, x, y in zip(down, a_down, b_down))


def test_controlnet_is_inactive_outside_its_percent_range(control_files):
    single, _, _ = control_files
    latents, _, context, image = inputs()
    late = ControlApplication(load_controlnet(single), image, start_percent=0.5, end_percent=1.0)
    assert late.residuals(latents, torch.tensor(percent_to_timestep(0.2)), context) is None
    assert late.residuals(latents, torch.tensor(percent_to_timestep(0.7)), context) is not None


def test_hint_of_another_size_is_resized_to_the_latent(control_files):
    single, _, _ = control_files
    latents, t, context, _ = inputs()
    application = ControlApplication(load_controlnet(single), torch.rand(1, 40, 48, 3))
    with torch.no_grad():
        down, _ = application.residuals(latents, t, context)
    assert down[0].shape[-2:] == latents.shape[-2:]


def conditioning(width=32):
    return [[torch.zeros(1, 77, width), {"pooled_output": None}]]


def test_apply_advanced_puts_the_control_on_both_conditionings(control_files):
    control = load_controlnet(control_files[0])
    image = torch.rand(1, 64, 64, 3)
    positive, negative = ControlNetApplyAdvanced.fn(conditioning(), conditioning(), control, image,
                                                    strength=0.8, start_percent=0.1, end_percent=0.9, vae=None)
    for cond in (positive, negative):
        entry = cond[0][1]["control"]
        assert entry.control is control and entry.strength == 0.8
        assert (entry.start_percent, entry.end_percent) == (0.1, 0.9)
        assert cond[0][1]["control_apply_to_uncond"] is False


def test_apply_chains_onto_an_existing_control_and_leaves_the_input_unchanged(control_files):
    control = load_controlnet(control_files[0])
    once = ControlNetApply.fn(conditioning(), control, torch.rand(1, 64, 64, 3), strength=1.0)
    twice = ControlNetApply.fn(once, control, torch.rand(1, 64, 64, 3), strength=0.5)
    assert twice[0][1]["control"].previous is once[0][1]["control"]
    assert len(twice[0][1]["control"].chain()) == 2 and once[0][1]["control"].previous is None


def test_strength_zero_leaves_the_conditioning_as_is(control_files):
    cond = conditioning()
    assert ControlNetApply.fn(cond, load_controlnet(control_files[0]), torch.rand(1, 8, 8, 3), strength=0.0) is cond


def test_controlnet_for_another_family_is_a_clear_error(control_files):
    with pytest.raises(ValueError, match=r"tiny_controlnet\.safetensors.*32-wide.*64-wide"):
        ControlNetApply.fn(conditioning(64), load_controlnet(control_files[0]), torch.rand(1, 8, 8, 3), 1.0)


def test_loader_node_reads_from_the_controlnet_folder(ctx, env, control_files):
    name = install(env, "controlnet", control_files[0])
    assert ControlNetLoader.fn(ctx, control_net_name=name).source == name


def test_a_checkpoint_given_as_controlnet_is_a_clear_error(tiny):
    with pytest.raises(ModelLoadError, match=r"tiny_sd1\.safetensors is not a ControlNet"):
        load_controlnet(tiny("sd1").checkpoint)


def test_an_incomplete_controlnet_file_names_what_is_missing(control_files, tmp_path):
    from safetensors.torch import load_file

    state = load_file(str(control_files[0]))
    del state["control_model.middle_block_out.0.weight"]
    path = save(state, tmp_path / "cut.safetensors")
    with pytest.raises(ModelLoadError, match=r"cut\.safetensors.*incomplete"):
        load_controlnet(path)
