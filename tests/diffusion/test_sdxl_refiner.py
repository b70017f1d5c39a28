"""SDXL refiner checkpoints: detected and loaded from the original single-file layout,
conditioned as ComfyUI conditions them (pooled bigG + height, width, crop, aesthetic
score), equal to diffusers' refiner img2img pipeline on the same weights, chained after
an SDXL base with two KSamplerAdvanced nodes, and refusing the other model's prompts
with a message that says so."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from diffusion.errors import SamplingError
from tests.diffusion.conftest import install, png_pixels, run_graph, saved_images

TOLERANCE = 2 / 255   # as the SDXL parity test
POSITIVE = "a photograph of an astronaut riding a horse"
NEGATIVE = "blurry, low quality"
SEED, STEPS, DENOISE = 42, 2, 0.5   # ComfyUI: 2 steps of a 4-step schedule = diffusers' strength 0.5 of 4


@pytest.fixture(scope="module")
def refiner(tiny):
    return tiny("sdxl_refiner")


@pytest.fixture(scope="module")
def refiner_models(refiner, manager):
    return manager.load_checkpoint(refiner.checkpoint)


def _source_image(env, name="photo.png"):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 64, 64, generator=g), 5, 1, 2)[0]
    pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(pixels).save(env.folders.input / name)
    return name


def _img2img_prompt(ckpt, image, positive, negative):
    """A refiner img2img graph; ``positive``/``negative`` are (class_type, extra inputs)."""
    def encode(kind, text):
        class_type, extra = kind
        return {"class_type": class_type, "inputs": {"text": text, "clip": ["4", 1], **extra}}

    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": encode(positive, POSITIVE),
        "7": encode(negative, NEGATIVE),
        "10": {"class_type": "LoadImage", "inputs": {"image": image}},
        "11": {"class_type": "VAEEncode", "inputs": {"pixels": ["10", 0], "vae": ["4", 2]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": SEED, "steps": STEPS, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal",
            "denoise": DENOISE, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["11", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "refined", "images": ["8", 0]}},
    }


def _diffusers_refiner(model_dir, image_path, **options):
    """diffusers' refiner img2img on the same weights, seed and schedule."""
    from diffusers import StableDiffusionXLImg2ImgPipeline
    from PIL import Image

    from tests.diffusion.reference_schedulers import plan

    pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(model_dir, local_files_only=True)
    assert pipe.text_encoder is None and pipe.config.requires_aesthetics_score
    pipe.scheduler = plan("euler", "normal").scheduler
    pipe.set_progress_bar_config(disable=True)
    pixels = torch.from_numpy(np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32) / 255)
    with torch.no_grad():  # the latent as ComfyUI's VAEEncode makes it: the mean, scaled
        latent = pipe.vae.encode(pixels.permute(2, 0, 1)[None] * 2 - 1).latent_dist.mode()
    latent = latent * pipe.vae.config.scaling_factor
    result = pipe(POSITIVE, negative_prompt=NEGATIVE, image=latent, strength=DENOISE,
                  num_inference_steps=int(STEPS / DENOISE), guidance_scale=7.0,
                  generator=torch.Generator().manual_seed(SEED), output_type="np", **options)
    return result.images[0]


# -- detection and loading ------------------------------------------------------------------


def test_refiner_checkpoint_is_detected_as_sdxl_refiner_with_bigg_as_its_only_text_encoder(refiner):
    from diffusion.loading import WeightSource, read_architecture

    arch = read_architecture(WeightSource(refiner.checkpoint))
    assert (arch.family, arch.refiner, arch.name) == ("sdxl", True, "SDXL refiner")
    assert [(s.prefix, s.kind, s.with_projection) for s in arch.text_encoders] == [
        ("conditioner.embedders.0.model.", "openclip", True)]


def test_refiner_unet_loads_with_the_files_structure_and_weights(refiner, refiner_models):
    from diffusers import UNet2DConditionModel

    model, _, _ = refiner_models
    built = UNet2DConditionModel.from_pretrained(refiner.diffusers_dir, subfolder="unet", local_files_only=True)
    ours, theirs = model.unet.state_dict(), built.state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    assert model.unet.config.addition_time_embed_dim == 8
    assert model.unet.config.projection_class_embeddings_input_dim == 64 + 5 * 8


def test_refiner_clip_is_bigg_alone_and_its_vae_uses_the_sdxl_latent_space(refiner_models):
    model, clip, vae = refiner_models
    assert [(e.kind, type(e.model).__name__) for e in clip.encoders] == [("openclip", "CLIPTextModelWithProjection")]
    assert model.family == clip.family == "sdxl"
    assert vae.scale_factor == pytest.approx(0.13025) and model.latent_format.scale_factor == pytest.approx(0.13025)


