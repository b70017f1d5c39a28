"""SD3 / SD3.5's text side: the ``clip_l``, ``clip_g`` and ``t5xxl`` files of models/text_encoders
(or the ``text_encoders.*`` parts of an all-in-one checkpoint), the CLIPs the loaders make of
them, and the prompt → CONDITIONING encoding ComfyUI's SD3ClipModel does.

Files (ComfyUI's layouts, told apart by :func:`diffusion.flux_text.text_encoder_kind`):

* ``clip_l.safetensors``: CLIP-L in transformers' names (``text_model.…``, ``text_projection.weight``);
* ``clip_g.safetensors``: OpenCLIP bigG in transformers' CLIPTextModelWithProjection names;
* ``t5xxl_fp16.safetensors`` / ``t5xxl_fp8_e4m3fn.safetensors``: T5EncoderModel names.

Encoding (ComfyUI's SD3ClipModel.encode_token_weights):

* CLIP-L and CLIP-G read their penultimate layer (CLIPSetLastLayer moves both) without the
  final layer norm.  Their features are joined side by side, cut to the shorter one's length,
  and zero-padded on the right to the T5's width; the pooled output is CLIP-L's (unprojected:
  the final-normed end-of-text state) beside CLIP-G's (projected).
* T5-XXL reads its final hidden state of the text, ``</s>``, and ``<pad>`` up to 77 tokens; its
  features follow the CLIP ones along the token axis.
* A CLIP that is not loaded contributes zeros: a missing CLIP-L's features are zeros on the
  left of CLIP-G's and its pooled part is zeros, a missing CLIP-G's pooled part is zeros.
  With no CLIP tokens at all there are no CLIP features and the pooled output is zeros;
  with nothing at all the features are zeros of 77 tokens.

Widths: the real encoders are L 768, G 1280 and T5 4096 wide, and ComfyUI pads the CLIP features
to 4096.  Loom pads them to the loaded T5's width, or to 4096 without a T5, and refuses
CLIPs wider together than that.  A missing CLIP takes its real width (ComfyUI's zeros(1, 768)
and zeros(1, 1280)), except beside test-size encoders (narrower than the real ones), which are
built with CLIP-L and CLIP-G equally wide and a T5 twice as wide: there a missing CLIP is as
wide as the loaded CLIP, or half as wide as the T5 when no CLIP is loaded.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from .errors import ModelLoadError, PromptError
from .models import ClipModel

#: Where an all-in-one SD3 checkpoint (ComfyUI's, Stability's) keeps each text encoder
SD3_TEXT_PREFIXES = {"clip_l": "text_encoders.clip_l.transformer.", "clip_g": "text_encoders.clip_g.transformer.",
                     "t5": "text_encoders.t5xxl.transformer."}
#: The order the encoders take in an SD3 CLIP, and the names ComfyUI's files and loaders use
ORDER = ("clip_l", "clip_g", "t5")
FILE_NAMES = {"clip_l": "clip_l", "clip_g": "clip_g", "t5": "t5xxl", "clip_h": "clip_h"}
REAL_WIDTHS = {"clip_l": 768, "clip_g": 1280}
#: The width ComfyUI pads the CLIP features to (T5-XXL's)
LG_WIDTH = 4096
#: ComfyUI's SD3 T5 tokenizer pads to at least 77 tokens (Flux's: 256)
T5_MIN_LENGTH = 77
EMPTY_PADDING = ("none", "empty_prompt")
_T5_PROBE = "encoder.block.0.layer.0.SelfAttention.q.weight"
_CLIP_PROBE = "text_model.embeddings.token_embedding.weight"


# -- building ------------------------------------------------------------------------------------

def build_clip_g(source, prefix: str, compute_dtype, filename: str):
    """CLIP-G (OpenCLIP bigG in transformers' names) as a CLIPTextModelWithProjection: its pooled
    output is projected, so the projection must be in the file."""
    from .loading import build_text_encoder

    if prefix + "text_projection.weight" not in source.shapes():
        raise ModelLoadError(f"{filename}: CLIP-G text encoder without its text_projection.weight "
                             f"(its pooled output is projected)")
    return build_text_encoder(source, prefix, "clip_g", True, compute_dtype)


def build_sd3_text_encoders(source, compute_dtype, filename: str) -> dict[str, Any]:
    """The text encoders an SD3 checkpoint holds, by kind ("clip_l", "clip_g", "t5"); any may be absent."""
    from .flux_text import build_clip_l, build_t5

    shapes = source.shapes()
    found: dict[str, Any] = {}
    for kind in ORDER:
        prefix = SD3_TEXT_PREFIXES[kind]
        if prefix + (_T5_PROBE if kind == "t5" else _CLIP_PROBE) not in shapes:
            continue
        build = {"clip_l": build_clip_l, "clip_g": build_clip_g, "t5": build_t5}[kind]
        found[kind] = build(source, prefix, compute_dtype, filename)
    return found


def sd3_clip(encoders: Mapping[str, Any] | Sequence[Any], manager, source: str) -> ClipModel:
    """An SD3 CLIP (family "sd3") of the loaded encoders, in the order clip_l, clip_g, t5.  A
    checkpoint without text encoders gives one with none, refused when it encodes (as ComfyUI's
    CLIP output is None then)."""
    given = list(encoders.values()) if isinstance(encoders, Mapping) else list(encoders)
    kinds = [getattr(enc, "kind", None) for enc in given]
    if any(kind not in ORDER for kind in kinds) or len(set(kinds)) != len(kinds):
        raise ModelLoadError(f"{source}: an SD3 CLIP takes one each of clip_l, clip_g and t5xxl, not {kinds}")
    ordered = tuple(sorted(given, key=lambda enc: ORDER.index(enc.kind)))
    widths(ordered, source)  # refuses CLIPs wider than the T5
    return ClipModel(ordered, "sd3", manager, source=source)


# -- widths --------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Widths:
    """Feature and pooled widths of both CLIP slots (loaded or zeros), and the padded width."""

    l: int
    g: int
    l_pooled: int
    g_pooled: int
    target: int


def _hidden(enc) -> int:
    config = enc.model.config
    return int(config.d_model if enc.kind == "t5" else config.hidden_size)


def _missing_width(kind: str, present: Mapping[str, int]) -> int:
    other = "clip_g" if kind == "clip_l" else "clip_l"
    if other in present:
        # test-size CLIPs are equally wide; a real one means real widths
        return REAL_WIDTHS[kind] if present[other] == REAL_WIDTHS[other] else present[other]
    if "t5" in present and present["t5"] != LG_WIDTH:
        return present["t5"] // 2
    return REAL_WIDTHS[kind]


def widths(encoders: Sequence[Any], source: str = "this CLIP") -> Widths:
    """The widths an SD3 CLIP's encoding has (module docstring); CLIPs wider than the T5 are an error."""
    by_kind = {enc.kind: enc for enc in encoders}
    present = {kind: _hidden(enc) for kind, enc in by_kind.items()}
    l = present.get("clip_l") or _missing_width("clip_l", present)
    g = present.get("clip_g") or _missing_width("clip_g", present)
    g_pooled = int(by_kind["clip_g"].model.config.projection_dim) if "clip_g" in by_kind else g
    target = present.get("t5", LG_WIDTH)
    if l + g > target:
        what = "the T5-XXL" if "t5" in present else "SD3's text features"
        raise ModelLoadError(f"{source}: CLIP-L ({l}) and CLIP-G ({g}) together are wider than {what} ({target}); "
                             f"these text encoders do not belong together")
    return Widths(l, g, l, g_pooled, target)


# -- loaders -------------------------------------------------------------------------------------

def _load_files(manager, paths: Sequence[Path], loader: str) -> dict[str, Any]:
    """Each file's encoder by kind, loaded once; two files of one kind are an error."""
    from .flux_text import load_text_encoder_file

    loaded: dict[str, Any] = {}
    names: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        kind, enc = load_text_encoder_file(manager, path, loader)
        if kind in loaded:
            raise ModelLoadError(f"{loader}: {names[kind]} and {path.name} are both {FILE_NAMES[kind]} text "
                                 f"encoders; give each of the encoders once")
        loaded[kind], names[kind] = enc, path.name
    return loaded


def _source(paths: Sequence[Path]) -> str:
    return "+".join(Path(p).name for p in paths)


DUAL_TYPES_SUPPORTED = "flux (clip_l + t5xxl), sd3 (two of clip_l, clip_g, t5xxl), sdxl (clip_l + clip_g)"


def load_dual_clip(manager, paths: Sequence[Path], clip_type: str, loader: str = "DualCLIPLoader") -> ClipModel:
    """DualCLIPLoader: two text encoder files (either order) as the CLIP of ``clip_type``."""
    if clip_type == "flux":
        from .flux_text import load_dual_clip as load_flux_clip

        return load_flux_clip(manager, paths, clip_type, loader)
    if clip_type not in ("sd3", "sdxl"):
        raise ModelLoadError(f"{loader}: type {clip_type!r} is not supported in Loom yet; "
                             f"supported: {DUAL_TYPES_SUPPORTED}")
    loaded = _load_files(manager, paths, loader)
    if clip_type == "sdxl":
        return sdxl_clip(loaded, manager, _source(paths), loader)
    return sd3_clip(loaded, manager, _source(paths))


def sdxl_clip(loaded: Mapping[str, Any], manager, source: str, loader: str = "DualCLIPLoader") -> ClipModel:
    """SDXL's CLIP of separate clip_l and clip_g files, as a checkpoint's: CLIP-L beside bigG
    (the "openclip" encoder of Loom's SDXL path, here in transformers' names)."""
    other = [FILE_NAMES[k] for k in loaded if k not in ("clip_l", "clip_g")]
    if other or len(loaded) != 2:
        raise ModelLoadError(f"{loader}: type sdxl needs a clip_l and a clip_g file"
                             + (f"; {', '.join(other)} is not an SDXL text encoder" if other else ""))
    bigg = dataclasses.replace(loaded["clip_g"], kind="openclip")  # the same module, cached once
    return ClipModel((loaded["clip_l"], bigg), "sdxl", manager, source=source)


def load_triple_clip(manager, paths: Sequence[Path], loader: str = "TripleCLIPLoader") -> ClipModel:
    """TripleCLIPLoader: clip_l, clip_g and t5xxl files (any order) as an SD3 CLIP."""
    loaded = _load_files(manager, paths, loader)
    missing = [FILE_NAMES[k] for k in ORDER if k not in loaded]
    if missing:
        raise ModelLoadError(f"{loader}: SD3 needs one clip_l, one clip_g and one t5xxl file; "
                             f"{', '.join(missing)} is missing")
    return sd3_clip(loaded, manager, _source(paths))


#: CLIPLoader types Loom loads, with the files each takes
CLIP_TYPES_SUPPORTED = {"stable_diffusion": "clip_l", "sd3": "t5xxl, clip_g or clip_l"}


def load_clip(manager, path: Path, clip_type: str, loader: str = "CLIPLoader") -> ClipModel:
    """CLIPLoader: one text encoder file as the CLIP of ``clip_type``."""
    path = Path(path)
    if clip_type == "sd3":
        kind, enc = _one_file(manager, path, loader)
        return sd3_clip({kind: enc}, manager, path.name)
    if clip_type == "stable_diffusion":
        _check_stable_diffusion_file(path, loader)
        return manager.load_clip(path)
    supported = "; ".join(f"{t} ({files})" for t, files in CLIP_TYPES_SUPPORTED.items())
    raise ModelLoadError(f"{loader}: type {clip_type!r} is not supported in Loom yet; supported: {supported}")


def _one_file(manager, path: Path, loader: str):
    from .flux_text import load_text_encoder_file

    return load_text_encoder_file(manager, path, loader)


def _check_stable_diffusion_file(path: Path, loader: str) -> None:
    """A safetensors file that is not a CLIP-L gets an error naming what it is (other formats are
    read in full, so only the loader itself looks at them)."""
    from .flux_files import describe
    from .flux_text import text_encoder_kind
    from .weights_file import SafetensorsFile

    if path.suffix.lower() != ".safetensors" or not path.is_file():
        return
    shapes = SafetensorsFile(path).shapes()
    found = text_encoder_kind(shapes)
    if found is not None and found[0] != "clip_l":
        raise ModelLoadError(f"{loader}: {path.name} is a {FILE_NAMES[found[0]]} text encoder; type stable_diffusion "
                             f"loads CLIP-L (SD1.x) — use type sd3 for SD3's t5xxl, clip_g or clip_l")
    if found is None and not any(k.endswith("embeddings.token_embedding.weight") for k in shapes):
        raise ModelLoadError(f"{loader}: {path.name} is a {describe(shapes)}, not a CLIP text encoder")


# -- encoding ------------------------------------------------------------------------------------

def _empty_chunk(kind: str) -> list:
    from .text_encoding import clip_chunks

    return clip_chunks([], kind)[0]


def _rows_or_start_end(rows: list, kind: str) -> list:
    """ComfyUI encodes an empty token list as the start and end tokens alone (two positions)."""
    from .text_encoding import start_end_row

    return rows if rows else [start_end_row(kind)]


def _clip_features(clip: ClipModel, index: Mapping[str, int], l_rows: list, g_rows: list, size: Widths):
    """(CLIP features [1, T, target], pooled [1, L+G]) as SD3ClipModel joins them: side by side, cut
    to the shorter one's length, zero-padded to the target width."""
    import torch
    import torch.nn.functional as F

    from .text_encoding import _encode_chunks

    lg, l_pooled = None, torch.zeros(1, size.l_pooled)
    if "clip_l" in index:
        lg, l_pooled = _encode_chunks(clip, index["clip_l"], _rows_or_start_end(l_rows, "clip_l"))
    g_pooled = torch.zeros(1, size.g_pooled)
    if "clip_g" in index:
        g_out, g_pooled = _encode_chunks(clip, index["clip_g"], _rows_or_start_end(g_rows, "clip_g"))
        if lg is None:
            lg = F.pad(g_out, (size.l, 0))
        else:
            cut = min(lg.shape[1], g_out.shape[1])
            lg = torch.cat([lg[:, :cut], g_out[:, :cut]], dim=-1)
    if lg is not None:
        lg = F.pad(lg, (0, size.target - lg.shape[-1]))
    return lg, torch.cat([l_pooled, g_pooled], dim=-1)


def _require_encoders(clip: ClipModel) -> None:
    if not clip.encoders:
        raise PromptError(f"{clip.source or 'this checkpoint'} holds no text encoders: load SD3's with "
                          f"TripleCLIPLoader (clip_l, clip_g, t5xxl), DualCLIPLoader or CLIPLoader with type sd3")


def encode_sd3_tokens(clip: ClipModel, rows: Mapping[str, list]):
    """(features, pooled) of ComfyUI's SD3 token rows ``{"l": [...], "g": [...], "t5xxl": [...]}``
    (SD3ClipModel.encode_token_weights): the CLIP part only when "l" or "g" has rows, an encoder's
    empty list encoded as its start and end tokens alone (T5's as ``</s>`` alone), the rows of an
    encoder the CLIP does not hold ignored."""
    import torch

    from .flux_text import encode_t5_rows

    _require_encoders(clip)
    index = {enc.kind: i for i, enc in enumerate(clip.encoders)}
    size = widths(clip.encoders, clip.source or "this CLIP")
    features, pooled = None, None
    if rows.get("l") or rows.get("g"):
        features, pooled = _clip_features(clip, index, rows.get("l") or [], rows.get("g") or [], size)
    if "t5" in index:
        t5_out = encode_t5_rows(clip.encoders[index["t5"]], clip.manager, rows["t5xxl"])
        features = t5_out if features is None else torch.cat([features, t5_out], dim=-2)
    if features is None:
        features = torch.zeros(1, 77, size.target)
    if pooled is None:
        pooled = torch.zeros(1, size.l_pooled + size.g_pooled)
    return features, pooled


def encode_sd3(clip: ClipModel, clip_l: str, clip_g: str, t5xxl: str, empty_padding: str = "none",
               embedding_dirs: Sequence[Path] | None = None, extra: dict | None = None) -> list:
    """CONDITIONING ``[[features, {"pooled_output": pooled, **extra}]]`` for an SD3 CLIP
    (CLIPTextEncodeSD3; CLIPTextEncode gives the same text to all three with "empty_prompt").

    ``empty_padding`` "none": an empty text gives its encoder no tokens at all (a CLIP is then
    left out as if not loaded, T5 encodes ``</s>`` alone); "empty_prompt": it is encoded as
    an empty prompt.  CLIP-L and CLIP-G are padded to the same number of 77-token chunks
    (ComfyUI's node does so before it encodes the tokens)."""
    from .flux_text import t5_row, t5_words
    from .text_encoding import EmbeddingLibrary, tokenize

    if clip.family != "sd3":
        raise PromptError(f"CLIPTextEncodeSD3 needs an SD3 CLIP (TripleCLIPLoader, DualCLIPLoader or CLIPLoader "
                          f"with type sd3, or an SD3 checkpoint); this is a {clip.family} CLIP")
    _require_encoders(clip)
    if empty_padding not in EMPTY_PADDING:
        raise PromptError(f"empty_padding must be one of {', '.join(EMPTY_PADDING)}, not {empty_padding!r}")
    drop = empty_padding == "none"
    index = {enc.kind: i for i, enc in enumerate(clip.encoders)}
    size = widths(clip.encoders, clip.source or "this CLIP")
    library = EmbeddingLibrary(embedding_dirs or [])

    def clip_rows(text: str, kind: str, width: int) -> list:
        return [] if drop and text == "" else tokenize(text, kind, width, library if kind in index else None)

    l_rows, g_rows = clip_rows(clip_l, "clip_l", size.l), clip_rows(clip_g, "clip_g", size.g)
    l_rows += [_empty_chunk("clip_l") for _ in range(len(g_rows) - len(l_rows))]
    g_rows += [_empty_chunk("clip_g") for _ in range(len(l_rows) - len(g_rows))]
    t5_rows = [] if drop and t5xxl == "" else [t5_row(t5_words(t5xxl), T5_MIN_LENGTH)]
    features, pooled = encode_sd3_tokens(clip, {"l": l_rows, "g": g_rows, "t5xxl": t5_rows})
    return [[features, {"pooled_output": pooled, **(extra or {})}]]
