"""unCLIP (SD2.1 unCLIP): the checkpoint loads with its image input and CLIP vision tower,
unCLIPConditioning feeds the noise-augmented image embedding to the UNet as ComfyUI does,
and one denoising step equals diffusers' StableUnCLIPImg2ImgPipeline on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion.errors import ModelLoadError, SamplingError
from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images

TOLERANCE = 2 / 255
POSITIVE = "a photograph of an astronaut riding a horse"
NEGATIVE = "blurry, low quality"
SEED = 42


@pytest.fixture(scope="module")
def unclip_parts(tiny):
    """MODEL, CLIP, VAE, CLIP_VISION of the tiny unCLIP checkpoint (one manager for the module)."""
    from diffusion.memory import ModelManager
    from diffusion.unclip import load_unclip_checkpoint

    return load_unclip_checkpoint(tiny("sd21_unclip").checkpoint, ModelManager(device="cpu"))


def _picture(size: int = 224, seed: int = 0):
    """A smooth uint8 PIL picture and the same as an IMAGE [1, H, W, 3]."""
    from PIL import Image

    small = np.random.default_rng(seed).random((6, 6, 3))
    pil = Image.fromarray((small * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR)
    return pil, torch.from_numpy(np.asarray(pil).copy()).float()[None] / 255


def _input_image(env, name: str = "reference.png", seed: int = 0) -> str:
    pil, _ = _picture(seed=seed)
    env.folders.input.mkdir(parents=True, exist_ok=True)
    pil.save(env.folders.input / name)
    return name


def unclip_prompt(ckpt: str, image: str, *, strength=1.0, noise_augmentation=0.0, steps=1, cfg=7.0,
                  vision=("1", 3), model=("1", 0), clip=("1", 1), vae=("1", 2)) -> dict:
    """ComfyUI's unCLIP example graph (API format), 64×64."""
    return {
        "1": {"class_type": "unCLIPCheckpointLoader", "inputs": {"ckpt_name": ckpt}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": POSITIVE, "clip": list(clip)}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": list(clip)}},
        "4": {"class_type": "LoadImage", "inputs": {"image": image}},
        "5": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": list(vision), "image": ["4", 0],
                                                           "crop": "center"}},
        "6": {"class_type": "unCLIPConditioning", "inputs": {
            "conditioning": ["2", 0], "clip_vision_output": ["5", 0], "strength": strength,
            "noise_augmentation": noise_augmentation}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "8": {"class_type": "KSampler", "inputs": {
            "seed": SEED, "steps": steps, "cfg": cfg, "sampler_name": "euler", "scheduler": "simple",
            "denoise": 1.0, "model": list(model), "positive": ["6", 0], "negative": ["3", 0],
            "latent_image": ["7", 0]}},
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": list(vae)}},
        "10": {"class_type": "SaveImage", "inputs": {"filename_prefix": "unclip", "images": ["9", 0]}},
    }


def _sample(parts, *, strength=1.0, noise_augmentation=0.0, seed=SEED, steps=1):
    """One KSampler run on the tiny unCLIP model; the latent it returns."""
    from diffusion.clip_vision import encode_image
    from diffusion.sampling import sample
    from diffusion.text_encoding import encode
    from diffusion.unclip import apply_unclip

    model, clip, _, vision = parts
    positive = apply_unclip(encode(clip, POSITIVE), encode_image(vision, _picture()[1]), strength,
                            noise_augmentation)
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    return sample(model, seed=seed, steps=steps, cfg=7.0, sampler_name="euler", scheduler="simple",
                  positive=positive, negative=encode(clip, NEGATIVE), latent=latent)["samples"]


# -- loading -------------------------------------------------------------------------------------


def test_unclip_checkpoint_loads_its_image_input_and_clip_vision_tower(unclip_parts, tiny):
    from transformers import CLIPVisionModelWithProjection

    model, clip, vae, vision = unclip_parts
    assert (model.family, model.prediction_type) == ("sd2", "v_prediction")
    assert model.unet.config.class_embed_type == "projection"
    assert model.unet.config.projection_class_embeddings_input_dim == 2 * vision.model.config.projection_dim
    reference = CLIPVisionModelWithProjection.from_pretrained(
        tiny("sd21_unclip").diffusers_dir / "image_encoder", local_files_only=True)
    ours = vision.model.state_dict()
    assert all(torch.equal(ours[k], v) for k, v in reference.state_dict().items())


