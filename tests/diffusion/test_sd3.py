"""SD3 / SD3.5 through Loom: transformer files in Stability's MMDiT layout, detection, fp8
storage, ComfyUI's SD3 σ (discrete flow, shift 3, timesteps ×1000), all-in-one checkpoints, and
parity with diffusers' StableDiffusion3Pipeline on the same tiny weights and σ."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a photograph of an astronaut riding a horse"


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


# -- files and detection ----------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["sd3_medium", "sd35_large", "sd35_medium"])
def test_mmdit_layout_converts_back_to_diffusers_bit_identically(tiny_sd3, variant):
    import torch

    from diffusion.sd3_files import mmdit_to_diffusers, sd3_architecture
    from tests.fixtures.tiny_sd3 import mmdit_file_state

    model = tiny_sd3.modules[variant]
    state = mmdit_file_state(model, prefix="model.diffusion_model.")  # as in all-in-one checkpoints
    arch = sd3_architecture(_shapes(state))
    back = mmdit_to_diffusers(dict(state), arch)
    expected = {k: v.bfloat16() for k, v in model.state_dict().items()}
    assert set(back) == set(expected)
    assert all(torch.equal(back[k], expected[k]) for k in expected)


@pytest.mark.parametrize("variant, name, qk_norm, dual", [
    ("sd3_medium", "SD3 medium", None, ()),
    ("sd35_large", "SD3.5 large", "rms_norm", ()),
    ("sd35_medium", "SD3.5 medium", "rms_norm", (0,)),
])
def test_detection_reads_variant_and_sizes_from_the_header(tiny_sd3, variant, name, qk_norm, dual):
    from diffusion.sd3_files import sd3_architecture
    from diffusion.weights_file import SafetensorsFile

    arch = sd3_architecture(SafetensorsFile(tiny_sd3.files[variant]).shapes())
    assert (arch.variant, arch.name, arch.layout) == (variant, name, "mmdit")
    cfg = arch.config
    assert (cfg["num_attention_heads"], cfg["attention_head_dim"], cfg["num_layers"]) == (2, 64, 2)
    assert (cfg["joint_attention_dim"], cfg["pooled_projection_dim"], cfg["pos_embed_max_size"]) == (64, 64, 16)
    assert (cfg["qk_norm"], cfg["dual_attention_layers"]) == (qk_norm, dual)


def test_a_full_size_sd35_large_layout_has_stabilitys_shapes_and_is_detected_as_such():
    """At real width (meta tensors, 2 of the 38 blocks): the names and shapes Stability's
    sd3.5_large.safetensors has, and the config read back from them."""
    import torch
    from diffusers import SD3Transformer2DModel

    from diffusion.sd3_files import sd3_architecture
    from tests.fixtures.tiny_sd3 import diffusers_to_mmdit

    with torch.device("meta"):
        full = SD3Transformer2DModel(num_layers=2, attention_head_dim=64, num_attention_heads=38,
                                     joint_attention_dim=4096, caption_projection_dim=2432, pooled_projection_dim=2048,
                                     pos_embed_max_size=192, qk_norm="rms_norm")
    shapes = _shapes(diffusers_to_mmdit(full.state_dict(), 2, prefix="model.diffusion_model."))
    expected = {"pos_embed": (1, 36864, 2432), "x_embedder.proj.weight": (2432, 16, 2, 2),
                "context_embedder.weight": (2432, 4096), "y_embedder.mlp.0.weight": (2432, 2048),
                "t_embedder.mlp.0.weight": (2432, 256), "final_layer.linear.weight": (64, 2432),
                "final_layer.adaLN_modulation.1.weight": (4864, 2432),
                "joint_blocks.0.x_block.attn.qkv.weight": (7296, 2432), "joint_blocks.0.x_block.attn.ln_q.weight": (64,),
                "joint_blocks.0.x_block.adaLN_modulation.1.weight": (14592, 2432),
                "joint_blocks.1.context_block.adaLN_modulation.1.weight": (4864, 2432),
                "joint_blocks.0.x_block.mlp.fc1.weight": (9728, 2432)}
    assert {k: shapes["model.diffusion_model." + k] for k in expected} == expected
    assert "model.diffusion_model.joint_blocks.1.context_block.mlp.fc1.weight" not in shapes  # the last is pre-only
    config = sd3_architecture(shapes).config
    assert (config["num_attention_heads"], config["pos_embed_max_size"], config["caption_projection_dim"]) == (38, 192, 2432)


def test_a_diffusers_layout_transformer_file_loads_too(tmp_path, tiny_sd3, manager):
    import torch
    from safetensors.torch import save_file

    from diffusion.sd3_model import load_diffusion_model

    reference = tiny_sd3.modules["sd35_large"]
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file({k: v.bfloat16().contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = load_diffusion_model(manager, path)
    assert model.family == "sd3" and model.variant == "sd35_large"
    x, ctx, pooled = torch.randn(1, 16, 8, 8), torch.randn(1, 5, 64), torch.randn(1, 64)
    kwargs = dict(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
                  timestep=torch.tensor([700.0]), return_dict=False)
    with torch.inference_mode():
        assert torch.allclose(model.unet(**kwargs)[0], reference(**kwargs)[0], atol=1e-5)


@pytest.mark.parametrize("role, what", [("t5", "T5 text encoder"), ("vae", "VAE"), ("clip_g", "CLIP text encoder")])
def test_a_wrong_file_in_the_diffusion_model_loader_names_loader_file_and_families(sd3_env, tiny_sd3, role, what):
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_model import load_diffusion_model

    with pytest.raises(ModelLoadError) as info:
        load_diffusion_model(sd3_env.models, tiny_sd3.files[role])
    message = str(info.value)
    assert "UNETLoader" in message and tiny_sd3.files[role].name in message and what in message
    assert "SD3/SD3.5" in message and "FLUX.1" in message


def test_an_incomplete_sd3_file_names_the_missing_tensor(tmp_path, tiny_sd3, manager):
    from safetensors.torch import save_file

    from diffusion.errors import ModelLoadError
    from diffusion.sd3_model import load_diffusion_model
    from tests.fixtures.tiny_sd3 import mmdit_file_state

    state = mmdit_file_state(tiny_sd3.modules["sd3_medium"])
    del state["joint_blocks.1.x_block.mlp.fc2.weight"]
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ModelLoadError, match="joint_blocks.1.x_block.mlp.fc2.weight"):
        load_diffusion_model(manager, tmp_path / "broken.safetensors")


def test_fp8_weights_stay_fp8_in_memory_and_compute_in_float32(sd3_env, tiny_sd3):
    import torch

    from diffusion.sd3_model import load_diffusion_model

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd35_large_fp8"])
    linears = [m for m in model.unet.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.float8_e4m3fn for m in linears)
    reference = tiny_sd3.modules["sd35_large_fp8"]
    torch.manual_seed(0)
    kwargs = dict(hidden_states=torch.randn(1, 16, 8, 8), encoder_hidden_states=torch.randn(1, 5, 64),
                  pooled_projections=torch.randn(1, 64), timestep=torch.tensor([300.0]), return_dict=False)
    with torch.inference_mode():
        assert torch.allclose(model.unet(**kwargs)[0], reference(**kwargs)[0], atol=1e-5)


def test_weight_dtype_fp8_stores_a_bf16_sd3_file_in_fp8(sd3_env, tiny_sd3):
    import torch

    from diffusion.sd3_model import load_diffusion_model

    default = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd35_large"])
    fp8 = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd35_large"], "fp8_e4m3fn")
    assert default.unet.context_embedder.weight.dtype == torch.bfloat16
    assert fp8.unet.context_embedder.weight.dtype == torch.float8_e4m3fn


# -- σ ---------------------------------------------------------------------------------------------

def test_sd3_samples_on_comfyuis_discrete_flow_table_with_shift_3(sd3_env, tiny_sd3):
    from diffusion.sampling import ksampler_steps, model_sigmas
    from diffusion.sd3_model import load_diffusion_model

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd3_medium"])
    table = model_sigmas(model)
    shift = 3.0

    def comfy_sigma(t):  # ModelSamplingDiscreteFlow.sigma: time_snr_shift(shift, t / 1000)
        t = t / 1000
        return shift * t / (1 + (shift - 1) * t)

    assert float(table.sigmas[-1]) == 1.0 and float(table.sigmas[0]) == pytest.approx(comfy_sigma(1), rel=1e-6)
    assert table.timestep(0.5) == pytest.approx(500.0)
    simple = ksampler_steps("euler", "simple", 4, table=table)
    assert simple == pytest.approx([comfy_sigma(1000 - 250 * i) for i in range(4)] + [0.0], rel=1e-6)


def test_model_sampling_sd3_node_sets_the_shift_of_a_copy(sd3_env, tiny_sd3):
    from diffusion.sd3_model import load_diffusion_model
    from nodes.flux import ModelSamplingSD3

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd3_medium"])
    shifted = ModelSamplingSD3.fn(model, 6.0)
    assert shifted.sampling.shift == 6.0 and model.sampling.shift == 3.0
    assert float(shifted.sigma_table().sigma(500.0)) == pytest.approx(6 * 0.5 / (1 + 5 * 0.5))


# -- sampling ----------------------------------------------------------------------------------------

def _cond(width: int = 64, tokens: int = 6, seed: int = 0):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, width, generator=g), {"pooled_output": torch.randn(1, 64, generator=g)}]]


def _sample(model, positive, negative=None, *, cfg=1.0, shape=(1, 16, 4, 4), seed=1, steps=2):
    import torch

    from diffusion.sampling import sample

    return sample(model, seed=seed, steps=steps, cfg=cfg, sampler_name="euler", scheduler="simple",
                  positive=positive, negative=negative or positive, latent={"samples": torch.zeros(shape)})["samples"]


def test_odd_latent_sizes_are_padded_to_the_patch_grid_and_cropped_back(sd3_env, tiny_sd3):
    from diffusion.sd3_model import load_diffusion_model

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd3_medium"])
    out = _sample(model, _cond(), shape=(1, 16, 5, 7))
    assert tuple(out.shape) == (1, 16, 5, 7) and float(out.std()) > 0


def test_text_features_zero_padded_past_the_context_width_give_the_same_image(sd3_env, tiny_sd3):
    """ComfyUI pads CLIP-only SD3 features to 4096 columns; zero columns change nothing."""
    import torch

    from diffusion.sd3_model import load_diffusion_model

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd3_medium"])
    cond = _cond()
    padded = [[torch.nn.functional.pad(cond[0][0], (0, 4096 - 64)), cond[0][1]]]
    assert torch.equal(_sample(model, cond), _sample(model, padded))


def test_text_features_of_another_width_are_refused_with_the_loader_to_use(sd3_env, tiny_sd3):
    from diffusion.errors import SamplingError
    from diffusion.sd3_model import load_diffusion_model

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd3_medium"])
    with pytest.raises(SamplingError, match="96-wide text features.*SD3 model takes 64.*TripleCLIPLoader"):
        _sample(model, _cond(width=96))


def test_a_negative_limited_to_the_first_steps_changes_only_what_it_covers(sd3_env, tiny_sd3):
    """The shipped SD3.5 workflow's negative: the prompt for the first 10% of the steps, zeros after."""
    import torch

    from diffusion.composition import with_values
    from diffusion.sd3_model import load_diffusion_model

    model = load_diffusion_model(sd3_env.models, tiny_sd3.files["sd35_large"])
    positive, negative = _cond(seed=1), _cond(seed=2)
    zero = [[torch.zeros_like(negative[0][0]), {"pooled_output": torch.zeros(1, 64)}]]
    ranged = (with_values(negative, start_percent=0.0, end_percent=0.1)
              + with_values(zero, start_percent=0.1, end_percent=1.0))
    plain_zero = _sample(model, positive, zero, cfg=4.5, steps=4)
    assert not torch.equal(_sample(model, positive, ranged, cfg=4.5, steps=4), plain_zero)
    late_only = (with_values(negative, start_percent=0.9, end_percent=0.95)
                 + with_values(zero, start_percent=0.0, end_percent=1.0))
    assert torch.equal(_sample(model, positive, late_only, cfg=4.5, steps=1), _sample(model, positive, zero, cfg=4.5, steps=1))


