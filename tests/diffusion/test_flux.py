"""FLUX.1 through Loom: files in BFL/ComfyUI layouts, detection, fp8 storage, ComfyUI's flow σ,
and parity with diffusers' FluxPipeline on the same tiny weights and σ."""

from __future__ import annotations

import math
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "a photograph of an astronaut riding a horse"


def _shapes(state):
    return {k: tuple(v.shape) for k, v in state.items()}


# -- files and detection ----------------------------------------------------------------------

def test_bfl_layout_converts_back_to_diffusers_bit_identically(tiny_flux):
    import torch

    from diffusion.flux_files import bfl_to_diffusers, flux_architecture
    from tests.fixtures.tiny_flux import bfl_file_state

    model = tiny_flux.modules["dev"]
    state = bfl_file_state(model, prefix="model.diffusion_model.")  # as ComfyUI saves full checkpoints
    arch = flux_architecture(_shapes(state))
    back = bfl_to_diffusers(dict(state), arch)
    expected = {k: v.bfloat16() for k, v in model.state_dict().items()}
    assert set(back) == set(expected)
    assert all(torch.equal(back[k], expected[k]) for k in expected)


def test_key_table_agrees_with_diffusers_converter_on_a_full_size_layout():
    """diffusers' converter only handles the 3072-wide model: compare names and shapes there
    (meta tensors, one block of each kind)."""
    import torch
    from diffusers.loaders.single_file_utils import convert_flux_transformer_checkpoint_to_diffusers

    from diffusion.flux_files import bfl_to_diffusers, flux_architecture
    from tests.fixtures.tiny_flux import diffusers_to_bfl

    with torch.device("meta"):
        from diffusers import FluxTransformer2DModel

        full = FluxTransformer2DModel(num_layers=1, num_single_layers=1, guidance_embeds=True)
    bfl = diffusers_to_bfl(full.state_dict(), 1, 1)
    ours = bfl_to_diffusers(dict(bfl), flux_architecture(_shapes(bfl)))
    theirs = convert_flux_transformer_checkpoint_to_diffusers(dict(bfl))
    assert _shapes(ours) == _shapes(theirs) == _shapes(full.state_dict())


@pytest.mark.parametrize("role, variant, guidance", [("dev", "dev", True), ("schnell", "schnell", False)])
def test_detection_names_the_variant_from_the_header(tiny_flux, role, variant, guidance):
    from diffusion.flux_files import flux_architecture
    from diffusion.weights_file import SafetensorsFile

    arch = flux_architecture(SafetensorsFile(tiny_flux.files[role]).shapes())
    assert (arch.variant, arch.guidance_embed, arch.layout) == (variant, guidance, "bfl")
    assert arch.config["num_attention_heads"] == 2 and arch.config["axes_dims_rope"] == (4, 14, 14)


def test_fill_is_told_apart_by_its_input_width():
    from diffusion.flux_files import flux_architecture
    from tests.fixtures.tiny_flux import bfl_file_state, tiny_transformer

    state = bfl_file_state(tiny_transformer(in_channels=384))
    arch = flux_architecture(_shapes(state))
    assert arch.variant == "fill" and arch.name == "FLUX.1 Fill"


@pytest.mark.parametrize("role, what", [("t5", "T5 text encoder"), ("vae", "VAE"), ("clip_l", "CLIP text encoder")])
def test_a_wrong_file_in_the_diffusion_model_loader_names_loader_and_file(flux_env, tiny_flux, role, what):
    from diffusion.errors import ModelLoadError
    from diffusion.flux_model import load_flux_model

    with pytest.raises(ModelLoadError) as info:
        load_flux_model(flux_env.models, tiny_flux.files[role])
    message = str(info.value)
    assert "UNETLoader" in message and tiny_flux.files[role].name in message and what in message


def test_an_sd_checkpoint_in_the_diffusion_model_loader_is_named(flux_env, tiny):
    from diffusion.errors import ModelLoadError
    from diffusion.flux_model import load_flux_model

    with pytest.raises(ModelLoadError, match="Stable Diffusion 1.x/2.x checkpoint"):
        load_flux_model(flux_env.models, tiny("sd1").checkpoint)


