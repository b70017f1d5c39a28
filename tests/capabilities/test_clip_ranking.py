"""CLIP ranking: scores are the cosine similarity transformers' CLIPModel gives; the node
sorts the batch best first, keeps the top k and reports the scores."""

from __future__ import annotations

import pytest
import torch

from diffusion.clip_ranking import load_clip_scorer, preprocess, rank, score
from diffusion.errors import ModelLoadError
from nodes.clip_ranking import CLIPRankImages
from tests.capabilities.conftest import install
from tests.fixtures.tiny_extras import tiny_clip


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


def test_node_lists_folders_and_single_files(env, clip_files):
    install(env, "clip_vision", clip_files[0])
    install(env, "clip_vision", clip_files[1])
    choices = {spec.name: spec for spec in CLIPRankImages.schema(env).inputs}["clip_name"]
    assert {"tiny_clip", "tiny_clip_single.safetensors"} <= set(getattr(choices, "choices", None) or
                                                                 choices.extra.get("choices", ()))


def test_single_file_without_config_is_a_clear_error(clip_files, tmp_path):
    lonely = tmp_path / "lonely.safetensors"
    lonely.write_bytes(clip_files[1].read_bytes())
    with pytest.raises(ModelLoadError, match=r"lonely\.safetensors.*lonely\.json"):
        load_clip_scorer(lonely)
