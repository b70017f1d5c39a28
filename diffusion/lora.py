"""LoRA: reading LoRA files and patching their weight changes into the shared model.

Files: kohya/A1111 safetensors (``lora_unet_*``, ``lora_te_*``, SDXL's ``lora_te1_*`` /
``lora_te2_*``, SD3's ``lora_te3_*``; ``.lora_down`` / ``.lora_up`` / ``.alpha``, LoCon convolutions
included) and diffusers/PEFT files (``unet.* / text_encoder.* / text_encoder_2.*``
with ``.lora_A`` / ``.lora_B``, or the older ``.lora.down`` / ``.lora.up``).  LyCORIS
layer types in the same naming are read too: LoHa (``hada_*``), LoKr (``lokr_*``),
Tucker LoCon (``lora_mid``), full differences (``diff`` / ``diff_b``, ``w_norm`` /
``b_norm``) and DoRA (``dora_scale`` / PEFT's ``lora_magnitude_vector``) on top of
a low-rank type; :mod:`diffusion.lora_layers` holds their formulas.

Patching never copies a model.  A :class:`WeightPatch` is a LoRA resolved against one
module (which parameters, which deltas, what strength).  A handle carries a tuple of
them; :func:`apply_patches` brings the shared module to exactly that tuple: it puts
back the saved originals of whatever was patched before (a bit-exact copy, so removal
restores the exact weights) and lets each layer patch its targeted weight in turn
(``strength · alpha/rank · up @ down`` for plain LoRA), saving the original first.  Only the patched tensors are ever saved.
Switching between handles with the same patch tuple costs nothing.

:class:`PatchedModule` is the seam to the sampler and the text encoder: a thin
``nn.Module`` around the shared module whose ``forward`` asks for its patch tuple; a
forward pre-hook on the shared module applies the tuple requested by the caller, or
none for an unpatched handle calling the shared module directly.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from .errors import ModelLoadError
from .lora_layers import LayerFormatError, LayerPatch, build_layer

log = logging.getLogger(__name__)


class LoraMismatch(ModelLoadError):
    """A LoRA that does not fit the model it is applied to."""


# -- the file -----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class LoraFile:
    """The layers of a LoRA file, keyed by (component, layer name).

    component: ``"unet"``, ``"te"`` (the only/first text encoder, kohya SD1/SD2),
    ``"te1"`` / ``"te2"`` (SDXL's two encoders; FLUX.1's CLIP-L and T5), ``"te3"`` (SD3's T5).  Layer names are either kohya's
    flattened names (``down_blocks_0_..._to_q``) or dotted module paths (diffusers).
    """

    name: str
    layers: Mapping[tuple[str, str], LayerPatch]

    def component(self, component: str) -> dict[str, LayerPatch]:
        return {layer: lr for (comp, layer), lr in self.layers.items() if comp == component}

    def components(self) -> set[str]:
        return {comp for comp, _ in self.layers}

    def family_guess(self) -> str | None:
        """Which model family the LoRA was trained for, from its keys and widths."""
        comps = self.components()
        if "te3" in comps:  # kohya's third text encoder: SD3's T5
            return "SD3"
        if comps & {"te1", "te2"}:
            return "SDXL"
        for (comp, layer), lr in self.layers.items():
            if comp == "unet" and re.search(r"attn2[._]to_k$", layer):
                return {768: "SD1.x", 1024: "SD2.x", 2048: "SDXL"}.get(lr.out_in()[1])
        return None


_KOHYA_PREFIXES = (("lora_unet_", "unet"), ("lora_te1_", "te1"), ("lora_te2_", "te2"), ("lora_te3_", "te3"),
                   ("lora_te_", "te"))
_DIFFUSERS_PREFIXES = (("unet.", "unet"), ("text_encoder_2.", "te2"), ("text_encoder.", "te"),
                       ("transformer.", "unet"))
# LyCORIS types Loom does not apply (a clear refusal rather than a silently ignored file)
_UNSUPPORTED = ((".a1.weight", "GLoRA"), (".b1.weight", "GLoRA"), (".oft_blocks", "OFT/BOFT"),
                (".oft_diag", "diagonal OFT"), (".oft_R.weight", "OFT"))
# suffix → part (see diffusion.lora_layers.PART_KINDS), most specific first
_PARTS = (
    (".lora_up.weight", "up"), (".lora_down.weight", "down"), (".lora_mid.weight", "mid"),
    (".lora_B.weight", "up"), (".lora_A.weight", "down"),
    (".lora.up.weight", "up"), (".lora.down.weight", "down"),
    (".lora_linear_layer.up.weight", "up"), (".lora_linear_layer.down.weight", "down"),
    (".alpha", "alpha"), (".dora_scale", "dora_scale"),
    (".lora_magnitude_vector", "magnitude"), (".lora_magnitude_vector.weight", "magnitude"),
    *((f".{part}", part) for part in ("hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b", "hada_t1", "hada_t2",
                                     "lokr_w1", "lokr_w1_a", "lokr_w1_b", "lokr_w2", "lokr_w2_a", "lokr_w2_b",
                                     "lokr_t2", "diff", "diff_b")),
    (".w_norm", "diff"), (".b_norm", "diff_b"),
)


def _split(key: str) -> tuple[str, str] | None:
    for suffix, part in _PARTS:
        if key.endswith(suffix):
            return key[: -len(suffix)], part
    return None


def _component(base: str) -> tuple[str, str] | None:
    for prefix, comp in _KOHYA_PREFIXES:
        if base.startswith(prefix):
            return comp, base[len(prefix):]
    base = base.removeprefix("base_model.model.")
    for prefix, comp in _DIFFUSERS_PREFIXES:
        if base.startswith(prefix):
            name = base[len(prefix):]
            if comp == "te" and not name.startswith("text_model."):
                name = "text_model." + name
            return ("te2" if comp == "te2" else comp), name
    if "." in base:  # a bare PEFT UNet adapter
        return "unet", base
    return None


def parse_lora(state: Mapping[str, torch.Tensor], name: str) -> LoraFile:
    """A :class:`LoraFile` from a state dict, or a :class:`ModelLoadError` naming what is wrong."""
    for key in state:
        for marker, kind in _UNSUPPORTED:
            if key.endswith(marker):
                raise ModelLoadError(f"LoRA '{name}': {kind} layers (e.g. {key!r}) are not supported; "
                                     "LoRA, LoCon, LoHa, LoKr, full diff and DoRA layers are")
    parts: dict[tuple[str, str], dict[str, Any]] = {}
    for key, tensor in state.items():
        split = _split(key)
        if split is None:
            continue
        base, part = split
        target = _component(base)
        if target is None:
            continue
        parts.setdefault(target, {})[part] = tensor
    if not parts:
        sample = ", ".join(list(state)[:3]) or "no tensors"
        raise ModelLoadError(f"'{name}' is not a LoRA file: no lora_up/lora_down, lora_A/lora_B or LyCORIS "
                             f"weights (found {sample})")
    layers = {}
    for target, found in parts.items():
        try:
            layers[target] = build_layer(found)
        except LayerFormatError as error:
            raise ModelLoadError(f"LoRA '{name}': layer {target[1]!r} {error}") from None
    return LoraFile(name, layers)


def read_weights(path: str | Path, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """All tensors of a small weights file (LoRA, ControlNet, upscaler...), without pickle;
    with ``dtype``, the floating-point ones converted to it as they are read."""
    from .weights_file import load_state_dict

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"file not found: {path}")
    return load_state_dict(path, dtype)


def load_lora(path: str | Path) -> LoraFile:
    from . import flux_lora, sd3_lora  # FLUX.1 (BFL/kohya/XLabs) and SD3 (MMDiT) layer names

    path = Path(path)
    try:
        state = sd3_lora.to_diffusers_names(flux_lora.to_diffusers_names(read_weights(path)))
    except ValueError as error:
        raise ModelLoadError(f"LoRA '{path.name}': {error}") from None
    return parse_lora(state, path.name)


# -- resolving a LoRA against a module ----------------------------------------------------


@dataclass(frozen=True, eq=False)
class WeightPatch:
    """A LoRA resolved against one module: parameter name → layer patch, at a strength.

    Compared by identity: a handle's patch tuple names exactly which patches it wants."""

    lora_name: str
    strength: float
    layers: tuple[tuple[str, LayerPatch], ...]


def _patchable(module: torch.nn.Module) -> dict[str, str]:
    """Index of the module's patchable layers (Linear/Conv, and the norms LyCORIS's
    ``w_norm`` / ``b_norm`` change): every spelling a LoRA may use → dotted name."""
    index: dict[str, str] = {}
    kinds = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.LayerNorm, torch.nn.GroupNorm)
    for dotted, sub in module.named_modules():
        if not isinstance(sub, kinds) or not dotted:
            continue
        spellings = {dotted}
        if not dotted.startswith("text_model.") and hasattr(module, "config") and \
                type(module).__name__.startswith("CLIPText"):
            spellings.add("text_model." + dotted)  # transformers ≥ 5.6 dropped this level
        for spelling in list(spellings):
            spellings.add(spelling.replace(".", "_"))
        for spelling in spellings:
            index[spelling] = dotted
    return index