def test_plain_checkpoint_loader_keeps_the_unclip_image_input(tiny, manager):
    from diffusers import UNet2DConditionModel

    model, _, _ = manager.load_checkpoint(tiny("sd21_unclip").checkpoint)
    reference = UNet2DConditionModel.from_pretrained(tiny("sd21_unclip").diffusers_dir, subfolder="unet",
                                                     local_files_only=True)
    ours = model.unet.state_dict()
    assert torch.equal(ours["class_embedding.linear_1.weight"], reference.state_dict()["class_embedding.linear_1.weight"])


def test_unclip_loader_on_a_checkpoint_without_a_vision_tower_is_a_clear_error(tiny, manager):
    from diffusion.unclip import load_unclip_checkpoint

    with pytest.raises(ModelLoadError, match="tiny_sd1.safetensors is not an unCLIP checkpoint.*Load Checkpoint"):
        load_unclip_checkpoint(tiny("sd1").checkpoint, manager)


# -- the adm vector ----------------------------------------------------------------------------


@pytest.mark.parametrize("noise_level", [0, 300, 999])
def test_noise_augmentation_equals_diffusers_noise_image_embeddings(tiny, noise_level):
    from diffusers import StableUnCLIPImg2ImgPipeline

    from diffusion.clip_vision import ClipVisionOutput
    from diffusion.unclip import SEED_OFFSET, adm_vector

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(tiny("sd21_unclip").diffusers_dir, local_files_only=True)
    embeds = torch.randn(1, 32, generator=torch.Generator().manual_seed(3))
    output = ClipVisionOutput(embeds, None, None)
    ours = adm_vector(64, [{"clip_vision_output": output, "strength": 1.0,
                            "noise_augmentation": noise_level / 999}], SEED)
    theirs = pipe.noise_image_embeddings(embeds, noise_level,
                                         generator=torch.Generator().manual_seed(SEED - SEED_OFFSET))
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_strength_scales_the_whole_adm_vector():
    from diffusion.clip_vision import ClipVisionOutput
    from diffusion.unclip import adm_vector

    output = ClipVisionOutput(torch.randn(1, 32), None, None)
    one = adm_vector(64, [{"clip_vision_output": output, "strength": 1.0, "noise_augmentation": 0.3}], SEED)
    half = adm_vector(64, [{"clip_vision_output": output, "strength": 0.5, "noise_augmentation": 0.3}], SEED)
    assert torch.allclose(half, one * 0.5)


def test_augmentation_noise_follows_the_sampling_seed():
    from diffusion.clip_vision import ClipVisionOutput
    from diffusion.unclip import adm_vector

    image = [{"clip_vision_output": ClipVisionOutput(torch.randn(1, 32), None, None), "strength": 1.0,
              "noise_augmentation": 0.5}]
    assert torch.equal(adm_vector(64, image, 1), adm_vector(64, image, 1))
    assert not torch.allclose(adm_vector(64, image, 1), adm_vector(64, image, 2))


def test_two_images_are_summed_and_re_augmented():
    from diffusion.clip_vision import ClipVisionOutput
    from diffusion.unclip import adm_vector

    a = {"clip_vision_output": ClipVisionOutput(torch.randn(1, 32), None, None), "strength": 1.0,
         "noise_augmentation": 0.0}
    b = {**a, "clip_vision_output": ClipVisionOutput(torch.randn(1, 32), None, None)}
    both = adm_vector(64, [a, b], SEED)
    assert both.shape == (1, 64)
    assert not torch.allclose(both, adm_vector(64, [a], SEED))


def test_entries_without_an_image_give_the_unet_zeros(unclip_parts):
    from diffusion.text_encoding import encode
    from diffusion.unclip import class_labels_for

    model, clip, _, _ = unclip_parts
    labels = class_labels_for(model, encode(clip, NEGATIVE)[0][1], SEED)
    assert labels.shape == (1, model.unet.config.projection_class_embeddings_input_dim)
    assert not labels.any()


