"""Weights stored in one dtype, computed in another: fp8/bf16 Linear weights cast per layer on use.

A 12B Flux transformer is 24 GB in bf16 and 12 GB in fp8, 48 GB in float32: it must stay in
its stored dtype in memory.  So, as ComfyUI's "manual cast" does, only the Linear weights —
nearly all of the parameters — keep the storage dtype; the small rest (norms, biases,
embeddings) is held in the compute dtype, and every Linear casts its weight to the dtype of
its input when it runs.  The input's dtype is the compute dtype: float32 on the CPU (exact,
and fp8/bf16 matmuls are slow or missing there), bf16 on GPUs.  A cast copy lives only for
the duration of one layer's matmul.

ComfyUI's UNETLoader ``weight_dtype`` choices map to a storage dtype here:
``default`` keeps the file's own half/fp8 dtype (float32 files take the compute dtype),
``fp8_e4m3fn`` / ``fp8_e4m3fn_fast`` store float8_e4m3fn (the ``_fast`` matmul in fp8 is a
GPU kernel Loom does not use: it computes as ``fp8_e4m3fn``), ``fp8_e5m2`` float8_e5m2.
"""

from __future__ import annotations

from typing import Any, Mapping

WEIGHT_DTYPES = ("default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")


def _cast_linear_class():
    import torch
    import torch.nn.functional as F

    class CastLinear(torch.nn.Linear):
        """A Linear whose stored weight is cast to its input's dtype for each call."""

        def forward(self, x):
            weight = self.weight if self.weight.dtype == x.dtype else self.weight.to(x.dtype)
            bias = self.bias
            if bias is not None and bias.dtype != x.dtype:
                bias = bias.to(x.dtype)
            return F.linear(x, weight, bias)

    return CastLinear


_CAST_LINEAR: list[type] = []


def cast_linear_class() -> type:
    if not _CAST_LINEAR:
        _CAST_LINEAR.append(_cast_linear_class())
    return _CAST_LINEAR[0]


def storage_dtype(weight_dtype: str, file_dtype, compute_dtype):
    """The dtype Linear weights are kept in for a UNETLoader ``weight_dtype`` choice."""
    import torch

    if weight_dtype not in WEIGHT_DTYPES:
        raise ValueError(f"unknown weight_dtype {weight_dtype!r}; choose from {', '.join(WEIGHT_DTYPES)}")
    if weight_dtype in ("fp8_e4m3fn", "fp8_e4m3fn_fast"):
        return torch.float8_e4m3fn
    if weight_dtype == "fp8_e5m2":
        return torch.float8_e5m2
    if file_dtype in (torch.float32, torch.float64):
        return compute_dtype
    return file_dtype


def linear_weight_names(module) -> set[str]:
    import torch

    return {f"{name}.weight" for name, sub in module.named_modules() if isinstance(sub, torch.nn.Linear)}


def place_weights(module, state: Mapping[str, Any], linear_dtype, compute_dtype) -> dict[str, Any]:
    """``state`` with the Linear weights of ``module`` in ``linear_dtype`` and everything else
    in ``compute_dtype`` (non-float tensors unchanged)."""
    linear = linear_weight_names(module)
    out = {}
    for key, tensor in state.items():
        if not tensor.is_floating_point():
            out[key] = tensor
        elif key in linear:
            out[key] = tensor if tensor.dtype == linear_dtype else tensor.to(linear_dtype)
        else:
            out[key] = tensor if tensor.dtype == compute_dtype else tensor.to(compute_dtype)
    return out


def cast_on_use(module):
    """Make every Linear of ``module`` cast its weight to the input dtype when it runs
    (the class is swapped in place: same parameters, same names)."""
    import torch

    cls = cast_linear_class()
    for sub in module.modules():
        if type(sub) is torch.nn.Linear:
            sub.__class__ = cls
    return module


def dominant_dtype(dtypes: Mapping[str, Any]):
    """The dtype most of a file's 2-D (Linear) weights are stored in."""
    counts: dict[Any, int] = {}
    for dtype in dtypes.values():
        counts[dtype] = counts.get(dtype, 0) + 1
    return max(counts, key=counts.get) if counts else None


def build_stored(factory, state: dict[str, Any], weight_dtype: str, compute_dtype, what: str):
    """A module built on the meta device by ``factory`` and given ``state`` (consumed): Linear
    weights kept in the storage dtype ``weight_dtype`` asks for (the file's own dominant dtype by
    default), the rest in ``compute_dtype``, each Linear casting on use."""
    from .loading import _assign, _empty

    file_dtype = dominant_dtype({k: v.dtype for k, v in state.items() if v.ndim == 2})
    linear_dtype = storage_dtype(weight_dtype, file_dtype, compute_dtype)
    model = _empty(factory)
    placed = place_weights(model, state, linear_dtype, compute_dtype)
    state.clear()
    return cast_on_use(_assign(model, placed, what))