def _model_label(model_name: str, family: str) -> str:
    return f"the {family} model '{model_name}'" if model_name else f"this {family} model"


def resolve(lora: LoraFile, component: str, module: torch.nn.Module, strength: float, *,
            model_name: str = "", family: str = "") -> WeightPatch:
    """The patch of ``lora``'s ``component`` layers on ``module``; every layer must fit."""
    index = _patchable(module)
    params = dict(module.named_parameters())
    wanted = lora.component(component)
    resolved, unknown, misfit = [], [], []
    for layer, patch in wanted.items():
        dotted = index.get(layer)
        if dotted is None:
            unknown.append(layer)
            continue
        problems, targets = [], []
        for suffix, part in patch.targets():
            param = params.get(f"{dotted}.{suffix}")
            problem = f"the model layer has no {suffix}" if param is None else part.misfit(param.shape)
            if problem:
                problems.append(problem)
            else:
                targets.append((f"{dotted}.{suffix}", part))
        if problems:
            misfit.append(f"{layer} ({'; '.join(problems)})")
            continue
        resolved.extend(targets)
    if unknown or misfit:
        guess = lora.family_guess()
        intro = f"LoRA '{lora.name}'" + (f" looks like a {guess} LoRA and" if guess else "")
        problems = []
        if misfit:
            problems.append(f"{len(misfit)} layers have other sizes, e.g. {misfit[0]}")
        if unknown:
            problems.append(f"{len(unknown)} layers do not exist, e.g. {unknown[0]!r}")
        raise LoraMismatch(f"{intro} does not fit {_model_label(model_name, family)} "
                           f"({component}: {'; '.join(problems)})")
    return WeightPatch(lora.name, float(strength), tuple(resolved))