# -- conditioning and sampling ---------------------------------------------------------------


def test_unclip_conditioning_records_the_image_on_every_entry(unclip_parts):
    from diffusion.text_encoding import encode
    from nodes.unclip import unCLIPConditioning

    _, clip, _, vision = unclip_parts
    output = vision.encode_image(_picture()[1])
    conditioning = encode(clip, POSITIVE) * 2
    out = unCLIPConditioning.fn(conditioning, output, 0.8, 0.1)
    twice = unCLIPConditioning.fn(out, output, 1.0, 0.0)
    assert [e[1]["unclip_conditioning"] for e in out] == [
        [{"clip_vision_output": output, "strength": 0.8, "noise_augmentation": 0.1}]] * 2
    assert len(twice[0][1]["unclip_conditioning"]) == 2
    assert "unclip_conditioning" not in conditioning[0][1]  # the input is not changed


def test_strength_zero_leaves_the_conditioning_as_it_was(unclip_parts):
    from diffusion.text_encoding import encode
    from nodes.unclip import unCLIPConditioning

    _, clip, _, vision = unclip_parts
    conditioning = encode(clip, POSITIVE)
    out = unCLIPConditioning.fn(conditioning, vision.encode_image(_picture()[1]), 0.0, 0.5)
    assert "unclip_conditioning" not in out[0][1]


def test_strength_changes_the_result(unclip_parts):
    assert not torch.allclose(_sample(unclip_parts, strength=1.0), _sample(unclip_parts, strength=2.0), atol=1e-4)


def test_noise_augmentation_changes_the_result(unclip_parts):
    assert not torch.allclose(_sample(unclip_parts, noise_augmentation=0.0),
                              _sample(unclip_parts, noise_augmentation=0.5), atol=1e-4)


def test_the_same_seed_gives_the_same_latent(unclip_parts):
    assert torch.equal(_sample(unclip_parts, noise_augmentation=0.3), _sample(unclip_parts, noise_augmentation=0.3))


def _sample_custom(parts, *, noise_augmentation, seed, add_noise=True, steps=1):
    """SamplerCustom (euler on BasicScheduler "simple") on the tiny unCLIP model; its output latent."""
    from diffusion.clip_vision import encode_image
    from diffusion.custom_sampling import Sampler, sample_custom, scheduler_sigmas
    from diffusion.text_encoding import encode
    from diffusion.unclip import apply_unclip

    model, clip, _, vision = parts
    positive = apply_unclip(encode(clip, POSITIVE), encode_image(vision, _picture()[1]), 1.0, noise_augmentation)
    out, _ = sample_custom(model, Sampler("euler"), scheduler_sigmas(model, "simple", steps), seed=seed,
                           add_noise=add_noise, cfg=7.0, positive=positive, negative=encode(clip, NEGATIVE),
                           latent={"samples": torch.zeros(1, 4, 8, 8)})
    return out["samples"]


def test_sampler_custom_augments_the_image_with_its_noise_seed_like_the_ksampler(unclip_parts):
    expected = _sample(unclip_parts, noise_augmentation=0.5, seed=SEED)
    # euler runs through diffusers in the KSampler: equal up to float rounding
    assert torch.allclose(_sample_custom(unclip_parts, noise_augmentation=0.5, seed=SEED), expected, atol=1e-5)


def test_sampler_custom_noise_seeds_give_different_augmentations(unclip_parts):
    # no starting noise and a deterministic sampler: only the image's augmentation noise depends on the seed
    one, two = (_sample_custom(unclip_parts, noise_augmentation=0.5, seed=s, add_noise=False) for s in (1, 2))
    assert not torch.allclose(one, two, atol=1e-4)


