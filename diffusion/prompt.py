"""Prompt syntax (ComfyUI/A1111 emphasis) and the 77-token chunking, as pure functions.

Syntax: ``(text)`` multiplies the weight by 1.1, ``[text]`` divides it by 1.1 (A1111),
``(text:1.3)`` sets it to 1.3, nesting composes, ``\\(`` ``\\)`` ``\\[`` ``\\]`` are literal
brackets, and the word ``embedding:name`` inserts a textual-inversion embedding.
Unbalanced brackets are kept as text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

EMPHASIS = 1.1
CHUNK_TOKENS = 75          # 77 positions minus start and end
LONG_WORD_TOKENS = 8       # a word this long may be split across chunks; shorter ones move whole
EMBEDDING_PREFIX = "embedding:"

_ESCAPES = {"\\(": "\0a", "\\)": "\0b", "\\[": "\0c", "\\]": "\0d"}
_UNESCAPE = {"\0a": "(", "\0b": ")", "\0c": "[", "\0d": "]"}


def _unescape(text: str) -> str:
    for k, v in _UNESCAPE.items():
        text = text.replace(k, v)
    return text


def _matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at ``start``, or -1."""
    opening, closing = text[start], {"(": ")", "[": "]"}[text[start]]
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return i
    return -1


def _parse(text: str, weight: float) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    plain = ""
    i = 0
    while i < len(text):
        c = text[i]
        end = _matching(text, i) if c in "([" else -1
        if end < 0:
            plain += c
            i += 1
            continue
        if plain:
            out.append((plain, weight))
            plain = ""
        inner = text[i + 1:end]
        if c == "[":
            out += _parse(inner, weight / EMPHASIS)
        else:
            inner_weight = weight * EMPHASIS
            colon = inner.rfind(":")
            if colon > 0:
                try:
                    inner_weight = float(inner[colon + 1:])
                    inner = inner[:colon]
                except ValueError:
                    pass
            out += _parse(inner, inner_weight)
        i = end + 1
    if plain:
        out.append((plain, weight))
    return out


def parse_weights(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) segments."""
    for k, v in _ESCAPES.items():
        text = text.replace(k, v)
    merged: list[tuple[str, float]] = []
    for segment, weight in _parse(text, 1.0):
        segment = _unescape(segment)
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + segment, weight)
        else:
            merged.append((segment, weight))
    return merged


@dataclass(frozen=True)
class Token:
    """One position of the encoder input: a token id, or an embedding vector (id is None)."""

    id: int | None
    weight: float = 1.0
    embedding: object = None  # a [D] tensor for textual-inversion positions


Tokenize = Callable[[str], Sequence[int]]       # text → ids without start/end
LookupEmbedding = Callable[[str], object]       # name → [n, D] tensor (raises if missing)


def words_to_tokens(segments: Sequence[tuple[str, float]], tokenize: Tokenize,
                    embedding: LookupEmbedding | None = None) -> list[list[Token]]:
    """Each word of the weighted segments as its tokens (``embedding:name`` → vectors).

    Words are tokenised one at a time, as CLIP's BPE never merges across spaces.
    """
    words: list[list[Token]] = []
    for text, weight in segments:
        for word in text.replace("\n", " ").split(" "):
            if not word:
                continue
            if word.startswith(EMBEDDING_PREFIX) and embedding is not None and len(word) > len(EMBEDDING_PREFIX):
                vectors = embedding(word[len(EMBEDDING_PREFIX):].rstrip(",.;"))
                words.append([Token(None, weight, vectors[i]) for i in range(vectors.shape[0])])
            else:
                ids = list(tokenize(word))
                if ids:
                    words.append([Token(t, weight) for t in ids])
    return words


def chunk(words: Sequence[Sequence[Token]], start: int, end: int, pad: int,
          length: int = CHUNK_TOKENS + 2) -> list[list[Token]]:
    """Pack words into ``length``-token chunks: start, ≤ length-2 tokens, end, padding.

    A word that does not fit moves to the next chunk whole, unless it is at least
    ``LONG_WORD_TOKENS`` long, in which case it is split (as ComfyUI does).
    """
    chunks: list[list[Token]] = []
    batch = [Token(start)]

    def close():
        nonlocal batch
        batch.append(Token(end))
        batch.extend(Token(pad) for _ in range(length - len(batch)))
        chunks.append(batch)
        batch = [Token(start)]

    for word in words:
        word = list(word)
        long_word = len(word) >= LONG_WORD_TOKENS
        while word:
            room = length - 1 - len(batch)
            if len(word) <= room:
                batch.extend(word)
                word = []
            elif long_word:
                batch.extend(word[:room])
                word = word[room:]
                close()
            else:
                close()
    if len(batch) > 1 or not chunks:
        close()
    return chunks
