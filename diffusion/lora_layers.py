"""The layer types a LoRA file can hold, each one turning its factors into a weight change.

Every type answers the same small protocol (:class:`LayerPatch`):

- ``out_in()``: the (out, in) size of the weight it changes (``in`` counts kernel
  elements, so a conv ``[out, in, kh, kw]`` is ``in·kh·kw``) — for fit checks and the
  family guess;
- ``targets()``: which parameters of the module it changes (``weight``, and ``bias`` for a
  full difference carrying ``diff_b``), each with the patch for that parameter;
- ``misfit(shape)``: why it cannot patch a parameter of that shape, or ``None``;
- ``patched(weight, strength)``: the new float32 weight given the *current* float32
  weight (the original plus whatever patches came before).  Additive types ignore the
  weight they are given and add ``strength · scale · delta``; DoRA needs it, because it
  rescales the norms of ``W + ΔW``.

Formulas and key names follow LyCORIS (KohakuBlueleaf/LyCORIS, ``lycoris/modules``),
which writes these files; the alpha/rank rule of each type is stated on its class.
Factors are validated when the file is read, so a malformed layer fails with a
:class:`LayerFormatError` naming what is wrong, never later inside a matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Protocol

import torch


class LayerFormatError(ValueError):
    """A layer whose factors are missing or do not fit together (message: what is wrong)."""


class LayerPatch(Protocol):
    kind: str

    def out_in(self) -> tuple[int, int]: ...

    def targets(self) -> tuple[tuple[str, "LayerPatch"], ...]: ...

    def misfit(self, shape: torch.Size) -> str | None: ...

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor: ...


def _shape(t: torch.Tensor) -> list[int]:
    return list(t.shape)


def _f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.to(device, torch.float32)


def _size_misfit(kind: str, out_in: tuple[int, int], shape: torch.Size) -> str | None:
    out_features = int(shape[0]) if len(shape) else 1
    in_features = math.prod(int(s) for s in shape[1:])
    if out_in == (out_features, in_features):
        return None
    return f"{kind} {out_in[1]}→{out_in[0]}, model {in_features}→{out_features}"


class _Additive:
    """``patched = weight + strength · scale · delta``: every type but DoRA."""

    kind = "?"

    @property
    def scale(self) -> float:
        return 1.0

    def out_in(self) -> tuple[int, int]:
        raise NotImplementedError

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        """The unscaled weight change, reshaped to ``shape``, float32 on ``device``."""
        raise NotImplementedError

    def targets(self) -> tuple[tuple[str, LayerPatch], ...]:
        return (("weight", self),)

    def misfit(self, shape: torch.Size) -> str | None:
        return _size_misfit(self.kind, self.out_in(), shape)

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        factor = strength * self.scale
        if factor:
            weight.add_(self.delta(weight.shape, weight.device), alpha=factor)
        return weight


def _alpha_scale(alpha: float | None, rank: int) -> float:
    # kohya/LyCORIS files store alpha; no alpha means scale 1 (as ComfyUI and A1111 read them)
    return 1.0 if alpha is None else alpha / rank


# -- LoRA / LoCon ----------------------------------------------------------------------------


class _DownRank:
    """Rank from the rows of ``down``, scale ``alpha / rank``: plain and Tucker LoCon alike."""

    down: torch.Tensor
    alpha: float | None

    @property
    def rank(self) -> int:
        return int(self.down.shape[0])

    @property
    def scale(self) -> float:
        return _alpha_scale(self.alpha, self.rank)


@dataclass(frozen=True, eq=False)
class LowRank(_DownRank, _Additive):
    """LoRA / LoCon: ``delta = up @ down``, scale ``alpha / rank`` (rank = rows of ``down``)."""

    up: torch.Tensor      # [out, rank] or [out, rank, 1, 1]
    down: torch.Tensor    # [rank, in] or [rank, in, kh, kw]
    alpha: float | None
    kind = "LoRA"

    def out_in(self) -> tuple[int, int]:
        return int(self.up.shape[0]), int(self.down[0].numel())

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        up = _f32(self.up, device).flatten(1)
        down = _f32(self.down, device).flatten(1)
        return (up @ down).reshape(shape)


@dataclass(frozen=True, eq=False)
class TuckerLowRank(_DownRank, _Additive):
    """LoCon with a Tucker middle (``lora_mid``): a 1×1 ``down``, a ``kh×kw`` rank→rank
    ``mid`` and a 1×1 ``up``; ``delta[o,i,k,l] = Σ up[o,p] · mid[p,q,k,l] · down[q,i]``.
    Scale ``alpha / rank`` as plain LoRA."""

    up: torch.Tensor      # [out, rank, 1, 1]
    down: torch.Tensor    # [rank, in, 1, 1]
    mid: torch.Tensor     # [rank, rank, kh, kw]
    alpha: float | None
    kind = "LoCon (Tucker)"

    def out_in(self) -> tuple[int, int]:
        return int(self.up.shape[0]), int(self.down.shape[1]) * math.prod(self.mid.shape[2:])

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        up = _f32(self.up, device).flatten(1)
        down = _f32(self.down, device).flatten(1)
        mid = _f32(self.mid, device)
        return torch.einsum("pqkl,op,qi->oikl", mid, up, down).reshape(shape)


# -- LoHa -----------------------------------------------------------------------------------


def _tucker(core: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LyCORIS's Tucker rebuild: ``W[p,r,k,l] = Σ core[i,j,k,l] · a[i,p] · b[j,r]``
    (``a``: [rank, out], ``b``: [rank, in])."""
    return torch.einsum("ijkl,ip,jr->prkl", core, a, b)


