"""CLIP ranking: scores are the cosine similarity transformers' CLIPModel gives; the node
sorts the batch best first, keeps the top k and reports the scores.  A single-file
model needs no config beside it: its CLIPConfig follows from the tensor shapes."""

from __future__ import annotations

import pytest
import torch

from diffusion.clip_ranking import clip_config_from_shapes, load_clip_scorer, preprocess, rank, score
from diffusion.errors import ModelLoadError
from nodes.clip_ranking import CLIPRankImages
from tests.capabilities.conftest import install
from tests.fixtures.tiny_extras import TINY_CLIP, save, tiny_clip

#: The tiny CLIP as its shapes describe it: towers of unknown width get 64-wide heads (1 head
#: at 32 wide) and gelu.  (The shared fixture's 2 heads at 32 wide is not in its shapes.)
DERIVABLE_TINY_CLIP = {
    **TINY_CLIP,
    "text_config": {**TINY_CLIP["text_config"], "num_attention_heads": 1, "hidden_act": "gelu"},
    "vision_config": {**TINY_CLIP["vision_config"], "num_attention_heads": 1, "hidden_act": "gelu"},
}

#: Released CLIPs (the transformers configs of openai/clip-vit-* and laion/CLIP-ViT-*):
#: (text width, mlp, layers, heads), (vision width, mlp, layers, heads, patch, image), projection, activation.
RELEASED_CLIPS = {
    "openai ViT-B/32": ((512, 2048, 12, 8), (768, 3072, 12, 12, 32, 224), 512, "quick_gelu"),
    "openai ViT-L/14": ((768, 3072, 12, 12), (1024, 4096, 24, 16, 14, 224), 768, "quick_gelu"),
    "openai ViT-L/14-336": ((768, 3072, 12, 12), (1024, 4096, 24, 16, 14, 336), 768, "quick_gelu"),
    "laion ViT-H/14": ((1024, 4096, 24, 16), (1280, 5120, 32, 16, 14, 224), 1024, "gelu"),
    "laion ViT-g/14": ((1024, 4096, 24, 16), (1408, 6144, 40, 16, 14, 224), 1024, "gelu"),
    "laion ViT-bigG/14": ((1280, 5120, 32, 20), (1664, 8192, 48, 16, 14, 224), 1280, "gelu"),
}


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def images(n=4, seed=0):
    return torch.rand(n, 40, 48, 3, generator=torch.Generator().manual_seed(seed))


