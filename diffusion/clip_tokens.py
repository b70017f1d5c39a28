"""ComfyUI's CLIP token API on every Loom CLIP: ``clip.tokenize(text)`` gives a token dict,
``clip.encode_from_tokens(tokens)`` encodes one — as custom nodes call them, often editing the
dict in between (``tokens["l"] = clip.tokenize(other)["l"]``, ``tokens["t5xxl"] = []``).

Token dicts are ComfyUI's: one key per encoder — "l" (CLIP-L), "g" (CLIP-G, SDXL's OpenCLIP
bigG), "h" (SD2's OpenCLIP ViT-H), "t5xxl" — each a list of batches, each batch a list of
``(token id or embedding vector, weight)`` pairs, ``(…, word id)`` with ``return_word_ids``
(words numbered from 1, 0 for start, end and padding).  CLIP batches are 77 tokens; the T5's
tokens are one batch: the words, ``</s>``, then ``<pad>`` up to 256 (Flux) or 77 (SD3).

What each family's tokenizer gives and its encoder reads, as ComfyUI's:

* SD1 / SD2 / SDXL: a key per loaded encoder; features side by side (cut to the shorter
  batch list), the pooled output of the last encoder that has one;
* FLUX.1: ``{"l", "t5xxl"}``; T5 features, CLIP-L's pooled output
  (:func:`diffusion.flux_text.encode_flux_tokens`);
* SD3: ``{"g", "l", "t5xxl"}`` whichever encoders are loaded; the keys of encoders the CLIP
  lacks are ignored, an empty list leaves its encoder out (:func:`diffusion.sd3_text.encode_sd3_tokens`).

The text paths (CLIPTextEncode, CLIPTextEncodeFlux, CLIPTextEncodeSD3) encode the very token rows
built here, so ``encode_from_tokens(tokenize(text))`` is exactly the text's CONDITIONING (prompts
without ``embedding:`` words: the token API has no embeddings folder to read them from).
"""

from __future__ import annotations

import numbers
from typing import Any, Mapping

from .errors import PromptError
from .models import ClipModel
from .prompt import Token

Rows = list[list[Token]]
#: Encoder kind → token dict key ("openclip" is SD2's ViT-H or SDXL's bigG)
_KEYS = {"clip_l": "l", "clip_g": "g", "openclip": "g", "t5": "t5xxl"}
#: The keys each family's tokenizer gives beyond its loaded encoders' (ComfyUI's give them all)
_FAMILY_KEYS = {"flux": ("l", "t5xxl"), "sd3": ("g", "l", "t5xxl")}


def encoder_key(family: str, kind: str) -> str:
    """The token dict key of an encoder of ``kind`` in a CLIP of ``family``."""
    return "h" if (family, kind) == ("sd2", "openclip") else _KEYS[kind]


# -- text → tokens --------------------------------------------------------------------------------

def _numbered(words: Rows) -> dict[int, int]:
    """ComfyUI's word ids: each word's tokens (by identity) → its number, from 1."""
    return {id(t): n for n, word in enumerate(words, 1) for t in word}


def text_rows(clip: ClipModel, text: str) -> tuple[dict[str, Rows], dict[int, int]]:
    """(rows per key, word id of each word token) of ``text`` as the CLIP's family tokenizes it."""
    from .flux_text import t5_row, t5_words
    from .sd3_text import T5_MIN_LENGTH
    from .t5_tokenizer import FLUX_MIN_LENGTH
    from .text_encoding import clip_chunks, clip_words

    numbers_of: dict[int, int] = {}

    def clip_rows(kind: str) -> Rows:
        words = clip_words(text, kind, 0, None)  # no embedding library, so no width needed
        numbers_of.update(_numbered(words))
        return clip_chunks(words, kind)

    def t5_rows(min_length: int) -> Rows:
        words = t5_words(text)
        numbers_of.update(_numbered(words))
        return [t5_row(words, min_length)]

    if clip.family == "flux":
        rows = {"l": clip_rows("clip_l"), "t5xxl": t5_rows(FLUX_MIN_LENGTH)}
    elif clip.family == "sd3":
        rows = {"g": clip_rows("clip_g"), "l": clip_rows("clip_l"), "t5xxl": t5_rows(T5_MIN_LENGTH)}
    else:
        rows = {encoder_key(clip.family, enc.kind): clip_rows(enc.kind) for enc in clip.encoders}
    return rows, numbers_of


def tokenize(clip: ClipModel, text: str, return_word_ids: bool = False) -> dict[str, list]:
    """``clip.tokenize(text)``: ComfyUI's token dict for ``text``."""
    rows, numbers_of = text_rows(clip, text)
    out: dict[str, list] = {}
    for key, key_rows in rows.items():
        out[key] = [[(t.embedding if t.id is None else t.id, t.weight)
                     + ((numbers_of.get(id(t), 0),) if return_word_ids else ()) for t in row] for row in key_rows]
    return out


# -- tokens → rows --------------------------------------------------------------------------------

