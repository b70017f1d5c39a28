"""GLIGEN text boxes: the real file layout loads, the sampler's UNet call equals diffusers'
gated UNet on the same weights, boxes steer the result, bad files are clear errors."""

from __future__ import annotations

import os

import pytest
import torch

from diffusion.errors import ModelLoadError, SamplingError
from diffusion.gligen import apply_text_box, load_gligen
from diffusion.guidance import GuidedModel
from diffusion.text_encoding import encode
from tests.diffusion.conftest import install, run_graph, saved_images, txt2img_prompt


@pytest.fixture(scope="module")
def setup(manager, tiny, tmp_path_factory):
    from tests.fixtures.tiny_extras import tiny_gligen

    sd1 = tiny("sd1")
    path, gated = tiny_gligen(sd1.diffusers_dir, tmp_path_factory.mktemp("gligen"))
    model, clip, _ = manager.load_checkpoint(sd1.checkpoint)
    return dict(sd1=sd1, path=path, gated=gated, model=model, clip=clip, gligen=load_gligen(path, manager))


def _eps(setup, positive, x, t=500.0):
    guided = GuidedModel(setup["model"], positive, encode(setup["clip"], ""), 1.0, latent_shape=x.shape)
    return guided(x, t)


def _reference_phrase_embedding(sd1_dir, text):
    """diffusers' GLIGEN pipeline's phrase embedding: the text encoder's pooler_output."""
    from transformers import CLIPTextModel, CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(sd1_dir, subfolder="tokenizer", local_files_only=True)
    encoder = CLIPTextModel.from_pretrained(sd1_dir, subfolder="text_encoder", local_files_only=True).eval()
    with torch.no_grad():
        return encoder(**tokenizer([text], padding=True, return_tensors="pt")).pooler_output


def test_unet_step_with_a_text_box_equals_diffusers_gated_unet(setup):
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    cond = encode(setup["clip"], "a horse in a field")
    # a 64×64 image: the box x=16, y=8, 32 wide, 24 high is (2, 1, 4, 3) in latent pixels
    grounded = apply_text_box(cond, setup["clip"], setup["gligen"], "a cat", 32, 24, 16, 8)
    ours = _eps(setup, grounded, x)

    boxes, masks = torch.zeros(1, 30, 4), torch.zeros(1, 30)
    embeddings = torch.zeros(1, 30, 32)
    boxes[0, 0] = torch.tensor([2 / 8, 1 / 8, 6 / 8, 4 / 8])
    masks[0, 0] = 1
    embeddings[0, 0] = _reference_phrase_embedding(setup["sd1"].diffusers_dir, "a cat")[0]
    with torch.no_grad():
        theirs = setup["gated"](x, torch.tensor([500.0]), encoder_hidden_states=cond[0][0],
                                cross_attention_kwargs={"gligen": {"boxes": boxes, "positive_embeddings": embeddings,
                                                                   "masks": masks}}).sample
    plain = _eps(setup, cond, x)
    assert not torch.allclose(theirs, plain, atol=1e-3)  # the fusers matter at these weights
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_phrase_embedding_is_the_unprojected_pooled_clip_output(setup):
    from diffusion.gligen import phrase_embedding

    ours = phrase_embedding(setup["clip"], "a red car", 32)
    assert torch.allclose(ours, _reference_phrase_embedding(setup["sd1"].diffusers_dir, "a red car"), atol=1e-5)


def test_boxes_change_the_prediction_and_where_they_are_matters(setup):
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    cond = encode(setup["clip"], "a horse")
    left = apply_text_box(cond, setup["clip"], setup["gligen"], "a cat", 24, 24, 0, 0)
    right = apply_text_box(cond, setup["clip"], setup["gligen"], "a cat", 24, 24, 40, 40)
    plain, a, b = _eps(setup, cond, x), _eps(setup, left, x), _eps(setup, right, x)
    assert not torch.allclose(plain, a, atol=1e-3) and not torch.allclose(a, b, atol=1e-3)