def reference_scores(model, batch, prompt):
    from diffusion.tokenizer import clip_tokenizer

    tokens = clip_tokenizer()(prompt, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(input_ids=tokens.input_ids, attention_mask=tokens.attention_mask,
                    pixel_values=preprocess(batch, 32))
    return out.logits_per_image[:, 0] / model.logit_scale.exp()


def test_scores_are_clip_cosine_similarities(clip_files):
    folder, _, model = clip_files
    batch = images()
    assert torch.allclose(score(load_clip_scorer(folder), batch, "a red cube"),
                          reference_scores(model, batch, "a red cube"), atol=1e-5)


def test_single_file_with_its_json_config_scores_like_the_folder(clip_files):
    folder, single, _ = clip_files
    batch = images()
    assert torch.allclose(score(load_clip_scorer(single), batch, "x"), score(load_clip_scorer(folder), batch, "x"),
                          atol=1e-6)


def test_rank_sorts_best_first_and_keeps_top_k(clip_files):
    scorer = load_clip_scorer(clip_files[0])
    batch = images(5)
    scores = score(scorer, batch, "a cat")
    ranked, kept = rank(scorer, batch, "a cat", keep_top_k=3)
    best = scores.argsort(descending=True)[:3]
    assert torch.equal(ranked, batch[best]) and kept == pytest.approx(scores[best].tolist())
    assert kept == sorted(kept, reverse=True)


def test_preprocess_centre_crops_to_the_model_size():
    out = preprocess(torch.ones(2, 30, 90, 3), 16)
    assert out.shape == (2, 3, 16, 16)
    assert torch.allclose(out[:, 0], torch.full((2, 16, 16), (1 - 0.48145466) / 0.26862954), atol=1e-4)


def test_node_outputs_sorted_images_scores_and_text(ctx, env, clip_files):
    name = install(env, "clip_vision", clip_files[0])
    batch = images(3)
    ranked, scores, text = CLIPRankImages.fn(ctx, images=batch, clip_name=name, prompt="a dog", keep_top_k=0)
    assert ranked.shape == batch.shape and len(scores) == 3
    assert text == ", ".join(f"{s:.4f}" for s in scores)


def test_node_reads_the_model_once_across_runs(ctx, env, clip_files, monkeypatch):
    import diffusion.clip_ranking

    loads = []
    monkeypatch.setattr(diffusion.clip_ranking, "load_clip_scorer",
                        lambda path: loads.append(path) or load_clip_scorer(path))
    name = install(env, "clip_vision", clip_files[0])
    first = CLIPRankImages.fn(ctx, images=images(2), clip_name=name, prompt="a dog", keep_top_k=0)
    again = CLIPRankImages.fn(ctx, images=images(2), clip_name=name, prompt="a dog", keep_top_k=0)
    assert first[1] == again[1] and len(loads) == 1
    assert [(m.source, m.component) for m in env.models.loaded_models()] == [(name, "clip_scorer")]


def test_node_lists_folders_and_single_files(env, clip_files):
    install(env, "clip_vision", clip_files[0])
    install(env, "clip_vision", clip_files[1])
    choices = {spec.name: spec for spec in CLIPRankImages.schema(env).inputs}["clip_name"]
    assert {"tiny_clip", "tiny_clip_single.safetensors"} <= set(getattr(choices, "choices", None) or
                                                                 choices.extra.get("choices", ()))


@pytest.fixture(scope="module")
def derivable_clip(tmp_path_factory):
    """A tiny CLIPModel (whose config its shapes give) saved as one file with its json and one without."""
    import json

    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(5)
    model = CLIPModel(CLIPConfig(**DERIVABLE_TINY_CLIP)).eval()
    folder = tmp_path_factory.mktemp("derivable_clip")
    with_json = save(model.state_dict(), folder / "with_json.safetensors")
    (folder / "with_json.json").write_text(json.dumps(DERIVABLE_TINY_CLIP))
    return with_json, save(model.state_dict(), folder / "without_json.safetensors")


def test_single_file_without_a_config_scores_like_with_its_json(derivable_clip):
    with_json, without_json = derivable_clip
    batch = images()
    assert torch.equal(score(load_clip_scorer(without_json), batch, "a red cube"),
                       score(load_clip_scorer(with_json), batch, "a red cube"))


def test_a_json_beside_the_file_overrides_what_the_shapes_say(clip_files, tmp_path):
    _, single, _ = clip_files
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes(single.read_bytes())
    assert load_clip_scorer(single).model.config.text_config.num_attention_heads == 2  # its json
    assert load_clip_scorer(lonely).model.config.text_config.num_attention_heads == 1  # its shapes


def _released_shapes(config_kwargs):
    from transformers import CLIPConfig, CLIPModel

    with torch.device("meta"):
        model = CLIPModel(CLIPConfig(**config_kwargs))
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", RELEASED_CLIPS)
def test_released_clip_configs_follow_from_their_shapes(name):
    (t_width, t_mlp, t_layers, t_heads), (v_width, v_mlp, v_layers, v_heads, patch, image), proj, act = \
        RELEASED_CLIPS[name]
    text = dict(hidden_size=t_width, intermediate_size=t_mlp, num_hidden_layers=t_layers,
                num_attention_heads=t_heads, hidden_act=act, vocab_size=49408, max_position_embeddings=77)
    vision = dict(hidden_size=v_width, intermediate_size=v_mlp, num_hidden_layers=v_layers,
                  num_attention_heads=v_heads, hidden_act=act, patch_size=patch, image_size=image)
    derived = clip_config_from_shapes(
        _released_shapes(dict(text_config=text, vision_config=vision, projection_dim=proj)), name)
    assert {k: derived["text_config"][k] for k in text} == text
    assert {k: derived["vision_config"][k] for k in vision} == vision
    assert derived["projection_dim"] == proj


def test_a_clip_vision_tower_alone_is_a_clear_error(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    tower = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY_CLIP["vision_config"]))
    path = save(tower.state_dict(), tmp_path / "tower.safetensors")
    with pytest.raises(ModelLoadError, match=r"tower\.safetensors is a CLIP vision tower only.*text and vision"):
        load_clip_scorer(path)


def test_a_file_that_is_not_a_clip_model_is_a_clear_error(tmp_path):
    path = save({"weight": torch.zeros(2, 2)}, tmp_path / "other.safetensors")
    with pytest.raises(ModelLoadError, match=r"other\.safetensors is not a CLIP model"):
        load_clip_scorer(path)


def test_a_json_beside_the_file_that_is_not_a_clip_config_is_a_clear_error(clip_files, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(clip_files[1].read_bytes())
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match=r"broken\.json: not a CLIP config"):
        load_clip_scorer(broken)