def test_refiner_file_without_its_text_projection_is_a_clear_error():
    from diffusion.detect import detect_architecture
    from diffusion.errors import ModelLoadError

    shapes = {"model.diffusion_model.input_blocks.0.0.weight": (32, 4, 3, 3),
              "model.diffusion_model.label_emb.0.0.weight": (8, 104),
              "first_stage_model.decoder.conv_in.weight": (64, 4, 3, 3),
              "conditioner.embedders.0.model.token_embedding.weight": (49408, 64)}
    with pytest.raises(ModelLoadError, match="refiner's pooled-text projection"):
        detect_architecture(shapes, filename="broken_refiner.safetensors")


# -- conditioning ------------------------------------------------------------------------------


def test_refiner_encode_node_has_comfyuis_inputs_and_defaults():
    from engine.object_info import object_info_for
    from engine.registry import Registry
    from nodes.conditioning import CLIPTextEncodeSDXLRefiner

    registry = Registry()
    registry.add(CLIPTextEncodeSDXLRefiner, "nodes")
    info = object_info_for(registry, "CLIPTextEncodeSDXLRefiner")["CLIPTextEncodeSDXLRefiner"]
    required = info["input"]["required"]
    assert list(required) == ["ascore", "width", "height", "text", "clip"]
    assert required["ascore"] == ["FLOAT", {"default": 6.0, "min": 0.0, "max": 1000.0, "step": 0.01}]
    assert required["width"][0] == required["height"][0] == "INT"
    assert required["width"][1]["default"] == required["height"][1]["default"] == 1024
    assert required["text"][0] == "STRING" and required["text"][1]["multiline"] is True
    assert required["clip"] == ["CLIP"]
    assert info["category"] == "advanced/conditioning" and info["output"] == ["CONDITIONING"]


def _refiner_encode(env, clip, text, ascore, width=1024, height=1024):
    from nodes.conditioning import CLIPTextEncodeSDXLRefiner

    ctx = SimpleNamespace(env=env)
    return CLIPTextEncodeSDXLRefiner.fn(ctx, ascore=ascore, width=width, height=height, text=text, clip=clip)


def test_refiner_encode_node_stores_the_aesthetic_score_and_size_with_the_pooled_text(env, refiner_models):
    _, clip, _ = refiner_models
    [[cond, meta]] = _refiner_encode(env, clip, POSITIVE, 6.0, width=1024, height=768)
    assert cond.shape == (1, 77, 64)
    assert meta["pooled_output"].shape == (1, 64)
    assert (meta["aesthetic_score"], meta["width"], meta["height"]) == (6.0, 1024, 768)


def _time_ids(model, positive, negative=None, size=(8, 8)):
    from diffusion.cond_rows import resolve_rows

    rows = resolve_rows(model, positive, negative or [], negative is not None, size, "cpu", torch.float32)
    return [row.added["time_ids"][0].tolist() for row in rows]


def test_refiner_adm_numbers_are_height_width_crop_and_aesthetic_score_in_comfyuis_order(env, refiner_models):
    model, clip, _ = refiner_models
    positive = _refiner_encode(env, clip, POSITIVE, 7.5, width=1024, height=768)
    assert _time_ids(model, positive) == [[768.0, 1024.0, 0.0, 0.0, 7.5]]


def test_plain_prompts_give_the_refiner_the_latent_size_and_comfyuis_default_aesthetic_scores(refiner_models):
    from diffusion.text_encoding import encode

    model, clip, _ = refiner_models
    ids = _time_ids(model, encode(clip, POSITIVE), encode(clip, NEGATIVE), size=(12, 8))
    assert ids == [[96.0, 64.0, 0.0, 0.0, 6.0], [96.0, 64.0, 0.0, 0.0, 2.5]]


def test_aesthetic_score_changes_the_refiners_prediction(env, refiner_models):
    from diffusion.cond_rows import resolve_rows

    model, clip, _ = refiner_models
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    predictions = []
    for ascore in (6.0, 2.5):
        [row] = resolve_rows(model, _refiner_encode(env, clip, POSITIVE, ascore), [], False, (8, 8), "cpu",
                             torch.float32)
        assert row.added["time_ids"][0, -1] == ascore
        with torch.inference_mode():
            predictions.append(model.unet(x, torch.tensor([500.0]), encoder_hidden_states=row.context,
                                          added_cond_kwargs=row.added).sample)
    assert not torch.allclose(predictions[0], predictions[1])


# -- parity with diffusers ---------------------------------------------------------------------


def test_refiner_img2img_with_plain_prompts_matches_diffusers_refiner_pipeline(env, refiner):
    image = _source_image(env)
    plain = ("CLIPTextEncode", {})
    outcome = run_graph(env, _img2img_prompt(install(env, refiner), image, plain, plain))
    assert outcome.status == "success", outcome.error
    ours = png_pixels(saved_images(env, outcome)[0])
    # diffusers' defaults are ComfyUI's: size of the image, crop (0, 0), ascore 6 / 2.5
    theirs = _diffusers_refiner(refiner.diffusers_dir, env.folders.input / image)
    assert ours.shape == theirs.shape == (64, 64, 3)
    assert np.abs(ours - theirs).max() <= TOLERANCE