@dataclass(frozen=True, eq=False)
class LoHa(_Additive):
    """LoHa: the Hadamard product of two low-rank products,
    ``delta = (w1_a @ w1_b) ⊙ (w2_a @ w2_b)``; with the Tucker conv form each product is
    rebuilt from ``hada_t1`` / ``hada_t2``.  Scale ``alpha / rank``, rank = rows of
    ``hada_w1_b`` (LyCORIS's ``lora_dim``)."""

    w1_a: torch.Tensor
    w1_b: torch.Tensor
    w2_a: torch.Tensor
    w2_b: torch.Tensor
    alpha: float | None
    t1: torch.Tensor | None = None
    t2: torch.Tensor | None = None
    kind = "LoHa"

    @property
    def rank(self) -> int:
        return int(self.w1_b.shape[0])

    @property
    def scale(self) -> float:
        return _alpha_scale(self.alpha, self.rank)

    def out_in(self) -> tuple[int, int]:
        if self.t1 is not None:
            return int(self.w1_a.shape[1]), int(self.w1_b.shape[1]) * math.prod(self.t1.shape[2:])
        return int(self.w1_a.shape[0]), int(self.w1_b.shape[1])

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        w1_a, w1_b, w2_a, w2_b = (_f32(t, device) for t in (self.w1_a, self.w1_b, self.w2_a, self.w2_b))
        if self.t1 is not None and self.t2 is not None:
            first = _tucker(_f32(self.t1, device), w1_a, w1_b)
            second = _tucker(_f32(self.t2, device), w2_a, w2_b)
        else:
            first, second = w1_a @ w1_b, w2_a @ w2_b
        return (first * second).reshape(shape)


