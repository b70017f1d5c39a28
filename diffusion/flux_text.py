"""FLUX.1's text side: the ``clip_l`` and ``t5xxl`` files of models/text_encoders, and the
prompt → CONDITIONING encoding ComfyUI's Flux CLIP does.

* ``t5xxl_fp16.safetensors`` / ``t5xxl_fp8_e4m3fn.safetensors``: transformers' T5EncoderModel
  names (``encoder.block.N...``, ``shared.weight``); sizes are read from the shapes, fp8
  Linear weights stay fp8 and are cast per layer on use (:mod:`diffusion.flux_weights`).
* ``clip_l.safetensors``: CLIP-L in transformers' names under ``text_model.``.

Encoding (ComfyUI's FluxClipModel): the T5 text becomes ``[1, T, 4096]`` features — pieces,
``</s>``, ``<pad>`` up to 256 tokens, the encoder's final (normalised) hidden state, prompt
weights applied as ``(z − z_empty)·w + z_empty`` — and CLIP-L contributes only its pooled
output (the final-norm state at the end token, unprojected) of the first 77-token chunk.
The CONDITIONING is ``[[t5_features, {"pooled_output": clip_pooled, "guidance"?: g}]]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import ModelLoadError
from .models import ClipModel

if TYPE_CHECKING:
    from .prompt import Token

T5_PREFIXES = ("", "t5xxl.transformer.", "text_encoders.t5xxl.transformer.")
CLIP_L_PREFIXES = ("", "clip_l.transformer.", "text_encoders.clip_l.transformer.")
CLIP_G_PREFIXES = ("clip_g.transformer.", "text_encoders.clip_g.transformer.")
_T5_PROBE = "encoder.block.0.layer.0.SelfAttention.q.weight"
_CLIP_PROBE = "text_model.embeddings.token_embedding.weight"


def clip_kind(shapes, prefix: str) -> str:
    """"clip_g", "clip_h" or "clip_l" for a CLIP text tower in transformers' names, told apart as
    ComfyUI's detect_te_model does: a 31st layer (bigG has 32) makes CLIP-G, a 23rd (ViT-H has 24)
    CLIP-H, anything else CLIP-L; bigG's 1280 width says CLIP-G too."""
    layer = prefix + "text_model.encoder.layers.{}.mlp.fc1.weight"
    if layer.format(30) in shapes or shapes[prefix + _CLIP_PROBE][1] == 1280:
        return "clip_g"
    return "clip_h" if layer.format(22) in shapes else "clip_l"


def text_encoder_kind(shapes) -> tuple[str, str] | None:
    """("t5" | "clip_l" | "clip_g" | "clip_h", prefix) for a text encoder file, or None."""
    for prefix in T5_PREFIXES:
        if prefix + _T5_PROBE in shapes:
            return "t5", prefix
    for prefix in CLIP_L_PREFIXES + CLIP_G_PREFIXES:
        if prefix + _CLIP_PROBE in shapes:
            return clip_kind(shapes, prefix), prefix
    return None


def _layers(shapes, prefix: str) -> int:
    found = {int(k[len(prefix):].split(".")[0]) for k in shapes if k.startswith(prefix)}
    return max(found) + 1 if found else 0


def t5_config(shapes, prefix: str, filename: str) -> dict:
    try:
        vocab, d_model = shapes[prefix + "shared.weight"] if prefix + "shared.weight" in shapes \
            else shapes[prefix + "encoder.embed_tokens.weight"]
        inner = shapes[prefix + "encoder.block.0.layer.0.SelfAttention.q.weight"][0]
        buckets, heads = shapes[prefix + "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"]
        gated = prefix + "encoder.block.0.layer.1.DenseReluDense.wi_0.weight" in shapes
        d_ff = shapes[prefix + ("encoder.block.0.layer.1.DenseReluDense.wi_0.weight" if gated
                                else "encoder.block.0.layer.1.DenseReluDense.wi.weight")][0]
    except KeyError as exc:
        raise ModelLoadError(f"{filename}: incomplete T5 text encoder, missing {exc}") from None
    return dict(vocab_size=int(vocab), d_model=int(d_model), d_kv=int(inner) // int(heads), d_ff=int(d_ff),
                num_layers=_layers(shapes, prefix + "encoder.block."), num_heads=int(heads),
                relative_attention_num_buckets=int(buckets), relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu" if gated else "relu", dropout_rate=0.0,
                is_encoder_decoder=False, use_cache=False)


@dataclass
class T5Weights:
    """One loaded T5 encoder (the ``encoders`` entry of a Flux/SD3 CLIP)."""

    model: Any
    kind: str = "t5"
    file_layers: int = 0