def test_dual_clip_loader_wants_one_clip_l_and_one_t5(flux_env, tiny_flux):
    from diffusion.errors import ModelLoadError
    from diffusion.flux_text import load_dual_clip

    files = tiny_flux.files
    with pytest.raises(ModelLoadError, match="both files are t5"):
        load_dual_clip(flux_env.models, [files["t5"], files["t5"]], "flux")
    with pytest.raises(ModelLoadError, match="flux_dev|FLUX.1 dev transformer, not a text encoder"):
        load_dual_clip(flux_env.models, [files["dev"], files["t5"]], "flux")
    clip = load_dual_clip(flux_env.models, [files["t5"], files["clip_l"]], "flux")
    assert clip.family == "flux" and [e.kind for e in clip.encoders] == ["clip_l", "t5"]


# -- memory: fp8 stays fp8 -------------------------------------------------------------------------

def test_fp8_weights_stay_fp8_in_memory_and_compute_in_float32(flux_env, tiny_flux):
    import torch

    from diffusion.flux_model import load_flux_model
    from diffusion.flux_sampling import image_ids

    model = load_flux_model(flux_env.models, tiny_flux.files["dev_fp8"])
    linears = [m for m in model.unet.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.float8_e4m3fn for m in linears)
    others = [p for n, p in model.unet.named_parameters() if not any(p is m.weight for m in linears)]
    assert others and all(p.dtype == torch.float32 for p in others)
    reference = tiny_flux.modules["dev_fp8"]
    torch.manual_seed(0)
    x, ctx, pooled = torch.randn(1, 16, 64), torch.randn(1, 8, 32), torch.randn(1, 32)
    kwargs = dict(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=pooled,
                  timestep=torch.tensor([0.7]), guidance=torch.tensor([3.5]), img_ids=image_ids(4, 4),
                  txt_ids=torch.zeros(8, 3), return_dict=False)
    with torch.inference_mode():
        assert torch.allclose(model.unet(**kwargs)[0], reference(**kwargs)[0], atol=1e-5)


def test_weight_dtype_fp8_stores_a_bf16_file_in_fp8(flux_env, tiny_flux):
    import torch

    from diffusion.flux_model import load_flux_model

    default = load_flux_model(flux_env.models, tiny_flux.files["dev"])
    fp8 = load_flux_model(flux_env.models, tiny_flux.files["dev"], "fp8_e4m3fn")
    assert default.unet.x_embedder.weight.dtype == torch.bfloat16
    assert fp8.unet.x_embedder.weight.dtype == torch.float8_e4m3fn and fp8.unet is not default.unet


# -- tokenizer and σ ----------------------------------------------------------------------------

def test_t5_tokenizer_ships_with_loom_and_gives_t5s_ids():
    from diffusion.t5_tokenizer import t5_ids, word_ids

    assert word_ids("a photo of a cat") == [3, 9, 1202, 13, 3, 9, 1712]
    ids = t5_ids("a photo of a cat")
    assert len(ids) == 256 and ids[7] == 1 and set(ids[8:]) == {0}


def _comfy_flux_sigma(shift, t):  # ComfyUI's flux_time_shift(shift, 1.0, t), written out
    return math.exp(shift) / (math.exp(shift) + (1 / t - 1))


def test_flux_sigma_table_and_schedules_follow_comfyui():
    from diffusion.flux_model import FlowSampling
    from diffusion.sigma_schedules import comfy_sigmas

    table = FlowSampling("flux", 1.15).table()
    assert len(table.sigmas) == 10000 and float(table.sigmas[-1]) == 1.0
    assert float(table.sigmas[0]) == pytest.approx(_comfy_flux_sigma(1.15, 1 / 10000), rel=1e-6)
    simple = comfy_sigmas("simple", 4, table)
    expected = [_comfy_flux_sigma(1.15, (10000 - int(i * 2500)) / 10000) for i in range(4)] + [0.0]
    assert simple == pytest.approx(expected, rel=1e-6)
    normal = comfy_sigmas("normal", 4, table)  # linspace over timesteps == σ for Flux
    t_min = float(table.sigmas[0])
    ts = [1.0 + (t_min - 1.0) * i / 3 for i in range(4)]
    assert normal == pytest.approx([_comfy_flux_sigma(1.15, t) for t in ts] + [0.0], rel=1e-5)
    schnell = FlowSampling("discrete_flow", 1.0, 1.0).table()
    assert comfy_sigmas("simple", 4, schnell) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def test_model_sampling_flux_shift_is_linear_in_patches():
    from diffusion.flux_model import flux_shift

    assert flux_shift(1.15, 0.5, 1024, 1024) == pytest.approx(1.15)
    assert flux_shift(1.15, 0.5, 256, 256) == pytest.approx(0.5)