# -- applying patches to the shared module -------------------------------------------------


@dataclass
class _PatchState:
    """Per shared module: what is applied and the originals of the patched tensors."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    applied: tuple = ()
    originals: dict[str, torch.Tensor] = field(default_factory=dict)
    requested: tuple | None = None
    hooked: bool = False


_STATE_ATTR = "_loom_patch_state"


def _state(module: torch.nn.Module) -> _PatchState:
    state = module.__dict__.get(_STATE_ATTR)
    if state is None:
        state = module.__dict__.setdefault(_STATE_ATTR, _PatchState())
    return state


def applied_patches(module: torch.nn.Module) -> tuple:
    return _state(module).applied


@torch.no_grad()
def apply_patches(module: torch.nn.Module, patches: tuple[WeightPatch, ...]) -> None:
    """Bring ``module``'s weights to original + ``patches`` (nothing to do when they already are)."""
    state = _state(module)
    with state.lock:
        if state.applied == tuple(patches):
            return
        params = dict(module.named_parameters())
        for name, original in state.originals.items():
            params[name].copy_(original)  # the saved bits, exactly
        state.originals.clear()
        state.applied = ()
        grouped: dict[str, list[tuple[float, LayerPatch]]] = {}
        for patch in patches:
            for name, layer in patch.layers:
                grouped.setdefault(name, []).append((patch.strength, layer))
        for name, items in grouped.items():
            weight = params[name]
            state.originals[name] = weight.detach().to("cpu", copy=True)
            total = weight.detach().float()
            for strength, layer in items:  # in patch order: DoRA sees the weight the earlier ones left
                total = layer.patched(total, strength)
            weight.copy_(total.to(weight.dtype))
        state.applied = tuple(patches)


def _pre_hook(module: torch.nn.Module, args: Any, kwargs: Any = None) -> None:
    state = _state(module)
    apply_patches(module, state.requested or ())


def _ensure_hook(module: torch.nn.Module) -> None:
    state = _state(module)
    with state.lock:
        if not state.hooked:
            module.register_forward_pre_hook(_pre_hook)
            state.hooked = True


class PatchedModule(torch.nn.Module):
    """A shared module seen through a patch tuple: calling it runs the shared module
    with exactly these patches applied.  Attributes (``config``, ``text_model``...)
    are the shared module's."""

    def __init__(self, shared: torch.nn.Module, patches: tuple[WeightPatch, ...]):
        super().__init__()
        self.shared = shared
        self.patches = tuple(patches)
        _ensure_hook(shared)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        state = _state(self.shared)
        with state.lock:
            state.requested = self.patches
            try:
                return self.shared(*args, **kwargs)
            finally:
                state.requested = None

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._modules["shared"], name)


