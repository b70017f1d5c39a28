"""GLIGEN: grounded generation with text boxes (ComfyUI's GLIGENLoader / GLIGENTextBoxApply).

A GLIGEN file (e.g. ``gligen_sd14_textbox_pruned.safetensors``) holds, for an SD1.x UNet,

* a *position net* (``position_net.*``): Fourier features of each box's corners plus the
  phrase's pooled CLIP embedding → one grounding token per box (at most 30);
* one *fuser* per transformer block (``input_blocks.N.1.transformer_blocks.K.fuser.*``,
  ``middle_block.1...``, ``output_blocks.N.1...``): gated self-attention over the block's
  visual tokens plus the grounding tokens, inserted between self- and cross-attention.

The keys have the names of diffusers' ``GLIGENTextBoundingboxProjection`` and
``GatedSelfAttentionDense`` (the modules built here), under the original UNet's block
paths, which are mapped onto diffusers' ``down_blocks.i.attentions.j`` etc.

As in ComfyUI, a conditioning entry carries ``meta["gligen"] = ("position", GLIGEN,
[(pooled [1, D], h, w, y, x), ...])`` (box in latent pixels).  Only entries that carry
boxes run the fusers; the others (the negative, usually) see the plain UNet.  Boxes are
normalised by the size of the latent being predicted, as ComfyUI does.

Loom's UNets are plain diffusers ``UNet2DConditionModel``s (no fusers).  The first time
GLIGEN is used with one, each transformer block gets an empty ``fuser`` *slot* and the UNet
an empty ``position_net`` slot: modules without weights (the state dict is unchanged) that
do nothing unless a call passes ``cross_attention_kwargs={"gligen": ...}`` — which is how
diffusers' own UNet routes GLIGEN.  The slot hands the work to the GLIGEN of that call.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import ModelLoadError, SamplingError

#: Grounding tokens per call (GLIGEN was trained with 30; ComfyUI and diffusers pad to it).
MAX_OBJECTS = 30
_FUSER = re.compile(r"(?:^|\.)((?:input_blocks|output_blocks)\.\d+|middle_block)\.1\.transformer_blocks\.(\d+)\.fuser\.(.+)$")


@dataclass(frozen=True, eq=False)
class Gligen:
    """GLIGEN: the position net and the fusers (keyed by original block path) of one file."""

    modules: Any                     # torch Module: .position_net, .fusers (ModuleDict)
    blocks: tuple[str, ...]          # original paths, e.g. "input_blocks.1.1.transformer_blocks.0"
    key_dim: int                     # width of the phrase embeddings (768 for SD1.x)
    manager: Any = field(default=None, repr=False)
    source: str = ""

    def fuser(self, block: str):
        return self.modules.fusers[str(self.blocks.index(block))] if block in self.blocks else None


# -- loading --------------------------------------------------------------------------------


def _diffusers_block(path: str, layers_per_block: int) -> str:
    """Original transformer-block path → diffusers' (``input_blocks.4.1.transformer_blocks.0``
    → ``down_blocks.1.attentions.0.transformer_blocks.0`` with 2 layers per block)."""
    head, _, rest = path.partition(".1.transformer_blocks.")
    if head == "middle_block":
        return f"mid_block.attentions.0.transformer_blocks.{rest}"
    kind, n = head.split(".")
    n = int(n)
    if kind == "input_blocks":
        i, j = divmod(n - 1, layers_per_block + 1)
        return f"down_blocks.{i}.attentions.{j}.transformer_blocks.{rest}"
    i, j = divmod(n, layers_per_block + 1)
    return f"up_blocks.{i}.attentions.{j}.transformer_blocks.{rest}"


def _read(path: Path) -> dict:
    from .loading import WeightSource

    source = WeightSource(path)
    return source.read(source.shapes())


def load_gligen(path: str | os.PathLike, manager=None, dtype=None) -> Gligen:
    """A GLIGEN text-box model from its single file; a file that isn't one is a clear error."""
    import torch
    from diffusers.models.attention import GatedSelfAttentionDense
    from diffusers.models.embeddings import GLIGENTextBoundingboxProjection

    path = Path(path)
    state = _read(path)
    fusers: dict[str, dict[str, Any]] = {}
    for key, value in state.items():
        m = _FUSER.search(key)
        if m:
            fusers.setdefault(f"{m[1]}.1.transformer_blocks.{m[2]}", {})[m[3]] = value
        elif ".fuser." in key:
            raise ModelLoadError(f"{path.name}: cannot place GLIGEN weight {key!r} in a UNet transformer block")
    if "position_net.null_positive_feature" not in state or not fusers:
        raise ModelLoadError(f"{path.name} is not a GLIGEN model: it needs position_net.* and *.fuser.* weights")
    if "position_net.linears.0.weight" not in state:
        raise ModelLoadError(f"{path.name}: only GLIGEN text-box models are supported (no position_net.linears)")
    key_dim = int(state["position_net.null_positive_feature"].shape[0])
    out_dim = int(state["position_net.linears.4.weight"].shape[0])
    position_net = GLIGENTextBoundingboxProjection(positive_len=key_dim, out_dim=out_dim, feature_type="text-only")
    _load(position_net, {k[len("position_net."):]: v for k, v in state.items() if k.startswith("position_net.")},
          f"{path.name}: position net")
    order = sorted(fusers, key=_block_order)
    modules = torch.nn.Module()
    modules.position_net = position_net
    modules.fusers = torch.nn.ModuleDict()
    for index, block in enumerate(order):
        weights = fusers[block]
        try:
            query_dim, context_dim = (int(d) for d in weights["linear.weight"].shape)
        except KeyError as exc:
            raise ModelLoadError(f"{path.name}: fuser of {block} has no linear.weight") from exc
        # The head count is the block's own; it is set from the UNet when the fuser runs.
        fuser = GatedSelfAttentionDense(query_dim, context_dim, n_heads=1, d_head=query_dim)
        _load(fuser, weights, f"{path.name}: fuser of {block}")
        modules.fusers[str(index)] = fuser
    modules = modules.eval().requires_grad_(False)
    if dtype is not None:
        modules.to(dtype=dtype)
    return Gligen(modules, tuple(order), key_dim, manager, source=path.name)


