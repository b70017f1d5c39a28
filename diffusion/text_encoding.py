"""CLIPTextEncode: prompt → CONDITIONING (a list of ``[tensor, dict]`` pairs, as ComfyUI).

Per encoder: parse weights, tokenise word by word, pack into 77-token chunks, encode
every chunk in one batch, read the hidden state of the chosen layer, apply the
weights the ComfyUI way — ``z = (z - z_empty) * w + z_empty`` against the encoding
of an empty prompt — and join the chunks along the token axis.  SDXL concatenates
both encoders' features and carries the second one's pooled output.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Sequence

from .errors import PromptError
from .models import ClipModel
from .prompt import Token, chunk, parse_weights, words_to_tokens
from .tokenizer import BOS_ID, EOS_ID, clip_tokenizer
from .weights_file import load_state_dict

#: Default layer (ComfyUI's stop_at_clip_layer) and whether the final LayerNorm is
#: applied, per family and encoder kind.
_DEFAULT_LAYER = {"sd1": -1, "sd2": -2, "sdxl": -2, "sd3": -2}
_FINAL_NORM = {"sd1": True, "sd2": True, "sdxl": False, "sd3": False}
#: Families whose CLIP-L pooled output is the final-normed end-of-text state, unprojected
#: (ComfyUI's return_projected_pooled=False; SD1's projection is the identity anyway)
_UNPROJECTED_POOLED = ("sd1", "sd3")
EMBEDDING_EXTENSIONS = (".safetensors", ".pt", ".bin", ".pth")


def _pad_id(kind: str) -> int:
    return EOS_ID if kind == "clip_l" else 0  # OpenCLIP pads with "!" (id 0)


@functools.lru_cache(maxsize=4096)
def _word_ids(word: str) -> tuple[int, ...]:
    return tuple(clip_tokenizer()(word, add_special_tokens=False).input_ids)


class EmbeddingLibrary:
    """Textual-inversion embeddings found in the embeddings folders, loaded on first use."""

    def __init__(self, folders: Sequence[Path]):
        self.folders = [Path(f) for f in folders]

    def find(self, name: str) -> Path:
        for folder in self.folders:
            for candidate in [folder / name] + [folder / (name + ext) for ext in EMBEDDING_EXTENSIONS]:
                try:
                    candidate.resolve().relative_to(folder.resolve())
                except ValueError:
                    continue
                if candidate.is_file():
                    return candidate
        where = ", ".join(str(f) for f in self.folders) or "no embeddings folder"
        raise PromptError(f"embedding {name!r} not found in {where}")

    def vectors(self, name: str, width: int, kind: str):
        """The [n, width] vectors of embedding ``name`` for an encoder of ``width``."""
        state = load_state_dict(self.find(name))
        candidates = []
        if isinstance(state.get("string_to_param"), dict):  # A1111 .pt (weights-only loads keep dicts)
            candidates += list(state["string_to_param"].values())
        for key in (("clip_l",) if kind == "clip_l" else ("clip_g",)) + ("emb_params", "*"):
            if key in state:
                candidates.append(state[key])
        candidates += [v for v in state.values() if hasattr(v, "shape")]
        for tensor in candidates:
            if hasattr(tensor, "shape") and tensor.ndim in (1, 2) and tensor.shape[-1] == width:
                return tensor.reshape(-1, width)
        raise PromptError(f"embedding {name!r} has no vectors of width {width} for this text encoder")


def _embedding_library(clip: ClipModel, embedding_dirs: Sequence[Path] | None) -> EmbeddingLibrary:
    return EmbeddingLibrary(embedding_dirs or [])


def clip_words(text: str, kind: str, width: int, library: EmbeddingLibrary | None) -> list[list[Token]]:
    """The prompt's words as CLIP tokens (embedding vectors for ``embedding:name``), unchunked."""
    lookup = (lambda name: library.vectors(name, width, kind)) if library is not None else None
    return words_to_tokens(parse_weights(text), _word_ids, lookup)


def clip_chunks(words: list[list[Token]], kind: str) -> list[list[Token]]:
    """Words packed into 77-token chunks with the encoder's start, end and padding tokens."""
    return chunk(words, BOS_ID, EOS_ID, _pad_id(kind))


def start_end_row(kind: str) -> list[Token]:
    """The start and end tokens alone: what ComfyUI encodes for an encoder given no token rows."""
    return clip_chunks([], kind)[0][:2]


def tokenize(text: str, kind: str, width: int, library: EmbeddingLibrary | None) -> list[list[Token]]:
    """The prompt as 77-token chunks for one encoder."""
    return clip_chunks(clip_words(text, kind, width, library), kind)