# -- parity with diffusers' StableDiffusion3Pipeline --------------------------------------------------

def _separate_files(env, tiny_sd3, variant):
    from diffusion.flux_vae import load_16_channel_vae
    from diffusion.latent_formats import SD3
    from diffusion.sd3_model import load_diffusion_model
    from diffusion.sd3_text import load_triple_clip

    files = tiny_sd3.files
    return (load_diffusion_model(env.models, files[variant]),
            load_triple_clip(env.models, [files["t5"], files["clip_g"], files["clip_l"]]),
            load_16_channel_vae(env.models, files["vae"], SD3))


def _loom_image(parts, *, seed=42, steps=4, cfg=4.5, size=64, scheduler="simple"):
    import torch

    from diffusion.sampling import ksampler_steps, model_sigmas, sample
    from diffusion.text_encoding import encode
    from diffusion.vae import decode

    model, clip, vae = parts
    positive, negative = encode(clip, PROMPT), encode(clip, "")
    latent = {"samples": torch.zeros(1, 16, size // 8, size // 8)}
    out = sample(model, seed=seed, steps=steps, cfg=cfg, sampler_name="euler", scheduler=scheduler,
                 positive=positive, negative=negative, latent=latent)
    return decode(vae, out["samples"]), ksampler_steps("euler", scheduler, steps, table=model_sigmas(model))


@pytest.mark.parametrize("variant", ["sd3_medium", "sd35_large", "sd35_medium"])
def test_txt2img_matches_diffusers_sd3_pipeline_on_the_same_sigmas(sd3_env, tiny_sd3, variant):
    import numpy as np
    import torch

    from diffusion.noise import prepare_noise
    from tests.fixtures.tiny_sd3 import reference_pipeline

    size, steps, seed, cfg = 64, 4, 42, 4.5
    image, sigmas = _loom_image(_separate_files(sd3_env, tiny_sd3, variant), seed=seed, steps=steps, cfg=cfg)
    assert sigmas[0] == 1.0  # the run starts from pure noise: the pipeline's latents are the noise
    pipe = reference_pipeline(tiny_sd3, variant)
    noise = prepare_noise(torch.zeros(1, 16, size // 8, size // 8), seed)
    with torch.inference_mode():
        ref = pipe(PROMPT, negative_prompt="", height=size, width=size, num_inference_steps=steps,
                   sigmas=sigmas[:-1], guidance_scale=cfg, latents=noise, max_sequence_length=77,
                   output_type="np").images
    diff = float(np.abs(image.numpy() - ref).max())
    assert image.shape == (1, size, size, 3) and float(image.std()) > 0.01
    print(f"{variant}: max pixel difference vs StableDiffusion3Pipeline {diff:.2e}")
    assert diff <= 2 / 255, diff


def test_same_seed_same_image_other_seed_other_image(sd3_env, tiny_sd3):
    import torch

    parts = _separate_files(sd3_env, tiny_sd3, "sd3_medium")
    a, _ = _loom_image(parts, seed=7, steps=2, size=32)
    b, _ = _loom_image(parts, seed=7, steps=2, size=32)
    c, _ = _loom_image(parts, seed=8, steps=2, size=32)
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- all-in-one checkpoints -------------------------------------------------------------------------

def test_an_all_in_one_checkpoint_gives_the_image_of_the_separate_files(sd3_env, tiny_sd3):
    import torch

    from diffusion.sd3_checkpoint import is_sd3_checkpoint, load_sd3_checkpoint

    assert is_sd3_checkpoint(tiny_sd3.files["checkpoint"])
    model, clip, vae = load_sd3_checkpoint(sd3_env.models, tiny_sd3.files["checkpoint"])
    assert (model.family, model.variant, clip.family) == ("sd3", "sd35_large", "sd3")
    assert [e.kind for e in clip.encoders] == ["clip_l", "clip_g", "t5"]
    separate, _ = _loom_image(_separate_files(sd3_env, tiny_sd3, "sd35_large"), steps=2, size=32)
    together, _ = _loom_image((model, clip, vae), steps=2, size=32)
    assert torch.equal(separate, together)


def test_a_checkpoint_without_t5_encodes_with_clip_l_and_g_only(sd3_env, tiny_sd3):
    from diffusion.sd3_checkpoint import load_sd3_checkpoint
    from diffusion.text_encoding import encode

    _, clip, _ = load_sd3_checkpoint(sd3_env.models, tiny_sd3.files["checkpoint_no_t5"])
    assert [e.kind for e in clip.encoders] == ["clip_l", "clip_g"]
    [[features, meta]] = encode(clip, PROMPT)
    assert tuple(features.shape) == (1, 77, 4096) and tuple(meta["pooled_output"].shape) == (1, 64)


def test_a_checkpoint_without_text_encoders_says_which_loader_to_use_when_its_clip_is_used(sd3_env, tiny_sd3):
    from diffusion.errors import PromptError
    from diffusion.sd3_checkpoint import load_sd3_checkpoint
    from diffusion.text_encoding import encode

    model, clip, _ = load_sd3_checkpoint(sd3_env.models, tiny_sd3.files["checkpoint_bare"])
    assert model.family == "sd3" and clip.encoders == ()
    with pytest.raises(PromptError, match="TripleCLIPLoader"):
        encode(clip, PROMPT)


def test_a_checkpoint_without_its_vae_is_refused_naming_the_loaders(tmp_path, tiny_sd3, manager):
    from safetensors.torch import save_file

    from diffusion.errors import ModelLoadError
    from diffusion.sd3_checkpoint import load_sd3_checkpoint
    from tests.fixtures.tiny_sd3 import mmdit_file_state

    path = tmp_path / "sd3_no_vae.safetensors"
    save_file(mmdit_file_state(tiny_sd3.modules["sd3_medium"], prefix="model.diffusion_model."), str(path))
    with pytest.raises(ModelLoadError, match="without its VAE.*UNETLoader.*Load VAE"):
        load_sd3_checkpoint(manager, path)


def test_a_transformer_only_file_in_load_checkpoint_names_the_loaders_to_use(sd3_env, tiny_sd3):
    from diffusion.errors import ModelLoadError
    from diffusion.sd3_checkpoint import is_sd3_checkpoint, load_sd3_checkpoint

    path = tiny_sd3.files["sd35_medium"]
    assert is_sd3_checkpoint(path)
    with pytest.raises(ModelLoadError, match="sd35_medium.safetensors holds an SD3 transformer without its VAE"):
        load_sd3_checkpoint(sd3_env.models, path)


# -- through the engine, with ComfyUI's node names ---------------------------------------------------

def test_checkpoint_loader_triple_clip_loader_and_ksampler_make_an_sd35_image(sd3_env):
    from tests.diffusion.conftest import png_pixels, run_graph, saved_images

    graph = {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd3.5_large.safetensors"}},
        "2": {"class_type": "TripleCLIPLoader", "inputs": {"clip_name1": "clip_l.safetensors",
                                                           "clip_name2": "clip_g.safetensors",
                                                           "clip_name3": "t5xxl_fp16.safetensors"}},
        "3": {"class_type": "CLIPTextEncodeSD3", "inputs": {"clip": ["2", 0], "clip_l": "a cat", "clip_g": "a cat",
                                                            "t5xxl": "a cat sitting", "empty_padding": "none"}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["2", 0], "text": ""}},
        "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 48, "height": 32, "batch_size": 1}},
        "6": {"class_type": "ModelSamplingSD3", "inputs": {"model": ["1", 0], "shift": 3.0}},
        "7": {"class_type": "KSampler", "inputs": {
            "seed": 5, "steps": 2, "cfg": 4.5, "sampler_name": "dpmpp_2m", "scheduler": "sgm_uniform", "denoise": 1.0,
            "model": ["6", 0], "positive": ["3", 0], "negative": ["4", 0], "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["7", 0], "vae": ["1", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "sd3", "images": ["8", 0]}},
    }
    outcome = run_graph(sd3_env, graph)
    assert outcome.status == "success", outcome.error
    [path] = saved_images(sd3_env, outcome)
    pixels = png_pixels(path)
    assert pixels.shape == (32, 48, 3) and float(pixels.std()) > 0.01