def _token(key: str, item: Any) -> Token:
    if not isinstance(item, (tuple, list)) or len(item) < 2:
        raise PromptError(f"tokens[{key!r}] holds {item!r}; each token is a (token, weight) pair as "
                          f"clip.tokenize gives")
    value, weight = item[0], float(item[1])
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return Token(int(value), weight)
    if isinstance(value, dict) and value.get("type", "embedding") == "embedding" and "data" in value:
        value = value["data"]
    if not hasattr(value, "shape"):
        raise PromptError(f"tokens[{key!r}] holds {type(value).__name__} {value!r}; a token is a token id or "
                          f"an embedding vector")
    vectors = value.reshape(-1, value.shape[-1]) if value.ndim else value.reshape(1, 1)
    if vectors.shape[0] != 1:
        raise PromptError(f"tokens[{key!r}] holds {vectors.shape[0]} embedding vectors in one position; "
                          f"give each vector its own position, as clip.tokenize does")
    return Token(None, weight, vectors[0])


def _rows(key: str, batches: Any) -> Rows:
    if not isinstance(batches, (list, tuple)) or any(not isinstance(b, (list, tuple)) for b in batches):
        raise PromptError(f"tokens[{key!r}] must be a list of token batches (lists of (token, weight) pairs), "
                          f"not {type(batches).__name__}")
    rows = [[_token(key, item) for item in batch] for batch in batches]
    lengths = sorted({len(row) for row in rows})
    if len(lengths) > 1 or lengths == [0]:
        raise PromptError(f"tokens[{key!r}] has batches of {', '.join(map(str, lengths))} tokens; the batches of "
                          f"one encoder are encoded together and must be equally long and not empty")
    return rows


def _check_fits(key: str, rows: Rows, enc: Any) -> None:
    """Token ids inside the encoder's vocabulary, embedding vectors as wide as it (T5: none)."""
    config = enc.model.config
    vocab = int(config.vocab_size)
    width = int(config.d_model if enc.kind == "t5" else config.hidden_size)
    for row in rows:
        for t in row:
            if t.id is None and enc.kind == "t5":
                raise PromptError(f"tokens[{key!r}] holds an embedding vector; Loom's T5 takes token ids only")
            if t.id is None and t.embedding.shape[-1] != width:
                raise PromptError(f"tokens[{key!r}] holds an embedding vector {t.embedding.shape[-1]} wide; "
                                  f"this encoder's are {width} wide")
            if t.id is not None and not 0 <= t.id < vocab:
                raise PromptError(f"tokens[{key!r}] holds token id {t.id}, outside this encoder's vocabulary "
                                  f"of {vocab}")


def token_rows(clip: ClipModel, tokens: Any) -> dict[str, Rows]:
    """Loom's token rows of a ComfyUI token dict, every key a loaded encoder reads checked."""
    if not isinstance(tokens, Mapping):
        raise PromptError(f"encode_from_tokens takes the dict clip.tokenize returns, not {type(tokens).__name__}")
    loaded = {encoder_key(clip.family, enc.kind): enc for enc in clip.encoders}
    missing = [key for key in loaded if key not in tokens]
    if missing:
        raise PromptError(f"tokens have no {', '.join(map(repr, missing))} entry for this {clip.family} CLIP "
                          f"(its encoders read {', '.join(map(repr, loaded))}; the tokens hold "
                          f"{', '.join(map(repr, tokens)) or 'nothing'})")
    rows = {}
    for key in set(loaded) | {k for k in _FAMILY_KEYS.get(clip.family, ()) if k in tokens}:
        rows[key] = _rows(key, tokens[key])
        if key in loaded:
            _check_fits(key, rows[key], loaded[key])
    return rows


# -- rows → features ------------------------------------------------------------------------------

def _encode_clip_only(clip: ClipModel, rows: Mapping[str, Rows]):
    """SD1 / SD2 / SDXL: each encoder's features (an empty list: start and end alone), side by side
    and cut to the shortest as ComfyUI's SDXL model does; the last pooled output given."""
    import torch

    from .text_encoding import _encode_chunks, start_end_row

    hiddens, pooled = [], None
    for i, enc in enumerate(clip.encoders):
        hidden, p = _encode_chunks(clip, i, rows[encoder_key(clip.family, enc.kind)] or [start_end_row(enc.kind)])
        hiddens.append(hidden)
        if p is not None:
            pooled = p
    cut = min(h.shape[1] for h in hiddens)
    return torch.cat([h[:, :cut] for h in hiddens], dim=-1), pooled


def encode_tokens(clip: ClipModel, tokens: Any):
    """``(cond [1, T, D], pooled)`` of a ComfyUI token dict on ``clip``, as ComfyUI's model of the
    CLIP's family encodes it."""
    rows = token_rows(clip, tokens)
    if clip.family == "flux":
        from .flux_text import encode_flux_tokens

        return encode_flux_tokens(clip, rows)
    if clip.family == "sd3":
        from .sd3_text import encode_sd3_tokens

        return encode_sd3_tokens(clip, rows)
    return _encode_clip_only(clip, rows)