def test_one_step_equals_stable_unclip_img2img_pipeline(tiny, env):
    from diffusers import StableUnCLIPImg2ImgPipeline

    from diffusion.noise import prepare_noise
    from tests.diffusion.reference_schedulers import plan
    from diffusion.unclip import SEED_OFFSET

    model = tiny("sd21_unclip")
    outcome = run_graph(env, unclip_prompt(install(env, model), _input_image(env)))
    assert outcome.status == "success", outcome.error
    ours = png_pixels(saved_images(env, outcome, "10")[0])

    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(model.diffusers_dir, local_files_only=True)
    pipe.scheduler = plan("euler", "simple", "v_prediction").scheduler  # one step from sigma max
    pipe.scheduler.set_timesteps(1)
    pipe.set_progress_bar_config(disable=True)
    # this pipeline scales only the latents it draws itself by init_noise_sigma
    latents = prepare_noise(torch.zeros(1, 4, 8, 8), SEED) * pipe.scheduler.init_noise_sigma
    theirs = pipe(image=_picture()[0], prompt=POSITIVE, negative_prompt=NEGATIVE, num_inference_steps=1,
                  guidance_scale=7.0, height=64, width=64, noise_level=0, latents=latents,
                  generator=torch.Generator().manual_seed(SEED - SEED_OFFSET), output_type="np").images[0]
    assert ours.shape == theirs.shape == (64, 64, 3)
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_standalone_clip_vision_loader_feeds_unclip_conditioning(tiny, env):
    """CLIPVisionLoader with a clip_vision file holding the checkpoint's own tower gives the same
    image as unCLIPCheckpointLoader's CLIP_VISION output."""
    from safetensors.torch import save_file
    from transformers import CLIPVisionModelWithProjection

    model = tiny("sd21_unclip")
    tower = CLIPVisionModelWithProjection.from_pretrained(model.diffusers_dir / "image_encoder",
                                                          local_files_only=True)
    (env.folders.models / "clip_vision").mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tower.state_dict().items()},
              str(env.folders.models / "clip_vision" / "tower.safetensors"))
    image = _input_image(env)
    ckpt = install(env, model)
    both = unclip_prompt(ckpt, image, noise_augmentation=0.2)
    both["11"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": "tower.safetensors"}}
    both["5"]["inputs"]["clip_vision"] = ["11", 0]
    standalone = run_graph(env, both)
    builtin = run_graph(env, unclip_prompt(ckpt, image, noise_augmentation=0.2))
    assert standalone.status == builtin.status == "success", standalone.error or builtin.error
    assert np.array_equal(png_pixels(saved_images(env, standalone, "10")[0]),
                          png_pixels(saved_images(env, builtin, "10")[0]))


def test_unclip_conditioning_on_a_model_without_an_image_input_is_a_clear_error(tiny, env):
    model = tiny("sd1")
    prompt = unclip_prompt(install(env, tiny("sd21_unclip")), _input_image(env))
    prompt["12"] = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": install(env, model)}}
    prompt["8"]["inputs"]["model"] = ["12", 0]
    for node in ("2", "3"):
        prompt[node]["inputs"]["clip"] = ["12", 1]
    prompt["9"]["inputs"]["vae"] = ["12", 2]
    outcome = run_graph(env, prompt)
    assert outcome.status == "error"
    data = outcome.error.message()["data"]
    assert data["node_type"] == "KSampler"
    assert "image-embedding (adm) input" in data["exception_message"]
    assert "unCLIP" in data["exception_message"]


def test_an_image_embedding_of_the_wrong_width_is_a_clear_error(unclip_parts):
    from diffusion.clip_vision import ClipVisionOutput
    from diffusion.unclip import class_labels_for

    model = unclip_parts[0]
    meta = {"unclip_conditioning": [{"clip_vision_output": ClipVisionOutput(torch.randn(1, 48), None, None),
                                     "strength": 1.0, "noise_augmentation": 0.0}]}
    with pytest.raises(SamplingError, match="48 wide but this unCLIP model takes 32"):
        class_labels_for(model, meta, SEED)


def test_unclip_conditioning_on_sdxl_says_revision_is_not_supported():
    from types import SimpleNamespace

    from diffusion.clip_vision import ClipVisionOutput
    from diffusion.unclip import class_labels_for

    sdxl = SimpleNamespace(family="sdxl", unet=SimpleNamespace(config={"class_embed_type": None}))
    meta = {"unclip_conditioning": [{"clip_vision_output": ClipVisionOutput(torch.randn(1, 64), None, None),
                                     "strength": 1.0, "noise_augmentation": 0.0}]}
    with pytest.raises(SamplingError, match="SDXL.*not supported"):
        class_labels_for(sdxl, meta, SEED)
