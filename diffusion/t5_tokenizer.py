"""T5's SentencePiece (Unigram) tokenizer, offline, from the file shipped in configs/.

``configs/t5_tokenizer.json.gz`` is the ``tokenizer.json`` of the T5 v1.1 XXL encoder that
FLUX.1 and SD3 use (Google's T5 vocabulary, Apache-2.0), taken unchanged (only gzipped)
from the Apache-2.0 PyPI wheel ``diffsynth==1.1.9``
(``diffsynth/tokenizer_configs/flux/tokenizer_2/tokenizer.json``, sha256
f5dfec163765e18e270537fe896c49f5fad74db1525641d9b255a3008b999596); see
``configs/T5_TOKENIZER.md``.  It is read with the ``tokenizers`` library that
transformers already depends on, so neither sentencepiece nor a hub is needed.

ComfyUI's T5-XXL tokenizer for Flux (and SD3): no start token, ``</s>`` (id 1) ends the
text, ``<pad>`` (id 0) pads it to at least 256 tokens (77 for SD3), no upper limit.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

TOKENIZER_FILE = Path(__file__).parent / "configs" / "t5_tokenizer.json.gz"
PAD_ID = 0
EOS_ID = 1
#: ComfyUI's T5XXLTokenizer min_length for Flux; SD3's is 77.
FLUX_MIN_LENGTH = 256


@functools.cache
def t5_tokenizer():
    """A ``tokenizers.Tokenizer`` for T5 (Unigram, 32100 pieces incl. 100 sentinels)."""
    from tokenizers import Tokenizer

    with gzip.open(TOKENIZER_FILE, "rt", encoding="utf-8") as f:
        return Tokenizer.from_str(f.read())


def word_ids(text: str) -> list[int]:
    """Token ids of ``text`` without the closing ``</s>``."""
    ids = t5_tokenizer().encode(text, add_special_tokens=False).ids
    return list(ids)


def t5_ids(text: str, min_length: int = FLUX_MIN_LENGTH) -> list[int]:
    """ComfyUI's T5 tokens for ``text``: the pieces, ``</s>``, then ``<pad>`` up to ``min_length``."""
    ids = word_ids(text) + [EOS_ID]
    return ids + [PAD_ID] * max(0, min_length - len(ids))