# -- sampling: parity with diffusers' FluxPipeline ---------------------------------------------------

def _loom_image(env, tiny_flux, role: str, *, seed: int, steps: int, size: int, guidance: float | None,
                scheduler: str = "simple"):
    from diffusion.flux_model import load_flux_model
    from diffusion.flux_text import load_dual_clip
    from diffusion.flux_vae import load_16_channel_vae
    from diffusion.sampling import ksampler_steps, model_sigmas, sample
    from diffusion.text_encoding import encode
    from diffusion.vae import decode

    manager = env.models
    model = load_flux_model(manager, tiny_flux.files[role])
    clip = load_dual_clip(manager, [tiny_flux.files["clip_l"], tiny_flux.files["t5"]], "flux")
    cond = encode(clip, PROMPT, extra=None if guidance is None else {"guidance": guidance})
    latent = {"samples": __import__("torch").zeros(1, 16, size // 8, size // 8)}
    out = sample(model, seed=seed, steps=steps, cfg=1.0, sampler_name="euler", scheduler=scheduler,
                 positive=cond, negative=cond, latent=latent)
    vae = load_16_channel_vae(manager, tiny_flux.files["vae"])
    sigmas = ksampler_steps("euler", scheduler, steps, table=model_sigmas(model))
    return decode(vae, out["samples"]), sigmas


@pytest.mark.parametrize("role, guidance", [("dev", 3.5), ("schnell", None)])
def test_txt2img_matches_diffusers_flux_pipeline_on_the_same_sigmas(flux_env, tiny_flux, role, guidance):
    import numpy as np
    import torch

    from diffusion.flux_sampling import pack
    from diffusion.noise import prepare_noise
    from tests.fixtures.tiny_flux import reference_pipeline

    size, steps, seed = 64, 4, 42
    image, sigmas = _loom_image(flux_env, tiny_flux, role, seed=seed, steps=steps, size=size, guidance=guidance)
    pipe = reference_pipeline(tiny_flux, role)
    noise = prepare_noise(torch.zeros(1, 16, size // 8, size // 8), seed)
    assert sigmas[0] == 1.0  # the run starts from pure noise: the pipeline's latents are the noise
    with torch.inference_mode():
        ref = pipe(PROMPT, height=size, width=size, num_inference_steps=steps, sigmas=sigmas[:-1],
                   guidance_scale=guidance or 0.0, latents=pack(noise), max_sequence_length=256,
                   output_type="np").images
    diff = float(np.abs(image.numpy() - ref).max())
    assert image.shape == (1, size, size, 3) and float(image.std()) > 0.01
    print(f"{role}: max pixel difference vs FluxPipeline {diff:.2e}")
    assert diff <= 2 / 255, diff


def test_same_seed_same_image_other_seed_other_image(flux_env, tiny_flux):
    import torch

    a, _ = _loom_image(flux_env, tiny_flux, "schnell", seed=7, steps=2, size=32, guidance=None)
    b, _ = _loom_image(flux_env, tiny_flux, "schnell", seed=7, steps=2, size=32, guidance=None)
    c, _ = _loom_image(flux_env, tiny_flux, "schnell", seed=8, steps=2, size=32, guidance=None)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_guidance_changes_a_dev_image(flux_env, tiny_flux):
    import torch

    low, _ = _loom_image(flux_env, tiny_flux, "dev", seed=3, steps=2, size=32, guidance=1.0)
    high, _ = _loom_image(flux_env, tiny_flux, "dev", seed=3, steps=2, size=32, guidance=6.0)
    assert not torch.equal(low, high)


def test_euler_ancestral_takes_comfyuis_rectified_flow_step():
    """One step on a toy denoiser against ComfyUI's sample_euler_ancestral_RF written out."""
    import torch

    from diffusion.flux_sampling import EulerAncestralRF

    x, x0, n = torch.full((1, 2), 0.8), torch.full((1, 2), 0.3), torch.full((1, 2), -1.5)
    s, s_next = 0.9, 0.6
    out, denoised = EulerAncestralRF()(lambda x_, sig: x0, x, s, s_next, lambda a, b: n)
    sigma_down = s_next * (s_next / s)
    renoise = (s_next ** 2 - sigma_down ** 2 * (1 - s_next) ** 2 / (1 - sigma_down) ** 2) ** 0.5
    r = sigma_down / s
    expected = (1 - s_next) / (1 - sigma_down) * (r * 0.8 + (1 - r) * 0.3) + renoise * -1.5
    assert torch.allclose(out, torch.full((1, 2), expected)) and torch.equal(denoised, x0)


def test_euler_ancestral_and_lcm_run_on_flux_and_follow_the_seed(flux_env, tiny_flux):
    import torch

    from diffusion.flux_model import load_flux_model
    from diffusion.sampling import sample

    model = load_flux_model(flux_env.models, tiny_flux.files["schnell"])
    cond = [[torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(0)), {"pooled_output": torch.ones(1, 32)}]]
    latent = {"samples": torch.zeros(1, 16, 4, 4)}

    def run(name, seed):
        return sample(model, seed=seed, steps=3, cfg=1.0, sampler_name=name, scheduler="simple", positive=cond,
                      negative=cond, latent=latent)["samples"]

    euler = run("euler", 1)
    for name in ("euler_ancestral", "lcm"):
        a = run(name, 1)
        assert torch.equal(a, run(name, 1)) and not torch.equal(a, run(name, 2)) and not torch.equal(a, euler)


def test_ancestral_samplers_are_refused_for_flux_with_the_alternatives(flux_env, tiny_flux):
    import torch

    from diffusion.errors import SamplingError
    from diffusion.flux_model import load_flux_model
    from diffusion.sampling import sample

    model = load_flux_model(flux_env.models, tiny_flux.files["schnell"])
    cond = [[torch.zeros(1, 4, 32), {"pooled_output": torch.zeros(1, 32)}]]
    with pytest.raises(SamplingError, match="dpmpp_2m_sde.*choose one of euler"):
        sample(model, seed=0, steps=2, cfg=1.0, sampler_name="dpmpp_2m_sde", scheduler="simple",
               positive=cond, negative=cond, latent={"samples": torch.zeros(1, 16, 4, 4)})


# -- FLUX.1 Fill ------------------------------------------------------------------------------------

def _fill_inputs(size: int):
    """A uint8-exact picture and a rectangular mask (1 = repaint), as IMAGE/MASK tensors and PIL."""
    import numpy as np
    import torch
    from PIL import Image

    g = np.random.default_rng(0)
    pixels = (g.random((size // 8, size // 8, 3)) * 255).astype(np.uint8).repeat(8, 0).repeat(8, 1)
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[16:48, 8:40] = 255
    image = torch.from_numpy(pixels).float()[None] / 255
    return image, torch.from_numpy(mask).float()[None] / 255, Image.fromarray(pixels), Image.fromarray(mask)


def test_flux_fill_matches_diffusers_fill_pipeline(flux_env, tiny_flux, monkeypatch):
    """Fill as InpaintModelConditioning + KSampler feed it (masked pixels grey, encoded, the
    pixel mask) against diffusers' FluxFillPipeline; diffusers draws a sample of the VAE's
    posterior where ComfyUI takes its mean, so the reference is made to take the mean too."""
    import numpy as np
    import torch
    from diffusers import FluxFillPipeline
    from diffusers.pipelines.flux import pipeline_flux_fill

    from diffusion.flux_model import load_flux_model
    from diffusion.flux_sampling import pack
    from diffusion.flux_text import load_dual_clip
    from diffusion.flux_vae import load_16_channel_vae
    from diffusion.noise import prepare_noise
    from diffusion.sampling import ksampler_steps, model_sigmas, sample
    from diffusion.text_encoding import encode
    from diffusion.vae import decode, encode as vae_encode
    from tests.fixtures.tiny_flux import reference_pipeline

    size, steps, seed, guidance = 64, 3, 11, 30.0
    image, mask, pil_image, pil_mask = _fill_inputs(size)
    manager = flux_env.models
    model = load_flux_model(manager, tiny_flux.files["fill"])
    assert model.variant == "fill"
    vae = load_16_channel_vae(manager, tiny_flux.files["vae"])
    clip = load_dual_clip(manager, [tiny_flux.files["clip_l"], tiny_flux.files["t5"]], "flux")
    grey = image.clone()
    grey[mask > 0.5] = 0.5  # InpaintModelConditioning: the masked pixels greyed out
    extra = {"guidance": guidance, "concat_latent_image": vae_encode(vae, grey), "concat_mask": mask[:, None]}
    cond = encode(clip, PROMPT, extra=extra)
    latent = {"samples": vae_encode(vae, image)}
    out = sample(model, seed=seed, steps=steps, cfg=1.0, sampler_name="euler", scheduler="simple",
                 positive=cond, negative=cond, latent=latent)
    ours = decode(vae, out["samples"])

    sigmas = ksampler_steps("euler", "simple", steps, table=model_sigmas(model))
    real = pipeline_flux_fill.retrieve_latents
    monkeypatch.setattr(pipeline_flux_fill, "retrieve_latents",
                        lambda output, generator=None, sample_mode="sample": real(output, generator, "argmax"))
    pipe = reference_pipeline(tiny_flux, "fill", cls=FluxFillPipeline)
    noise = prepare_noise(torch.zeros(1, 16, size // 8, size // 8), seed)
    with torch.inference_mode():
        ref = pipe(PROMPT, image=pil_image, mask_image=pil_mask, height=size, width=size, num_inference_steps=steps,
                   sigmas=sigmas[:-1], guidance_scale=guidance, latents=pack(noise), max_sequence_length=256,
                   output_type="np").images
    diff = float(np.abs(ours.numpy() - ref).max())
    print(f"fill: max pixel difference vs FluxFillPipeline {diff:.2e}")
    assert diff <= 2 / 255, diff


def test_fill_needs_its_mask_and_a_noise_mask_keeps_the_rest(flux_env, tiny_flux):
    """The Fill model's output depends on the mask it is given; with a latent noise mask the
    unmasked part of the latent comes back exactly as it went in."""
    import torch

    from diffusion.flux_model import load_flux_model
    from diffusion.sampling import sample

    model = load_flux_model(flux_env.models, tiny_flux.files["fill"])
    image = torch.randn(1, 16, 8, 8, generator=torch.Generator().manual_seed(2))
    full = torch.ones(1, 1, 64, 64)
    part = torch.zeros(1, 1, 64, 64)
    part[..., 16:48, 16:48] = 1

    def run(concat_mask, noise_mask=None):
        meta = {"pooled_output": torch.ones(1, 32), "concat_latent_image": image, "concat_mask": concat_mask}
        cond = [[torch.randn(1, 8, 32, generator=torch.Generator().manual_seed(0)), meta]]
        latent = {"samples": image} if noise_mask is None else {"samples": image, "noise_mask": noise_mask}
        return sample(model, seed=3, steps=2, cfg=1.0, sampler_name="euler", scheduler="simple", positive=cond,
                      negative=cond, latent=latent)["samples"]

    assert not torch.equal(run(full), run(part))
    kept = run(part, noise_mask=part)
    outside = torch.ones(8, 8, dtype=torch.bool)
    outside[2:6, 2:6] = False
    assert torch.allclose(kept[..., outside], image[..., outside], atol=1e-6)
    assert not torch.allclose(kept[..., ~outside], image[..., ~outside])


def test_t5xxl_fp8_file_keeps_fp8_weights_and_encodes_as_its_rounded_weights(flux_env, tiny_flux, tmp_path):
    import torch
    from safetensors.torch import save_file

    from diffusion.flux_text import encode_t5, load_text_encoder_file
    from diffusion.t5_tokenizer import t5_ids
    from tests.fixtures.tiny_flux import linear_weight_names, round_to, t5_file_state, tiny_t5

    reference = round_to(tiny_t5(), torch.bfloat16, torch.float8_e4m3fn)
    linear = linear_weight_names(reference)
    state = {k: (v.to(torch.float8_e4m3fn) if k in linear else v) for k, v in t5_file_state(reference).items()}
    path = tmp_path / "t5xxl_fp8_e4m3fn.safetensors"
    save_file(state, str(path))
    kind, enc = load_text_encoder_file(flux_env.models, path, "DualCLIPLoader")
    assert kind == "t5"
    assert all(m.weight.dtype == torch.float8_e4m3fn for m in enc.model.modules() if isinstance(m, torch.nn.Linear))
    assert enc.model.shared.weight.dtype == torch.float32
    with torch.inference_mode():
        expected = reference(input_ids=torch.tensor([t5_ids(PROMPT)])).last_hidden_state
    assert torch.allclose(encode_t5(enc, flux_env.models, PROMPT), expected, atol=1e-5)
