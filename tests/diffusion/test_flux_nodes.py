"""FLUX.1 graphs through the engine with ComfyUI's node names and inputs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images

LOADERS = {
    "1": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
    "2": {"class_type": "DualCLIPLoader", "inputs": {"clip_name1": "t5xxl_fp16.safetensors",
                                                     "clip_name2": "clip_l.safetensors", "type": "flux"}},
    "7": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
    "5": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 48, "height": 32, "batch_size": 1}},
}


def _save(samples, vae="7"):
    return {"8": {"class_type": "VAEDecode", "inputs": {"samples": samples, "vae": [vae, 0]}},
            "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "flux", "images": ["8", 0]}}}


def _ksampler_graph(text="a cat", guidance=3.5, encode="CLIPTextEncode", model=("1", 0), **ks):
    encoder = ({"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["2", 0]}} if encode == "CLIPTextEncode"
               else {"class_type": "CLIPTextEncodeFlux", "inputs": {"clip_l": text, "t5xxl": text,
                                                                    "guidance": guidance, "clip": ["2", 0]}})
    graph = {**LOADERS, "3": encoder,
             "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": guidance}},
             "6": {"class_type": "KSampler", "inputs": {
                 "seed": 5, "steps": 3, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0,
                 "model": list(model), "positive": ["4", 0], "negative": ["4", 0], "latent_image": ["5", 0], **ks}}}
    graph.update(_save(["6", 0]))
    return graph


def _image(env, graph):
    outcome = run_graph(env, graph)
    assert outcome.status == "success", outcome.error
    [path] = saved_images(env, outcome)
    return png_pixels(path)


def test_ksampler_and_sampler_custom_advanced_make_the_same_flux_image(flux_env):
    plain = _image(flux_env, _ksampler_graph())
    custom = {**LOADERS,
              "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["2", 0]}},
              "4": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["3", 0], "guidance": 3.5}},
              "10": {"class_type": "BasicGuider", "inputs": {"model": ["1", 0], "conditioning": ["4", 0]}},
              "11": {"class_type": "RandomNoise", "inputs": {"noise_seed": 5}},
              "12": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler"}},
              "13": {"class_type": "BasicScheduler", "inputs": {"model": ["1", 0], "scheduler": "simple",
                                                                "steps": 3, "denoise": 1.0}},
              "14": {"class_type": "SamplerCustomAdvanced", "inputs": {
                  "noise": ["11", 0], "guider": ["10", 0], "sampler": ["12", 0], "sigmas": ["13", 0],
                  "latent_image": ["5", 0]}},
              **_save(["14", 0])}
    assert plain.shape == (32, 48, 3)
    assert np.array_equal(plain, _image(flux_env, custom))


def test_clip_text_encode_flux_equals_clip_text_encode_plus_flux_guidance(flux_env):
    a = _image(flux_env, _ksampler_graph(guidance=5.0))
    b = _image(flux_env, _ksampler_graph(guidance=5.0, encode="CLIPTextEncodeFlux"))
    assert np.array_equal(a, b)


def test_model_sampling_flux_changes_the_sigmas_basic_scheduler_gives(flux_env):
    import torch

    from diffusion.flux_model import load_flux_model
    from nodes.custom_sampling import BasicScheduler
    from nodes.flux import ModelSamplingFlux

    model = load_flux_model(flux_env.models, flux_env.folders.model_path("diffusion_models", "flux1-dev.safetensors"))
    default = BasicScheduler.fn(model, "simple", 4, 1.0)
    shifted = ModelSamplingFlux.fn(model, 1.15, 0.5, 256, 256)  # 256 patches → base_shift 0.5
    sigmas = BasicScheduler.fn(shifted, "simple", 4, 1.0)
    assert model.sampling.shift == 1.15 and shifted.sampling.shift == pytest.approx(0.5)
    assert sigmas[0] == 1.0 and sigmas[-1] == 0.0 and not torch.allclose(default, sigmas)
    assert float(sigmas[1]) == pytest.approx(np.exp(0.5) / (np.exp(0.5) + 1 / 0.75 - 1), rel=1e-6)


def test_flux_model_sampling_nodes_refuse_an_sd_model(tiny, env):
    from diffusion.errors import SamplingError
    from diffusion.memory import ModelManager
    from nodes.flux import ModelSamplingFlux

    model, _, _ = ModelManager(device="cpu").load_checkpoint(tiny("sd1").checkpoint)
    with pytest.raises(SamplingError, match="ModelSamplingFlux is for flow-matching models"):
        ModelSamplingFlux.fn(model, 1.15, 0.5, 1024, 1024)


def test_sampler_custom_advanced_with_cfg_guider_matches_samplercustom_on_sd(tiny, env):
    ckpt = install(env, tiny("sd1"))
    base = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
            "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a house", "clip": ["4", 1]}},
            "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
            "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "12": {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}},
            "13": {"class_type": "BasicScheduler", "inputs": {"model": ["4", 0], "scheduler": "karras",
                                                              "steps": 3, "denoise": 1.0}}}
    custom = {**base, "3": {"class_type": "SamplerCustom", "inputs": {
        "model": ["4", 0], "add_noise": True, "noise_seed": 9, "cfg": 6.0, "positive": ["6", 0],
        "negative": ["7", 0], "sampler": ["12", 0], "sigmas": ["13", 0], "latent_image": ["5", 0]}},
        **_save(["3", 0], vae="4")}
    custom["8"]["inputs"]["vae"] = ["4", 2]
    advanced = {**base,
                "10": {"class_type": "CFGGuider", "inputs": {"model": ["4", 0], "positive": ["6", 0],
                                                             "negative": ["7", 0], "cfg": 6.0}},
                "11": {"class_type": "RandomNoise", "inputs": {"noise_seed": 9}},
                "3": {"class_type": "SamplerCustomAdvanced", "inputs": {
                    "noise": ["11", 0], "guider": ["10", 0], "sampler": ["12", 0], "sigmas": ["13", 0],
                    "latent_image": ["5", 0]}},
                **_save(["3", 0], vae="4")}
    advanced["8"]["inputs"]["vae"] = ["4", 2]
    assert np.array_equal(_image(env, custom), _image(env, advanced))


def test_empty_sd3_latent_is_16_channels_at_an_eighth(flux_env):
    from nodes.flux import EmptySD3LatentImage

    assert tuple(EmptySD3LatentImage.fn(1024, 768, 2)["samples"].shape) == (2, 16, 96, 128)


def test_an_sd_latent_into_a_flux_sampler_names_the_channel_counts(flux_env):
    graph = _ksampler_graph()
    graph["5"] = {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}}
    outcome = run_graph(flux_env, graph)
    assert outcome.status == "error" and "latent has 4 channels" in str(outcome.error) and "16" in str(outcome.error)


def test_t5_prompt_weights_change_the_features_as_comfyui_does(flux_env):
    import torch

    from diffusion.flux_text import encode_t5, load_dual_clip

    clip = load_dual_clip(flux_env.models, [flux_env.folders.model_path("text_encoders", "clip_l.safetensors"),
                                            flux_env.folders.model_path("text_encoders", "t5xxl_fp16.safetensors")],
                          "flux")
    t5 = clip.encoders[1]
    plain = encode_t5(t5, clip.manager, "a red cat")
    weighted = encode_t5(t5, clip.manager, "a (red:1.5) cat")
    empty = encode_t5(t5, clip.manager, "")
    assert plain.shape == weighted.shape == (1, 256, 32)
    # "red" is token 2 (▁a=3, a=9... ) — every token moves along (z - z_empty) by its weight
    w = torch.ones(256)
    w[2] = 1.5
    assert torch.allclose(weighted, (plain - empty) * w[None, :, None] + empty, atol=1e-5)


def test_an_all_in_one_flux_checkpoint_loads_with_load_checkpoint_and_matches_the_separate_files(flux_env, tiny_flux):
    from safetensors.torch import save_file

    from tests.fixtures.tiny_flux import all_in_one_state

    folder = flux_env.folders.models / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    save_file(all_in_one_state(tiny_flux), str(folder / "flux1-schnell-fp8.safetensors"))
    separate = _ksampler_graph()
    separate["1"]["inputs"]["unet_name"] = "flux1-schnell.safetensors"
    combined = {k: v for k, v in _ksampler_graph().items() if k not in ("1", "2", "7")}
    combined["1"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-schnell-fp8.safetensors"}}
    combined["3"]["inputs"]["clip"] = ["1", 1]
    combined["8"]["inputs"]["vae"] = ["1", 2]
    assert np.array_equal(_image(flux_env, separate), _image(flux_env, combined))


def test_a_flux_transformer_alone_in_load_checkpoint_says_which_loaders_to_use(flux_env, tiny_flux):
    import os

    folder = flux_env.folders.models / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(tiny_flux.files["dev"], folder / "flux1-dev.safetensors")
    graph = {"1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "flux1-dev.safetensors"}}}
    graph.update({"5": LOADERS["5"], **_save(["5", 0], vae="1")})
    graph["8"]["inputs"]["vae"] = ["1", 2]
    outcome = run_graph(flux_env, graph)
    assert outcome.status == "error"
    message = str(outcome.error)
    assert "flux1-dev.safetensors" in message and "UNETLoader" in message and "DualCLIPLoader" in message


def test_model_sampling_discrete_on_flux_points_to_the_flow_nodes(flux_env):
    from diffusion.errors import SamplingError
    from diffusion.flux_model import load_flux_model
    from nodes.model_sampling import ModelSamplingDiscrete

    model = load_flux_model(flux_env.models, flux_env.folders.model_path("diffusion_models", "flux1-dev.safetensors"))
    with pytest.raises(SamplingError, match="ModelSamplingFlux or ModelSamplingSD3"):
        ModelSamplingDiscrete.fn(model, "eps", False)