# -- LoKr -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoKr(_Additive):
    """LoKr: ``delta = w1 ⊗ w2`` (Kronecker product), each factor either stored whole
    (``lokr_w1`` / ``lokr_w2``) or as a low-rank product (``lokr_w1_a @ lokr_w1_b``,
    ``lokr_w2_a @ lokr_w2_b``, or Tucker with ``lokr_t2``).  A conv ``w2`` may be 4-D
    ``[c, d, kh, kw]``; ``w1 ⊗ flatten(w2)`` is the same matrix as ComfyUI's 4-D kron.

    Alpha only applies when a factor is low-rank (LyCORIS sets alpha = rank when both are
    whole): scale ``alpha / rank`` with rank the inner size of the factored ``w2``, else of
    the factored ``w1``; 1 when neither is factored or there is no alpha."""

    w1: torch.Tensor | None
    w1_a: torch.Tensor | None
    w1_b: torch.Tensor | None
    w2: torch.Tensor | None
    w2_a: torch.Tensor | None
    w2_b: torch.Tensor | None
    t2: torch.Tensor | None
    alpha: float | None
    kind = "LoKr"

    @property
    def rank(self) -> int | None:
        if self.w2 is None:
            return int(self.w2_b.shape[0])
        if self.w1 is None:
            return int(self.w1_b.shape[0])
        return None

    @property
    def scale(self) -> float:
        rank = self.rank
        return 1.0 if self.alpha is None or rank is None else self.alpha / rank

    def _w1_shape(self) -> tuple[int, int]:
        if self.w1 is not None:
            return int(self.w1.shape[0]), int(self.w1.shape[1])
        return int(self.w1_a.shape[0]), int(self.w1_b.shape[1])

    def _w2_out_in(self) -> tuple[int, int]:
        if self.w2 is not None:
            return int(self.w2.shape[0]), int(self.w2[0].numel())
        if self.t2 is not None:
            return int(self.w2_a.shape[1]), int(self.w2_b.shape[1]) * math.prod(self.t2.shape[2:])
        return int(self.w2_a.shape[0]), int(self.w2_b[0].numel())

    def out_in(self) -> tuple[int, int]:
        (a, b), (c, d) = self._w1_shape(), self._w2_out_in()
        return a * c, b * d

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        w1 = _f32(self.w1, device) if self.w1 is not None else _f32(self.w1_a, device) @ _f32(self.w1_b, device)
        if self.w2 is not None:
            w2 = _f32(self.w2, device)
        elif self.t2 is not None:
            w2 = _tucker(_f32(self.t2, device), _f32(self.w2_a, device), _f32(self.w2_b, device))
        else:
            w2 = _f32(self.w2_a, device) @ _f32(self.w2_b, device)
        return torch.kron(w1, w2.flatten(1)).reshape(shape)


# -- full difference ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class FullDiff(_Additive):
    """A whole-weight difference (LyCORIS ``full``: ``diff`` / ``diff_b``; its norm-layer
    module: ``w_norm`` / ``b_norm``).  No alpha: ``delta = diff``; the bias difference is a
    second target."""

    diff: torch.Tensor
    bias: torch.Tensor | None = None
    kind = "full diff"

    def out_in(self) -> tuple[int, int]:
        return int(self.diff.shape[0]), int(self.diff[0].numel()) if self.diff.dim() > 1 else 1

    def delta(self, shape: torch.Size, device: torch.device) -> torch.Tensor:
        return _f32(self.diff, device).reshape(shape)

    def targets(self) -> tuple[tuple[str, LayerPatch], ...]:
        own: tuple[tuple[str, LayerPatch], ...] = (("weight", self),)
        return own if self.bias is None else own + (("bias", FullDiff(self.bias)),)