def test_refiner_img2img_with_refiner_prompt_nodes_matches_diffusers_with_the_same_scores(env, refiner):
    image = _source_image(env)
    positive = ("CLIPTextEncodeSDXLRefiner", {"ascore": 7.5, "width": 1024, "height": 768})
    negative = ("CLIPTextEncodeSDXLRefiner", {"ascore": 1.5, "width": 1024, "height": 768})
    outcome = run_graph(env, _img2img_prompt(install(env, refiner), image, positive, negative))
    assert outcome.status == "success", outcome.error
    ours = png_pixels(saved_images(env, outcome)[0])
    theirs = _diffusers_refiner(refiner.diffusers_dir, env.folders.input / image, original_size=(768, 1024),
                                aesthetic_score=7.5, negative_aesthetic_score=1.5)
    assert np.abs(ours - theirs).max() <= TOLERANCE


# -- base → refiner --------------------------------------------------------------------------


def _base_then_refiner(base_ckpt, refiner_ckpt, *, base_clip="1", refiner_clip="2"):
    """ComfyUI's SDXL base + refiner graph: the base samples steps 0..3 of 5 and returns its
    leftover noise; the refiner continues from step 3 without adding noise."""
    def advanced(model, positive, negative, latent, start, end, leftover):
        return {"class_type": "KSamplerAdvanced", "inputs": {
            "model": model, "add_noise": "enable" if start == 0 else "disable", "noise_seed": SEED, "steps": 5,
            "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", "positive": positive,
            "negative": negative, "latent_image": latent, "start_at_step": start, "end_at_step": end,
            "return_with_leftover_noise": leftover}}

    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": base_ckpt}},
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": refiner_ckpt}},
        "3": {"class_type": "CLIPTextEncodeSDXL", "inputs": {
            "clip": [base_clip, 1], "width": 1024, "height": 1024, "crop_w": 0, "crop_h": 0, "target_width": 1024,
            "target_height": 1024, "text_g": POSITIVE, "text_l": POSITIVE}},
        "4": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": [base_clip, 1]}},
        "5": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {
            "ascore": 6.0, "width": 1024, "height": 1024, "text": POSITIVE, "clip": [refiner_clip, 1]}},
        "6": {"class_type": "CLIPTextEncodeSDXLRefiner", "inputs": {
            "ascore": 2.5, "width": 1024, "height": 1024, "text": NEGATIVE, "clip": [refiner_clip, 1]}},
        "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "10": advanced(["1", 0], ["3", 0], ["4", 0], ["7", 0], 0, 3, "enable"),
        "11": advanced(["2", 0], ["5", 0], ["6", 0], ["10", 0], 3, 10000, "disable"),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["2", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "base_refiner", "images": ["8", 0]}},
    }


def test_base_then_refiner_with_two_advanced_samplers_makes_a_finite_image(tiny, env, refiner):
    prompt = _base_then_refiner(install(env, tiny("sdxl")), install(env, refiner))
    outcome = run_graph(env, prompt)
    assert outcome.status == "success", outcome.error
    pixels = png_pixels(saved_images(env, outcome)[0])
    assert pixels.shape == (64, 64, 3) and np.isfinite(pixels).all()
    assert pixels.std() > 0


# -- the wrong model's prompt ------------------------------------------------------------------


def test_base_prompts_fed_to_the_refiner_are_a_clear_error(tiny, env, refiner):
    prompt = _base_then_refiner(install(env, tiny("sdxl")), install(env, refiner), refiner_clip="1")
    outcome = run_graph(env, prompt)
    assert outcome.status == "error"
    message = outcome.error.message()["data"]["exception_message"]
    assert "96 wide but this SDXL refiner model expects 64" in message
    assert "CLIP of the same checkpoint" in message


def test_refiner_prompts_fed_to_the_base_are_a_clear_error(tiny, env, refiner):
    prompt = _base_then_refiner(install(env, tiny("sdxl")), install(env, refiner), base_clip="2")
    outcome = run_graph(env, prompt)
    assert outcome.status == "error"
    message = outcome.error.message()["data"]["exception_message"]
    assert "64 wide but this SDXL base model expects 96" in message


def test_full_size_widths_name_the_model_the_conditioning_came_from(refiner_models):
    from diffusion.cond_rows import _width_mismatch
    from diffusion.sdxl_adm import AdmLayout

    model, _, _ = refiner_models
    error = _width_mismatch(model, AdmLayout(False, 1280, 6), 1280, 2048)
    assert "1280 wide (as from an SDXL refiner's OpenCLIP bigG) but this SDXL base model expects 2048" in str(error)


def test_a_pooled_embedding_of_the_wrong_width_is_a_clear_error_naming_the_refiners_adm(refiner_models):
    from diffusion.cond_rows import resolve_rows

    model, _, _ = refiner_models
    cond = [[torch.zeros(1, 77, 64), {"pooled_output": torch.zeros(1, 32)}]]
    with pytest.raises(SamplingError, match=r"pooled text embedding is 32 wide but this SDXL refiner model "
                                            r"expects 64 .*size/aesthetic-score"):
        resolve_rows(model, cond, [], False, (8, 8), "cpu", torch.float32)