def build_t5(source, prefix: str, compute_dtype, filename: str) -> T5Weights:
    from transformers import T5Config, T5EncoderModel

    from .flux_weights import cast_on_use, dominant_dtype, place_weights, storage_dtype
    from .loading import _assign, _empty

    shapes = source.shapes()
    config = T5Config(**t5_config(shapes, prefix, filename))
    state = {k[len(prefix):]: v for k, v in source.read_prefix(prefix).items()}
    state = {k: v for k, v in state.items() if k.startswith(("shared.", "encoder."))}
    shared = state.get("shared.weight", state.get("encoder.embed_tokens.weight"))
    state["shared.weight"] = state["encoder.embed_tokens.weight"] = shared
    model = _empty(lambda: T5EncoderModel(config))
    file_dtype = dominant_dtype({k: v.dtype for k, v in state.items() if v.ndim == 2})
    placed = place_weights(model, state, storage_dtype("default", file_dtype, compute_dtype), compute_dtype)
    model = _assign(model, placed, f"{filename}: T5 text encoder")
    return T5Weights(_feed_forward_in_compute_dtype(cast_on_use(model)), "t5", config.num_layers)


def _feed_forward_in_compute_dtype(model):
    """transformers' T5 feed-forward casts its input to ``wo``'s dtype (to keep fp16 runs from
    overflowing); with fp8 weights that would compute in fp8.  Here the stored weight is cast
    instead, so the feed-forward runs in the input's (compute) dtype like every other layer."""
    from transformers.models.t5 import modeling_t5 as t5

    class GatedFeedForward(t5.T5DenseGatedActDense):
        def forward(self, hidden_states):
            gated = self.act(self.wi_0(hidden_states)) * self.wi_1(hidden_states)
            return self.wo(self.dropout(gated))

    class FeedForward(t5.T5DenseActDense):
        def forward(self, hidden_states):
            return self.wo(self.dropout(self.act(self.wi(hidden_states))))

    for module in model.modules():
        if type(module) is t5.T5DenseGatedActDense:
            module.__class__ = GatedFeedForward
        elif type(module) is t5.T5DenseActDense:
            module.__class__ = FeedForward
    return model


def build_clip_l(source, prefix: str, compute_dtype, filename: str):
    from .loading import build_text_encoder

    base = prefix
    enc = build_text_encoder(source, base, "clip_l", False, compute_dtype)
    return enc


def load_text_encoder_file(manager, path: Path, loader: str):
    """(kind, encoder weights) of one text encoder file, loaded once."""
    def load(p: Path):
        from .flux_files import describe
        from .loading import WeightSource

        source = WeightSource(p)
        shapes = source.shapes()
        found = text_encoder_kind(shapes)
        if found is None:
            raise ModelLoadError(f"{loader}: {p.name} is a {describe(shapes)}, not a text encoder "
                                 f"(clip_l, clip_g or t5xxl)")
        kind, prefix = found
        if kind == "t5":
            return kind, build_t5(source, prefix, manager.text_dtype, p.name)
        if kind == "clip_g":
            from .sd3_text import build_clip_g

            return kind, build_clip_g(source, prefix, manager.text_dtype, p.name)
        if kind == "clip_h":
            raise ModelLoadError(f"{loader}: {p.name} is CLIP-H (SD2.x's OpenCLIP ViT-H text encoder), not a "
                                 f"clip_l, clip_g or t5xxl text encoder")
        return kind, build_clip_l(source, prefix, manager.text_dtype, p.name)

    return manager.load_file(path, "text_encoder", load, modules=lambda value: (value[1].model,),
                             component="text_encoder")


def load_dual_clip(manager, paths: Sequence[Path], clip_type: str, loader: str = "DualCLIPLoader") -> ClipModel:
    """DualCLIPLoader: for ``flux``, one clip_l and one t5xxl file (either order)."""
    if clip_type != "flux":
        raise ModelLoadError(f"{loader}: type {clip_type!r} is not supported in Loom yet; use type 'flux' "
                             f"(clip_l + t5xxl)")
    loaded = {}
    for path in paths:
        kind, enc = load_text_encoder_file(manager, Path(path), loader)
        if kind in loaded:
            raise ModelLoadError(f"{loader}: both files are {kind} text encoders; type flux needs one clip_l "
                                 f"and one t5xxl file")
        loaded[kind] = enc
    missing = [k for k in ("clip_l", "t5") if k not in loaded]
    if missing:
        raise ModelLoadError(f"{loader}: type flux needs a clip_l and a t5xxl file; "
                             f"{' and '.join('t5xxl' if k == 't5' else k for k in missing)} is missing")
    source = "+".join(Path(p).name for p in paths)
    return ClipModel((loaded["clip_l"], loaded["t5"]), "flux", manager, source=source)