# -- DoRA -----------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WeightDecomposed:
    """DoRA: a low-rank change whose result keeps a learned magnitude per row or column.

    ``W' = (W + s·ΔW) · magnitude / ‖W + s·ΔW‖`` where the norm runs over each output row
    (magnitude ``[out, 1, …]``, or PEFT's ``lora_magnitude_vector`` ``[out]``) or over each
    input column (magnitude ``[1, in, …]``, the layout of older LyCORIS/kohya files); ``W``
    is the weight as it stands when this patch applies, ``s`` the inner layer's alpha
    scale.  Strength interpolates between the two: ``W + strength·(W' − W)``, so strength 0
    leaves the weight as it is (ComfyUI does the same)."""

    inner: _Additive
    magnitude: torch.Tensor
    kind = "DoRA"

    def out_in(self) -> tuple[int, int]:
        return self.inner.out_in()

    def targets(self) -> tuple[tuple[str, LayerPatch], ...]:
        return (("weight", self),)

    def _on_output_axis(self, shape: torch.Size) -> bool | None:
        out_features = int(shape[0])
        in_channels = int(shape[1]) if len(shape) > 1 else 1
        m = self.magnitude
        if m.numel() == out_features and int(m.shape[0]) == out_features:
            return True
        if m.dim() >= 2 and int(m.shape[0]) == 1 and m.numel() == in_channels:
            return False
        return None

    def misfit(self, shape: torch.Size) -> str | None:
        inner = self.inner.misfit(shape)
        if inner is not None or len(shape) < 2:
            return inner or f"DoRA on a {len(shape)}-D parameter"
        if self._on_output_axis(shape) is None:
            return (f"DoRA magnitude {_shape(self.magnitude)} fits neither the {int(shape[0])} outputs "
                    f"nor the {int(shape[1])} inputs of weight {list(shape)}")
        return None

    def patched(self, weight: torch.Tensor, strength: float) -> torch.Tensor:
        if not strength:
            return weight
        shape = weight.shape
        merged = weight + self.inner.scale * self.inner.delta(shape, weight.device)
        if self._on_output_axis(shape):
            norm = merged.flatten(1).norm(dim=1).reshape(-1, *[1] * (len(shape) - 1))
            magnitude = self.magnitude.reshape(norm.shape)
        else:
            norm = merged.transpose(0, 1).flatten(1).norm(dim=1).reshape(1, -1, *[1] * (len(shape) - 2))
            magnitude = self.magnitude.reshape(norm.shape)
        decomposed = merged * (_f32(magnitude, weight.device) / (norm + torch.finfo(torch.float32).eps))
        if strength == 1:
            return decomposed
        return weight.add_(decomposed - weight, alpha=strength)


# -- building a layer from the parts found under one name ----------------------------------

# part → which layer type it belongs to ("alpha" and the DoRA magnitude go with any)
PART_KINDS = {
    "up": "LoRA", "down": "LoRA", "mid": "LoRA",
    "hada_w1_a": "LoHa", "hada_w1_b": "LoHa", "hada_w2_a": "LoHa", "hada_w2_b": "LoHa",
    "hada_t1": "LoHa", "hada_t2": "LoHa",
    "lokr_w1": "LoKr", "lokr_w1_a": "LoKr", "lokr_w1_b": "LoKr", "lokr_w2": "LoKr",
    "lokr_w2_a": "LoKr", "lokr_w2_b": "LoKr", "lokr_t2": "LoKr",
    "diff": "full diff", "diff_b": "full diff",
}


def _need(parts: Mapping[str, torch.Tensor], kind: str, *names: str) -> list[torch.Tensor]:
    missing = [n for n in names if n not in parts]
    if missing:
        raise LayerFormatError(f"is a {kind} layer without {' / '.join(missing)}")
    return [parts[n] for n in names]


def _product(kind: str, a_name: str, a: torch.Tensor, b_name: str, b: torch.Tensor) -> None:
    if int(a.shape[1]) != int(b.shape[0]):
        raise LayerFormatError(f"has {kind} {a_name} {_shape(a)} and {b_name} {_shape(b)}, whose ranks differ")


def _tucker_fit(kind: str, t_name: str, t: torch.Tensor, a_name: str, a: torch.Tensor,
                b_name: str, b: torch.Tensor) -> None:
    if (int(t.shape[0]), int(t.shape[1])) != (int(a.shape[0]), int(b.shape[0])):
        raise LayerFormatError(f"has {kind} {t_name} {_shape(t)} that does not match {a_name} {_shape(a)} "
                               f"and {b_name} {_shape(b)} (their ranks must be its first two sizes)")