def test_a_second_box_is_added_to_the_first(setup):
    cond = encode(setup["clip"], "a horse")
    one = apply_text_box(cond, setup["clip"], setup["gligen"], "a cat", 16, 16, 0, 0)
    two = apply_text_box(one, setup["clip"], setup["gligen"], "a dog", 16, 16, 32, 32)
    kind, model, params = two[0][1]["gligen"]
    assert kind == "position" and model is setup["gligen"]
    assert [p[1:] for p in params] == [(2, 2, 0, 0), (2, 2, 4, 4)]
    assert "gligen" not in cond[0][1]  # the input conditioning is left as it was


def test_the_negative_without_boxes_sees_the_plain_unet(setup):
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    cond, negative = encode(setup["clip"], "a horse"), encode(setup["clip"], "blurry")
    grounded = apply_text_box(cond, setup["clip"], setup["gligen"], "a cat", 32, 32, 0, 0)
    cfg = 4.0
    guided = GuidedModel(setup["model"], grounded, negative, cfg, latent_shape=x.shape)(x, 300.0)
    positive_only = GuidedModel(setup["model"], grounded, negative, 1.0, latent_shape=x.shape)(x, 300.0)
    uncond = GuidedModel(setup["model"], negative, negative, 1.0, latent_shape=x.shape)(x, 300.0)
    assert torch.allclose(guided, uncond + cfg * (positive_only - uncond), atol=1e-4)


def test_more_than_thirty_boxes_is_a_clear_error(setup):
    cond = encode(setup["clip"], "a horse")
    for i in range(31):
        cond = apply_text_box(cond, setup["clip"], setup["gligen"], "a cat", 8, 8, 0, 0)
    with pytest.raises(SamplingError, match="at most 30 boxes"):
        _eps(setup, cond, torch.zeros(1, 4, 8, 8))


def test_a_checkpoint_is_not_a_gligen_model(setup):
    with pytest.raises(ModelLoadError, match="is not a GLIGEN model"):
        load_gligen(setup["sd1"].checkpoint)


def test_a_gligen_file_with_a_missing_fuser_tensor_is_a_clear_error(setup, tmp_path):
    from safetensors.torch import load_file, save_file

    state = load_file(str(setup["path"]))
    state.pop(next(k for k in state if k.endswith("fuser.attn.to_q.weight")))
    save_file(state, str(tmp_path / "broken.safetensors"))
    with pytest.raises(ModelLoadError, match="missing.*to_q"):
        load_gligen(tmp_path / "broken.safetensors")


def test_gligen_nodes_run_in_a_graph(setup, env):
    folder = env.folders.models / "gligen"
    folder.mkdir(parents=True, exist_ok=True)
    os.symlink(setup["path"], folder / "tiny_gligen.safetensors")
    prompt = txt2img_prompt(install(env, setup["sd1"]), steps=2)
    prompt["20"] = {"class_type": "GLIGENLoader", "inputs": {"gligen_name": "tiny_gligen.safetensors"}}
    prompt["21"] = {"class_type": "GLIGENTextBoxApply", "inputs": {
        "conditioning_to": ["6", 0], "clip": ["4", 1], "gligen_textbox_model": ["20", 0], "text": "a cat",
        "width": 32, "height": 32, "x": 16, "y": 16}}
    prompt["3"]["inputs"]["positive"] = ["21", 0]
    outcome = run_graph(env, prompt)
    assert outcome.status == "success", outcome.error
    assert len(saved_images(env, outcome)) == 1


def test_the_loader_lists_models_gligen(env):
    from engine.object_info import object_info_for
    from engine.registry import Registry
    from nodes import builtin_nodes

    folder = env.folders.models / "gligen"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "gligen_sd14_textbox_pruned.safetensors").write_bytes(b"")
    registry = Registry(env=env)
    registry.add_all(builtin_nodes(), "nodes")
    choices = object_info_for(registry, "GLIGENLoader")["GLIGENLoader"]["input"]["required"]["gligen_name"][0]
    assert choices == ["gligen_sd14_textbox_pruned.safetensors"]
