"""Prompt syntax and 77-token chunking, checked against expected ids and weights."""

from __future__ import annotations

import pytest
import torch

from diffusion.errors import PromptError
from diffusion.prompt import chunk, parse_weights
from diffusion.text_encoding import EmbeddingLibrary, tokenize

ASTRONAUT = [49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]


def test_parentheses_multiply_by_1_1_and_brackets_divide():
    assert parse_weights("a (red) [blue] cat") == [("a ", 1.0), ("red", 1.1), (" ", 1.0),
                                                  ("blue", pytest.approx(1 / 1.1)), (" cat", 1.0)]


def test_explicit_weight_sets_the_weight():
    assert parse_weights("(red:1.3) cat") == [("red", 1.3), (" cat", 1.0)]


def test_nesting_composes():
    assert parse_weights("((red))")[0][1] == pytest.approx(1.21)


def test_escaped_parentheses_are_literal_text():
    assert parse_weights(r"a \(red\) cat") == [("a (red) cat", 1.0)]


def test_unbalanced_parenthesis_is_kept_as_text():
    assert parse_weights("a (red cat") == [("a (red cat", 1.0)]


def test_plain_prompt_tokenizes_like_clip():
    chunks = tokenize("a photograph of an astronaut riding a horse", "clip_l", 32, None)
    assert [t.id for t in chunks[0][:10]] == ASTRONAUT
    assert [t.id for t in chunks[0][10:]] == [49407] * 67


def test_weights_follow_their_tokens():
    chunks = tokenize("a photograph of an (astronaut:1.5) riding a horse", "clip_l", 32, None)
    weights = [t.weight for t in chunks[0][:10]]
    assert weights == [1.0] * 5 + [1.5] + [1.0] * 4


def test_openclip_pads_with_exclamation_mark():
    chunks = tokenize("a horse", "openclip", 64, None)
    assert [t.id for t in chunks[0][:5]] == [49406, 320, 4558, 49407, 0]


def test_long_prompt_is_split_into_77_token_chunks_without_splitting_words():
    chunks = tokenize(" ".join(["horse"] * 80), "clip_l", 32, None)
    assert len(chunks) == 2 and all(len(c) == 77 for c in chunks)
    assert [t.id for t in chunks[0][:2]] == [49406, 4558] and chunks[0][76].id == 49407
    assert sum(t.id == 4558 for c in chunks for t in c) == 80
    assert [t.id for t in chunks[1][:6]] == [49406, 4558, 4558, 4558, 4558, 4558]


def test_short_word_that_does_not_fit_moves_to_the_next_chunk():
    from diffusion.prompt import Token

    words = [[Token(1)]] * 74 + [[Token(2), Token(3)]]
    chunks = chunk(words, 49406, 49407, 49407)
    assert [t.id for t in chunks[0][74:77]] == [1, 49407, 49407]
    assert [t.id for t in chunks[1][:4]] == [49406, 2, 3, 49407]


def test_embedding_word_inserts_its_vectors(tmp_path):
    from safetensors.torch import save_file

    vectors = torch.randn(2, 32)
    save_file({"emb_params": vectors}, str(tmp_path / "style.safetensors"))
    chunks = tokenize("a embedding:style cat", "clip_l", 32, EmbeddingLibrary([tmp_path]))
    row = chunks[0]
    assert [t.id for t in row[:2]] == [49406, 320] and row[2].id is None and row[3].id is None
    assert torch.equal(row[2].embedding, vectors[0]) and torch.equal(row[3].embedding, vectors[1])
    assert row[4].id == 2368  # "cat"


def test_missing_embedding_is_a_clear_error(tmp_path):
    with pytest.raises(PromptError, match="embedding 'nope' not found"):
        tokenize("embedding:nope", "clip_l", 32, EmbeddingLibrary([tmp_path]))