def _low_rank(parts: Mapping[str, torch.Tensor], alpha: float | None) -> _Additive:
    up, down = _need(parts, "LoRA", "up", "down")
    for name, t in (("up", up), ("down", down)):
        if t.dim() not in (2, 4):
            raise LayerFormatError(f"has {name} of shape {_shape(t)} (expected 2-D or 4-D)")
    if int(up.shape[1]) != int(down.shape[0]):
        raise LayerFormatError(f"has up {_shape(up)} and down {_shape(down)}, whose ranks differ")
    mid = parts.get("mid")
    if mid is None:
        return LowRank(up, down, alpha)
    if mid.dim() != 4 or up.dim() != 4 or down.dim() != 4 or up[0].numel() != up.shape[1] \
            or down[0].numel() != down.shape[1]:
        raise LayerFormatError(f"has lora_mid {_shape(mid)} with up {_shape(up)} and down {_shape(down)}: "
                               "a Tucker LoCon needs a 4-D mid between 1×1 up/down convolutions")
    if (int(mid.shape[0]), int(mid.shape[1])) != (int(up.shape[1]), int(down.shape[0])):
        raise LayerFormatError(f"has lora_mid {_shape(mid)} whose ranks do not match up {_shape(up)} "
                               f"and down {_shape(down)}")
    return TuckerLowRank(up, down, mid, alpha)


def _loha(parts: Mapping[str, torch.Tensor], alpha: float | None) -> LoHa:
    w1_a, w1_b, w2_a, w2_b = _need(parts, "LoHa", "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b")
    for name, t in (("hada_w1_a", w1_a), ("hada_w1_b", w1_b), ("hada_w2_a", w2_a), ("hada_w2_b", w2_b)):
        if t.dim() != 2:
            raise LayerFormatError(f"has LoHa {name} of shape {_shape(t)} (expected 2-D)")
    t1, t2 = parts.get("hada_t1"), parts.get("hada_t2")
    if (t1 is None) != (t2 is None):
        raise LayerFormatError(f"is a Tucker LoHa layer without {'hada_t2' if t2 is None else 'hada_t1'}")
    if t1 is not None:
        for name, t in (("hada_t1", t1), ("hada_t2", t2)):
            if t.dim() != 4:
                raise LayerFormatError(f"has LoHa {name} of shape {_shape(t)} (expected 4-D)")
        _tucker_fit("LoHa", "hada_t1", t1, "hada_w1_a", w1_a, "hada_w1_b", w1_b)
        _tucker_fit("LoHa", "hada_t2", t2, "hada_w2_a", w2_a, "hada_w2_b", w2_b)
        first = (int(w1_a.shape[1]), int(w1_b.shape[1]), *t1.shape[2:])
        second = (int(w2_a.shape[1]), int(w2_b.shape[1]), *t2.shape[2:])
    else:
        _product("LoHa", "hada_w1_a", w1_a, "hada_w1_b", w1_b)
        _product("LoHa", "hada_w2_a", w2_a, "hada_w2_b", w2_b)
        first = (int(w1_a.shape[0]), int(w1_b.shape[1]))
        second = (int(w2_a.shape[0]), int(w2_b.shape[1]))
    if tuple(first) != tuple(second):
        raise LayerFormatError(f"has LoHa products of different shapes: {list(first)} (w1) and {list(second)} (w2)")
    return LoHa(w1_a, w1_b, w2_a, w2_b, alpha, t1, t2)