def _block_order(block: str) -> tuple[int, int, int]:
    kind = block.split(".")[0]
    number = re.search(r"^\w+\.(\d+)\.1\.", block)
    inner = int(block.rsplit(".", 1)[-1])
    return ({"input_blocks": 0, "middle_block": 1, "output_blocks": 2}[kind], int(number[1]) if number else 0, inner)


def _load(module, weights: dict, what: str) -> None:
    expected = set(module.state_dict())
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise ModelLoadError(f"{what} does not match GLIGEN's layout (missing {missing[:3]}, unexpected {unexpected[:3]})")
    shapes = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    wrong = [k for k, v in weights.items() if tuple(v.shape) != shapes[k]]
    if wrong:
        raise ModelLoadError(f"{what}: unexpected tensor shapes for {wrong[:3]}")
    module.load_state_dict({k: v.float() for k, v in weights.items()})


# -- the phrase embedding -------------------------------------------------------------------


def phrase_embedding(clip, text: str, width: int):
    """``[1, width]``: the text's pooled CLIP output *before* the projection (the final
    LayerNorm's end-of-text token — ComfyUI's ``return_pooled="unprojected"``)."""
    import torch

    from .text_encoding import tokenize
    from .tokenizer import EOS_ID

    encoder = next((e for e in clip.encoders if int(e.model.config.hidden_size) == width), None)
    if encoder is None:
        sizes = ", ".join(str(e.model.config.hidden_size) for e in clip.encoders)
        raise SamplingError(f"this GLIGEN model needs {width}-wide text embeddings but the CLIP gives {sizes}: "
                            "use the CLIP of the SD1.x checkpoint it was trained for")
    model = clip.manager.use(encoder.model)
    first_chunk = tokenize(text, encoder.kind, width, None)[0]
    ids = torch.tensor([[t.id if t.id is not None else 0 for t in first_chunk]],
                       device=next(model.parameters()).device)
    with torch.inference_mode():
        hidden = model(input_ids=ids).last_hidden_state
    eos = int((ids[0] == EOS_ID).nonzero()[0, 0])
    return hidden[:, eos].float().cpu()


