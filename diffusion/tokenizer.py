"""The CLIP BPE tokenizer, built offline from the vocabulary file shipped in configs/.

``bpe_simple_vocab_16e6.txt.gz`` is OpenAI CLIP's merge list (MIT, taken from the
``open_clip_torch`` wheel).  The vocabulary is derived from it exactly as CLIP does:
the 256 byte characters, the same with ``</w>``, one entry per merge, then the two
special tokens — 49408 entries, identical to the hub's ``vocab.json``.
"""

from __future__ import annotations

import functools
import gzip
from pathlib import Path

VOCAB_FILE = Path(__file__).parent / "configs" / "bpe_simple_vocab_16e6.txt.gz"
START_OF_TEXT = "<|startoftext|>"
END_OF_TEXT = "<|endoftext|>"
BOS_ID = 49406
EOS_ID = 49407
_MERGE_COUNT = 49152 - 256 - 2


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte → printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(
        range(ord("®"), ord("ÿ") + 1)
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in codes)))


@functools.cache
def vocabulary() -> tuple[dict[str, int], tuple[str, ...]]:
    """(token → id, merges as "a b" lines) for CLIP's BPE."""
    with gzip.open(VOCAB_FILE, "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = tuple(lines[1 : _MERGE_COUNT + 1])
    tokens = list(_bytes_to_unicode().values())
    tokens += [t + "</w>" for t in tokens]
    tokens += ["".join(m.split(" ")) for m in merges]
    tokens += [START_OF_TEXT, END_OF_TEXT]
    return {t: i for i, t in enumerate(tokens)}, merges


@functools.cache
def clip_tokenizer(pad_token: str = END_OF_TEXT):
    """A transformers ``CLIPTokenizer`` (no hub, no files written).

    SD1.x pads with end-of-text; OpenCLIP encoders (SD2.x, SDXL's second) pad with "!".
    """
    from transformers import CLIPTokenizer

    vocab, merges = vocabulary()
    return CLIPTokenizer(
        vocab=dict(vocab), merges=[tuple(m.split(" ")) for m in merges], unk_token=END_OF_TEXT, bos_token=START_OF_TEXT,
        eos_token=END_OF_TEXT, pad_token=pad_token, model_max_length=77,
    )
