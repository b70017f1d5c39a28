"""CLIPVisionLoader / CLIPVisionEncode: real clip_vision file layouts load into transformers'
CLIPVisionModelWithProjection, and images are encoded as CLIP expects (ComfyUI's recipe),
checked against transformers' own CLIPImageProcessor and model on the same tiny weights."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from diffusion.clip_vision import (ClipVisionOutput, encode_image, load_clip_vision, preprocess,
                                   vision_config_from_shapes, find_vision_layout)
from diffusion.errors import ModelLoadError
from tests.fixtures.tiny_models import tiny_clip_vision, vision_to_openclip


@pytest.fixture(scope="module")
def reference():
    """The tiny tower as transformers builds it (the weights every file below holds)."""
    return tiny_clip_vision(7)


@pytest.fixture(scope="module")
def files(reference, tmp_path_factory):
    """The same weights as a transformers-layout file and as an OpenCLIP ``visual.*`` file."""
    from safetensors.torch import save_file

    folder = tmp_path_factory.mktemp("clip_vision")
    sd = {k: v.contiguous() for k, v in reference.state_dict().items()}
    save_file(sd, str(folder / "hf_layout.safetensors"))
    save_file(vision_to_openclip(sd, "visual."), str(folder / "openclip_layout.safetensors"))
    return folder


def _installed(env, files, name: str) -> str:
    folder = env.folders.models / "clip_vision"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).symlink_to(files / name)
    return name


def _processor():
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil()


def _smooth_image(height: int, width: int, seed: int = 0):
    """A photo-like (smooth) uint8 PIL image and the same as an IMAGE tensor [1, H, W, 3]."""
    from PIL import Image

    small = np.random.default_rng(seed).random((12, 16, 3))
    pil = Image.fromarray((small * 255).astype(np.uint8)).resize((width, height), Image.BILINEAR)
    return pil, torch.from_numpy(np.asarray(pil).copy()).float()[None] / 255


def _reference_outputs(model, pixels):
    with torch.no_grad():
        return model(pixel_values=pixels, output_hidden_states=True)


# -- loading ----------------------------------------------------------------------------------


def test_loader_node_reads_a_transformers_layout_file_from_the_clip_vision_folder(env, files, reference):
    from nodes.clip_vision import CLIPVisionLoader

    name = _installed(env, files, "hf_layout.safetensors")
    vision = CLIPVisionLoader.fn(SimpleNamespace(env=env), name)
    ours, theirs = vision.model.state_dict(), reference.state_dict()
    assert set(ours) == set(theirs)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_openclip_visual_layout_loads_to_the_same_model(files, reference):
    vision = load_clip_vision(files / "openclip_layout.safetensors")
    ours, theirs = vision.model.state_dict(), reference.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_model_config_is_read_from_the_tensor_shapes(files, reference):
    config = load_clip_vision(files / "openclip_layout.safetensors").model.config
    for field in ("hidden_size", "intermediate_size", "num_hidden_layers", "image_size", "patch_size",
                  "projection_dim", "hidden_act", "num_attention_heads"):
        assert getattr(config, field) == getattr(reference.config, field), field


@pytest.mark.parametrize("hidden,layers,mlp,projection,heads,activation", [
    (1024, 24, 4096, 768, 16, "quick_gelu"),    # ViT-L/14 (OpenAI; SD1.5 IP-Adapter, sd21-unclip-l)
    (1280, 32, 5120, 1024, 16, "gelu"),         # ViT-H/14 (OpenCLIP; sd21-unclip-h)
    (1664, 48, 8192, 1280, 16, "gelu"),         # ViT-bigG/14 (OpenCLIP; SDXL Revision)
])
def test_released_towers_get_their_heads_and_activation(hidden, layers, mlp, projection, heads, activation):
    v = "vision_model."
    shapes = {v + "embeddings.patch_embedding.weight": (hidden, 3, 14, 14),
              v + "embeddings.position_embedding.weight": (257, hidden),
              v + "encoder.layers.0.mlp.fc1.weight": (mlp, hidden),
              "visual_projection.weight": (projection, hidden),
              **{v + f"encoder.layers.{i}.layer_norm1.weight": (hidden,) for i in range(layers)}}
    config = vision_config_from_shapes(shapes, find_vision_layout(shapes), "test")
    assert (config["num_attention_heads"], config["hidden_act"]) == (heads, activation)
    assert (config["num_hidden_layers"], config["intermediate_size"], config["projection_dim"]) == (layers, mlp,
                                                                                                    projection)
    assert (config["image_size"], config["patch_size"]) == (224, 14)


def test_a_file_without_a_vision_tower_is_a_clear_error(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "not_vision.safetensors"
    save_file({"decoder.conv_in.weight": torch.zeros(4, 4, 3, 3)}, str(path))
    with pytest.raises(ModelLoadError, match="not_vision.safetensors is not a CLIP vision model"):
        load_clip_vision(path)


def test_a_tower_without_its_projection_is_a_clear_error(tmp_path, reference):
    from safetensors.torch import save_file

    path = tmp_path / "no_projection.safetensors"
    save_file({k: v for k, v in reference.state_dict().items() if not k.startswith("visual_projection")},
              str(path))
    with pytest.raises(ModelLoadError, match="incomplete.*visual_projection"):
        load_clip_vision(path)


def test_the_model_manager_loads_a_file_once(env, files):
    first = load_clip_vision(files / "hf_layout.safetensors", env.models)
    again = load_clip_vision(files / "hf_layout.safetensors", env.models)
    assert again is first
    assert [m.component for m in env.models.loaded_models()] == ["clip_vision"]


# -- preprocessing ------------------------------------------------------------------------------


def test_preprocessing_a_224_image_equals_clip_image_processor():
    pil, image = _smooth_image(224, 224)
    theirs = _processor()(images=pil, return_tensors="pt").pixel_values
    assert torch.allclose(preprocess(image, 224), theirs, atol=1e-6)


def test_preprocessing_resizes_the_shortest_side_and_centre_crops_like_clip_image_processor():
    # ComfyUI resizes with torch's bicubic (a=-0.75), the processor with PIL's (a=-0.5):
    # the same crop, pixel values within a few levels.
    pil, image = _smooth_image(300, 400)
    ours = preprocess(image, 224)
    theirs = _processor()(images=pil, return_tensors="pt").pixel_values
    assert ours.shape == theirs.shape == (1, 3, 224, 224)
    difference = (ours - theirs).abs()
    assert difference.mean() < 0.05 and difference.max() < 0.3


def test_centre_crop_keeps_the_middle_and_none_squashes_the_whole_image():
    import torch.nn.functional as F

    _, image = _smooth_image(224, 448)
    mean = torch.tensor((0.48145466, 0.4578275, 0.40821073)).view(1, 3, 1, 1)
    std = torch.tensor((0.26862954, 0.26130258, 0.27577711)).view(1, 3, 1, 1)
    chw = image.movedim(-1, 1)
    middle = (chw[..., 112:336] - mean) / std
    squashed = F.interpolate(chw, size=(224, 224), mode="bicubic", antialias=True)
    squashed = (torch.clip(255 * squashed, 0, 255).round() / 255 - mean) / std
    assert torch.allclose(preprocess(image, 224, crop=True), middle, atol=1e-5)
    assert torch.allclose(preprocess(image, 224, crop=False), squashed, atol=1e-5)


def test_alpha_channel_is_ignored():
    _, image = _smooth_image(224, 224)
    rgba = torch.cat([image, torch.rand(1, 224, 224, 1)], dim=-1)
    assert torch.equal(preprocess(rgba, 224), preprocess(image, 224))


# -- encoding ------------------------------------------------------------------------------------


def test_encode_equals_transformers_model_on_clip_image_processor_pixels(files, reference):
    from nodes.clip_vision import CLIPVisionEncode

    pil, image = _smooth_image(224, 224, seed=3)
    vision = load_clip_vision(files / "openclip_layout.safetensors")
    ours = CLIPVisionEncode.fn(vision, image, "center")
    theirs = _reference_outputs(reference, _processor()(images=pil, return_tensors="pt").pixel_values)
    assert torch.allclose(ours.image_embeds, theirs.image_embeds, atol=1e-5)
    assert torch.allclose(ours.last_hidden_state, theirs.last_hidden_state, atol=1e-5)
    assert torch.allclose(ours.penultimate_hidden_states, theirs.hidden_states[-2], atol=1e-5)


def test_encoding_a_resized_image_gives_nearly_the_processor_embedding(files, reference):
    pil, image = _smooth_image(300, 400, seed=4)
    ours = encode_image(load_clip_vision(files / "hf_layout.safetensors"), image).image_embeds
    theirs = _reference_outputs(reference, _processor()(images=pil, return_tensors="pt").pixel_values).image_embeds
    assert torch.nn.functional.cosine_similarity(ours, theirs).item() > 0.99


def test_output_has_comfyui_fields_per_image_of_the_batch(files, reference):
    vision = load_clip_vision(files / "hf_layout.safetensors")
    images = torch.cat([_smooth_image(224, 224, seed=s)[1] for s in (1, 2)])
    out = encode_image(vision, images)
    tokens, hidden = (224 // 14) ** 2 + 1, reference.config.hidden_size
    assert isinstance(out, ClipVisionOutput)
    assert out.image_embeds.shape == (2, reference.config.projection_dim)
    assert out.last_hidden_state.shape == out.penultimate_hidden_states.shape == (2, tokens, hidden)
    assert not torch.allclose(out.image_embeds[0], out.image_embeds[1])
    assert out["image_embeds"] is out.image_embeds  # custom nodes index it like ComfyUI's Output


def test_penultimate_hidden_states_come_from_the_second_to_last_layer(files, reference):
    _, image = _smooth_image(224, 224, seed=5)
    out = encode_image(load_clip_vision(files / "hf_layout.safetensors"), image)
    theirs = _reference_outputs(reference, preprocess(image, 224))
    assert torch.allclose(out.penultimate_hidden_states, theirs.hidden_states[-2], atol=1e-6)
    assert not torch.allclose(out.penultimate_hidden_states, out.last_hidden_state)


def test_crop_none_changes_the_embedding_of_a_non_square_image(files):
    vision = load_clip_vision(files / "hf_layout.safetensors")
    _, image = _smooth_image(224, 448, seed=6)
    centre = encode_image(vision, image, crop=True).image_embeds
    squashed = encode_image(vision, image, crop=False).image_embeds
    assert not torch.allclose(centre, squashed, atol=1e-4)


def test_custom_nodes_can_call_encode_image_on_the_model(files):
    vision = load_clip_vision(files / "hf_layout.safetensors")
    _, image = _smooth_image(224, 224, seed=8)
    assert torch.equal(vision.encode_image(image)["image_embeds"], encode_image(vision, image).image_embeds)