def apply_text_box(conditioning: Sequence, clip, gligen: Gligen, text: str, width: int, height: int,
                   x: int, y: int) -> list:
    """GLIGENTextBoxApply: every entry gets one more box (pixels → latent pixels, ``// 8``)."""
    if not isinstance(gligen, Gligen):
        raise SamplingError(f"gligen_textbox_model must come from GLIGENLoader, got {type(gligen).__name__}")
    embedding = phrase_embedding(clip, text, gligen.key_dim)
    box = (embedding, height // 8, width // 8, y // 8, x // 8)
    out = []
    for cond, meta in conditioning:
        meta = dict(meta)
        previous = list(meta["gligen"][2]) if "gligen" in meta else []
        meta["gligen"] = ("position", gligen, previous + [box])
        out.append([cond, meta])
    return out


# -- running in the UNet ----------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _slot_classes():
    import torch

    class FuserSlot(torch.nn.Module):
        """Stands where diffusers' gated UNets keep a fuser; runs the call's GLIGEN, if any."""

        def __init__(self, path: str, heads: int):
            super().__init__()
            self.path, self.heads = path, heads

        def forward(self, hidden_states, call: "_Call"):
            return call.fuse(self.path, self.heads, hidden_states)

    class PositionSlot(torch.nn.Module):
        """Stands where diffusers' gated UNets keep the position net; passes the call on."""

        def forward(self, call: "_Call"):
            return call

    return FuserSlot, PositionSlot


def _install_slots(unet) -> set[str]:
    """Slots in every transformer block of ``unet`` (once); returns the blocks' paths."""
    from diffusers.models.attention import BasicTransformerBlock

    FuserSlot, PositionSlot = _slot_classes()
    if hasattr(unet, "position_net") and not isinstance(unet.position_net, PositionSlot):
        raise SamplingError("this UNet has GLIGEN built in; Loom applies GLIGEN files to plain UNets")
    paths = set()
    for name, module in unet.named_modules():
        if isinstance(module, BasicTransformerBlock):
            if not hasattr(module, "fuser"):
                module.fuser = FuserSlot(name, int(module.attn1.heads))
            paths.add(name)
    if not hasattr(unet, "position_net"):
        unet.position_net = PositionSlot()
    return paths


@dataclass
class _Group:
    gligen: Gligen
    samples: Any       # indices into the UNet batch
    objs: Any          # [len(samples), 30, D] grounding tokens
    fusers: dict[str, Any]


class _Call:
    """The GLIGEN work of one UNet call: which batch items get which grounding tokens."""

    def __init__(self, groups: list[_Group], batch: int):
        self.groups, self.batch = groups, batch

    def fuse(self, path: str, heads: int, x):
        for group in self.groups:
            fuser = group.fusers.get(path)
            if fuser is None:
                continue
            fuser.attn.heads = heads  # the file doesn't say; the block it joins does
            objs = group.objs.to(x.device, x.dtype)
            if len(group.samples) == self.batch:
                x = fuser(x, objs)
            else:
                x = x.index_copy(0, group.samples, fuser(x[group.samples], objs))
        return x


def _boxes(params: list, size: tuple[int, int]):
    """[30, 4] normalised (x1, y1, x2, y2), [30] mask, [30, D] embeddings for one entry."""
    import torch

    if len(params) > MAX_OBJECTS:
        raise SamplingError(f"GLIGEN takes at most {MAX_OBJECTS} boxes per conditioning, got {len(params)}")
    h, w = size
    width = int(params[0][0].shape[-1])
    boxes = torch.zeros(MAX_OBJECTS, 4)
    masks = torch.zeros(MAX_OBJECTS)
    embeddings = torch.zeros(MAX_OBJECTS, width)
    for i, (embedding, bh, bw, by, bx) in enumerate(params):
        boxes[i] = torch.tensor([bx / w, by / h, (bx + bw) / w, (by + bh) / h])
        masks[i] = 1.0
        embeddings[i] = embedding.reshape(-1).float()
    return boxes, masks, embeddings


def unet_kwargs(unet, rows: Sequence, x, batch: int) -> dict[str, Any]:
    """Extra UNet arguments for a batch of conditioning ``rows`` (each ``batch`` items of
    ``x``): the GLIGEN call when any row carries boxes, else nothing."""
    import torch

    found = [(j, row.meta["gligen"]) for j, row in enumerate(rows) if row.meta.get("gligen") is not None]
    if not found:
        return {}
    blocks = _install_slots(unet)
    layers = int(unet.config.layers_per_block if isinstance(unet.config.layers_per_block, int)
                 else unet.config.layers_per_block[0])
    size = (int(x.shape[-2]), int(x.shape[-1]))
    by_model: dict[int, list] = {}
    for j, (kind, gligen, params) in found:
        if kind != "position" or not isinstance(gligen, Gligen):
            raise SamplingError(f"unsupported GLIGEN conditioning {kind!r}; Loom applies text boxes (position)")
        by_model.setdefault(id(gligen), []).append((j, gligen, params))
    groups = []
    for entries in by_model.values():
        gligen = entries[0][1]
        modules = gligen.manager.use(gligen.modules) if gligen.manager is not None else gligen.modules
        p = next(modules.parameters())
        boxes, masks, embeddings = zip(*(_boxes(params, size) for _, _, params in entries))
        with torch.inference_mode():
            objs = modules.position_net(torch.stack(boxes).to(p.device, p.dtype), torch.stack(masks).to(p.device, p.dtype),
                                        positive_embeddings=torch.stack(embeddings).to(p.device, p.dtype))
        samples = torch.cat([torch.arange(j * batch, (j + 1) * batch) for j, _, _ in entries]).to(x.device)
        objs = objs.repeat_interleave(batch, dim=0)
        fusers = {_diffusers_block(block, layers): gligen.fuser(block) for block in gligen.blocks}
        if not set(fusers) <= blocks:
            raise SamplingError(f"the GLIGEN model {gligen.source} does not fit this UNet (it has fusers for "
                                f"{len(set(fusers) - blocks)} transformer blocks this UNet lacks or arranges differently)")
        groups.append(_Group(gligen, samples, objs, fusers))
    return {"cross_attention_kwargs": {"gligen": {"call": _Call(groups, len(rows) * batch)}}}