def shared_module(module: torch.nn.Module) -> torch.nn.Module:
    """The shared module behind a (possibly patched) view."""
    return module.shared if isinstance(module, PatchedModule) else module


# -- handles ------------------------------------------------------------------------------


#: The text-encoder LoRA components each family's LoRAs use
_TEXT_COMPONENTS = {"flux": {"te", "te1", "te2", "te3"}, "sd3": {"te", "te1", "te2", "te3"}}


def _text_components(clip: Any) -> tuple[dict[int, tuple[str, ...]], set[str]]:
    """(the LoRA components each encoder of ``clip`` takes, by index; every component the family's
    LoRAs use).  SD1/SD2/SDXL go by position: kohya's "te" (SD1/SD2) or "te1"/"te2" (SDXL; diffusers'
    ``text_encoder.`` reads as "te").  FLUX.1 and SD3 go by encoder kind, so an SD3 CLIP holding
    only some of its encoders still gives each its own layers: "te1" CLIP-L, "te2" CLIP-G (FLUX.1:
    the T5), "te3" the T5, and "te" the first CLIP — ComfyUI's model_lora_keys_clip for the full
    sets (it numbers the rest by position, so that a CLIP-G + T5 CLIP took "te2" as the T5)."""
    kinds = [enc.kind for enc in clip.encoders]
    if clip.family == "flux":
        by_kind = {"clip_l": ("te", "te1"), "t5": ("te2", "te3")}
    elif clip.family == "sd3":
        by_kind = {"clip_l": ("te", "te1"), "clip_g": ("te2",) if "clip_l" in kinds else ("te", "te2"),
                   "t5": ("te3",)}
    else:
        by_index = {0: ("te",)} if len(kinds) == 1 else {0: ("te", "te1"), 1: ("te2",)}
        return by_index, {comp for comps in by_index.values() for comp in comps}
    return {i: by_kind.get(kind, ()) for i, kind in enumerate(kinds)}, _TEXT_COMPONENTS[clip.family]


def with_unet_lora(model: Any, lora: LoraFile, strength: float) -> Any:
    """A MODEL handle with ``lora`` added to its patches (the input handle is unchanged)."""
    if not lora.component("unet"):
        return model
    shared = shared_module(model.unet)
    patch = resolve(lora, "unet", shared, strength, model_name=model.source, family=model.family)
    patches = tuple(model.patches) + (patch,)
    return model.clone(unet=PatchedModule(shared, patches), patches=patches)


def with_clip_lora(clip: Any, lora: LoraFile, strength: float) -> Any:
    """A CLIP handle with ``lora``'s text-encoder layers added (unchanged when it has none)."""
    from .loading import TextEncoderWeights

    present = lora.components() - {"unet"}
    if not present:
        return clip
    mapping, known = _text_components(clip)
    if present - known or (present == {"te"} and len(clip.encoders) == 2 and clip.family == "sdxl"):
        guess = lora.family_guess() or ("SD1.x/SD2.x" if present == {"te"} else "another model")
        raise LoraMismatch(f"LoRA '{lora.name}' looks like a {guess} LoRA and does not fit "
                           f"{_model_label(clip.source, clip.family)}: its text-encoder layers "
                           f"({', '.join(sorted(present))}) do not match the model's "
                           f"{len(clip.encoders)} text encoder(s)")
    absent = present - {comp for comps in mapping.values() for comp in comps}
    if absent:  # an SD3 CLIP without some of its encoders; ComfyUI leaves their layers out too
        log.warning("LoRA '%s': the %s layers are left out: %s holds no encoder for them", lora.name,
                    ", ".join(sorted(absent)), _model_label(clip.source, clip.family))
    encoders = list(clip.encoders)
    patches = list(clip.patches)
    for index, comps in mapping.items():
        shared = shared_module(encoders[index].model)
        for comp in comps:
            if not lora.component(comp):
                continue
            patch = resolve(lora, comp, shared, strength, model_name=clip.source, family=clip.family)
            patches.append((index, patch))
        own = tuple(p for i, p in patches if i == index)
        if own:
            enc = encoders[index]
            encoders[index] = TextEncoderWeights(PatchedModule(shared, own), enc.kind, enc.file_layers)
    return clip.clone(encoders=tuple(encoders), patches=tuple(patches))