# -- encoding ------------------------------------------------------------------------------------

def t5_words(text: str) -> list[list[Token]]:
    """The prompt's words as T5 tokens with their prompt weights (word by word, as for CLIP)."""
    from .prompt import Token, parse_weights
    from .t5_tokenizer import word_ids

    words = []
    for segment, weight in parse_weights(text):
        for word in segment.replace("\n", " ").split(" "):
            if word:
                words.append([Token(i, weight) for i in word_ids(word)])
    return [w for w in words if w]


def t5_row(words: list[list[Token]], min_length: int) -> list[Token]:
    """ComfyUI's T5 tokens: every word in one row, then ``</s>`` and ``<pad>`` up to ``min_length``."""
    from .prompt import Token
    from .t5_tokenizer import EOS_ID, PAD_ID

    row = [t for word in words for t in word] + [Token(EOS_ID)]
    return row + [Token(PAD_ID) for _ in range(min_length - len(row))]


def encode_t5_rows(enc: T5Weights, manager, rows: list[list[Token]]):
    """[1, T·n, D] float32 T5 features of n equally long rows of T5 tokens, with ComfyUI's prompt
    weights (``(z − z_empty)·w + z_empty`` against ``</s>`` and padding); no rows at all encode
    ``</s>`` alone, as ComfyUI's encoder does for an empty token list."""
    import torch

    from .prompt import Token
    from .t5_tokenizer import EOS_ID, PAD_ID

    rows = list(rows) or [[Token(EOS_ID)]]
    model = manager.use(enc.model)
    device = next(model.parameters()).device
    weighted = any(t.weight != 1.0 for row in rows for t in row)
    ids = [[t.id for t in row] for row in rows]
    if weighted:
        ids.append([EOS_ID] + [PAD_ID] * (len(rows[0]) - 1))
    with torch.inference_mode():
        hidden = model(input_ids=torch.tensor(ids, device=device)).last_hidden_state.float()
    n = len(rows)
    if weighted:
        w = torch.tensor([[t.weight for t in row] for row in rows], device=hidden.device)[:, :, None]
        hidden = (hidden[:n] - hidden[n:]) * w + hidden[n:]
    return hidden.reshape(1, -1, hidden.shape[-1]).cpu()


def encode_t5(enc: T5Weights, manager, text: str, min_length: int = 256):
    """[1, T, D] float32 T5 features for ``text``, with ComfyUI's prompt weights."""
    return encode_t5_rows(enc, manager, [t5_row(t5_words(text), min_length)])


def pooled_clip_l(enc, manager, rows: list[list[Token]]):
    """[1, P] CLIP-L pooled output (unprojected) of the first 77-token row; no rows at all are
    start and end tokens alone (ComfyUI's encoding of an empty token list)."""
    from .text_encoding import run_text_model, start_end_row

    first = rows[0] if rows else start_end_row("clip_l")
    out = run_text_model(manager.use(enc.model), [first])
    return out.pooler_output.float().cpu()


def encode_flux_tokens(clip: ClipModel, rows: Mapping[str, list[list[Token]]]):
    """(T5 features, CLIP-L pooled) of ComfyUI's Flux token rows ``{"l": [...], "t5xxl": [...]}``
    (FluxClipModel.encode_token_weights: CLIP-L gives only its pooled output)."""
    clip_l, t5 = clip.encoders
    return encode_t5_rows(t5, clip.manager, rows["t5xxl"]), pooled_clip_l(clip_l, clip.manager, rows["l"])


def encode_flux(clip: ClipModel, clip_l_text: str, t5_text: str | None = None,
                extra: dict | None = None) -> list:
    """CONDITIONING for FLUX.1 (CLIPTextEncode: the same text for both; CLIPTextEncodeFlux: two)."""
    from .t5_tokenizer import FLUX_MIN_LENGTH
    from .text_encoding import tokenize

    width = clip.encoders[0].model.config.hidden_size
    rows = {"l": tokenize(clip_l_text, "clip_l", width, None),
            "t5xxl": [t5_row(t5_words(clip_l_text if t5_text is None else t5_text), FLUX_MIN_LENGTH)]}
    features, pooled = encode_flux_tokens(clip, rows)
    meta: dict[str, Any] = {"pooled_output": pooled}
    meta.update(extra or {})
    return [[features, meta]]