def run_text_model(model, batch: list[list[Token]], **kwargs):
    """The transformers output of ``model`` for equally long rows of tokens; a position holding an
    embedding vector gets that vector in place of its token embedding."""
    import torch

    device = next(model.parameters()).device
    ids = torch.tensor([[t.id if t.id is not None else 0 for t in c] for c in batch], device=device)
    inject = [(i, j, t.embedding) for i, c in enumerate(batch) for j, t in enumerate(c) if t.embedding is not None]
    text_model = model.text_model if hasattr(model, "text_model") else model
    hook = None
    if inject:
        def replace(module, args, output):
            output = output.clone()
            for i, j, vec in inject:
                output[i, j] = vec.to(output.dtype)
            return output

        hook = text_model.embeddings.token_embedding.register_forward_hook(replace)
    try:
        with torch.inference_mode():
            return model(input_ids=ids, **kwargs)
    finally:
        if hook is not None:
            hook.remove()


def _encode_chunks(clip: ClipModel, index: int, chunks: list[list[Token]]):
    """(hidden [1, 77·n, D], pooled [1, P] or None) for one encoder."""
    import torch

    enc = clip.encoders[index]
    model = clip.manager.use(enc.model)
    weighted = any(t.weight != 1.0 for c in chunks for t in c)
    batch = list(chunks)
    if weighted:  # the empty prompt as long as the chunks (77, or shorter rows a custom node made)
        batch.append(chunk([], BOS_ID, EOS_ID, _pad_id(enc.kind), length=len(chunks[0]))[0])
    out = run_text_model(model, batch, output_hidden_states=True)
    text_model = model.text_model if hasattr(model, "text_model") else model
    layer = clip.layer if clip.layer is not None else _DEFAULT_LAYER[clip.family]
    n_layers = len(out.hidden_states) - 1
    # stop_at_clip_layer counts from the file's last layer; -1 is the last.
    index_in_states = max(1, min(n_layers, enc.file_layers + 1 + layer))
    hidden = out.hidden_states[index_in_states]
    if _FINAL_NORM[clip.family]:
        hidden = text_model.final_layer_norm(hidden)
    hidden = hidden.float()
    if weighted:
        empty = hidden[-1]
        hidden = hidden[:-1].clone()
        w = torch.tensor([[t.weight for t in c] for c in chunks], device=hidden.device, dtype=hidden.dtype)
        hidden = (hidden - empty) * w[..., None] + empty
    pooled = getattr(out, "text_embeds", None)
    if pooled is None and clip.family in _UNPROJECTED_POOLED:
        # SD1.x and SD3 conditioning carry CLIP-L's pooled output as ComfyUI's does: the
        # final-layer-normed end-of-text state of the first chunk, without the projection
        pooled = getattr(out, "pooler_output", None)
    pooled = pooled[:1].float() if pooled is not None else None
    return hidden.reshape(1, -1, hidden.shape[-1]).cpu(), (pooled.cpu() if pooled is not None else None)


def encode(clip: ClipModel, text: str, *, text_l: str | None = None,
           embedding_dirs: Sequence[Path] | None = None, extra: dict[str, Any] | None = None) -> list:
    """CONDITIONING for ``text`` (SDXL: ``text`` feeds the second encoder, ``text_l`` the first)."""
    import torch

    if clip.family == "flux":  # CLIP-L pooled + T5-XXL features (diffusion.flux_text)
        from .flux_text import encode_flux

        return encode_flux(clip, text, extra=extra)
    if clip.family == "sd3":  # diffusion.sd3_text; CLIPTextEncodeSDXL's text_l goes to CLIP-L, as in ComfyUI
        from .sd3_text import encode_sd3

        return encode_sd3(clip, text if text_l is None else text_l, text, text, empty_padding="empty_prompt",
                          embedding_dirs=embedding_dirs, extra=extra)

    library = _embedding_library(clip, embedding_dirs)
    texts = [text_l if (text_l is not None and i == 0 and len(clip.encoders) == 2) else text
             for i in range(len(clip.encoders))]
    per_encoder = []
    for i, enc in enumerate(clip.encoders):
        width = enc.model.config.hidden_size
        per_encoder.append(tokenize(texts[i], enc.kind, width, library))
    if len(per_encoder) == 2 and len(per_encoder[0]) != len(per_encoder[1]):
        # Different chunk counts (SDXL with different texts): pad the shorter with empty prompts.
        longest = max(len(c) for c in per_encoder)
        for i, enc in enumerate(clip.encoders):
            empty = chunk([], BOS_ID, EOS_ID, _pad_id(enc.kind))[0]
            per_encoder[i] = per_encoder[i] + [empty] * (longest - len(per_encoder[i]))
    hiddens, pooled = [], None
    for i in range(len(clip.encoders)):
        h, p = _encode_chunks(clip, i, per_encoder[i])
        hiddens.append(h)
        if p is not None:
            pooled = p
    cond = torch.cat(hiddens, dim=-1)
    meta: dict[str, Any] = {"pooled_output": pooled}
    meta.update(extra or {})
    return [[cond, meta]]