def _lokr(parts: Mapping[str, torch.Tensor], alpha: float | None) -> LoKr:
    get = parts.get
    if "lokr_w1" not in parts:
        _need(parts, "LoKr", "lokr_w1_a", "lokr_w1_b")  # names all that is missing
    if "lokr_w2" not in parts:
        _need(parts, "LoKr", "lokr_w2_a", "lokr_w2_b")
    w1, w1_a, w1_b = get("lokr_w1"), get("lokr_w1_a"), get("lokr_w1_b")
    w2, w2_a, w2_b, t2 = get("lokr_w2"), get("lokr_w2_a"), get("lokr_w2_b"), get("lokr_t2")
    if w1 is not None and w1.dim() != 2:
        raise LayerFormatError(f"has LoKr lokr_w1 of shape {_shape(w1)} (expected 2-D)")
    if w1 is None:
        for name, t in (("lokr_w1_a", w1_a), ("lokr_w1_b", w1_b)):
            if t.dim() != 2:
                raise LayerFormatError(f"has LoKr {name} of shape {_shape(t)} (expected 2-D)")
        _product("LoKr", "lokr_w1_a", w1_a, "lokr_w1_b", w1_b)
    if w2 is None:
        for name, t in (("lokr_w2_a", w2_a), ("lokr_w2_b", w2_b)):
            if t.dim() != 2:
                raise LayerFormatError(f"has LoKr {name} of shape {_shape(t)} (expected 2-D)")
        if t2 is not None:
            if t2.dim() != 4:
                raise LayerFormatError(f"has LoKr lokr_t2 of shape {_shape(t2)} (expected 4-D)")
            _tucker_fit("LoKr", "lokr_t2", t2, "lokr_w2_a", w2_a, "lokr_w2_b", w2_b)
        else:
            _product("LoKr", "lokr_w2_a", w2_a, "lokr_w2_b", w2_b)
    elif t2 is not None:
        raise LayerFormatError("has LoKr lokr_t2 next to a whole lokr_w2 (a Tucker core needs lokr_w2_a/_b)")
    return LoKr(w1, w1_a, w1_b, w2, w2_a, w2_b, t2, alpha)


def _full(parts: Mapping[str, torch.Tensor]) -> FullDiff:
    (diff,) = _need(parts, "full diff", "diff")
    bias = parts.get("diff_b")
    if bias is not None and (bias.dim() != 1 or int(bias.shape[0]) != int(diff.shape[0])):
        raise LayerFormatError(f"has diff {_shape(diff)} and diff_b {_shape(bias)}, whose output sizes differ")
    return FullDiff(diff, bias)


def build_layer(parts: Mapping[str, torch.Tensor]) -> LayerPatch:
    """The layer made of ``parts`` (part name → tensor, as named in :data:`PART_KINDS`,
    plus ``alpha`` and ``dora_scale`` / ``magnitude``); :class:`LayerFormatError` if
    they do not make one."""
    kinds = sorted({PART_KINDS[p] for p in parts if p in PART_KINDS})
    if len(kinds) > 1:
        raise LayerFormatError(f"mixes {' and '.join(kinds)} weights")
    if not kinds:
        raise LayerFormatError(f"has only {' / '.join(sorted(parts))}, no weights")
    alpha_t = parts.get("alpha")
    alpha = None if alpha_t is None else float(alpha_t)
    kind = kinds[0]
    if kind == "LoRA":
        layer: _Additive = _low_rank(parts, alpha)
    elif kind == "LoHa":
        layer = _loha(parts, alpha)
    elif kind == "LoKr":
        layer = _lokr(parts, alpha)
    else:
        layer = _full(parts)
    magnitude = parts.get("dora_scale", parts.get("magnitude"))
    if magnitude is None:
        return layer
    if isinstance(layer, FullDiff):
        raise LayerFormatError("has a DoRA magnitude on a full diff (DoRA needs a low-rank change)")
    if "magnitude" in parts:  # PEFT's lora_magnitude_vector: always one value per output
        magnitude = magnitude.reshape(-1, 1)
    return WeightDecomposed(layer, magnitude)
