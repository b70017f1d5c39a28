"""The model memory manager: loads every model once, owns it, places it on a device.

One ``ModelManager`` per host (``LoomEnv.models``).  It

* picks the compute device (cuda → mps → cpu; ``device="cpu"`` forces the CPU) and
  the dtype per component (fp32 on the CPU, where it is exact and half precision
  is slow; bf16, else fp16 with an fp32 VAE, on GPUs), as changed by ComfyUI's
  precision and VRAM flags (:mod:`diffusion.memory_policy`);
* caches loaded files by (path, size, mtime), so several nodes and successive
  prompts share one copy, and keeps them resident between prompts;
* moves modules onto the compute device when they are used and, when device
  memory is short, moves the least recently used others back to the CPU;
* forgets everything on ``free(unload_models=True)`` (``POST /free``).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from .errors import ModelLoadError
from .latent_formats import for_family
from .memory_policy import MemoryPolicy, component_dtypes, device_notes
from .models import ClipModel, DiffusionModel, VaeModel

#: Fraction of free device memory to keep spare when placing a module.
_DEVICE_HEADROOM = 1.3

T = TypeVar("T")


@dataclass(frozen=True)
class LoadedModel:
    """One entry of :meth:`ModelManager.loaded_models`."""

    source: str
    component: str      # "unet" | "vae" | "text_encoder" | "controlnet"
    device: str
    dtype: str
    size_bytes: int


def pick_device(requested: str = "auto"):
    import torch

    if requested != "auto":
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _module_bytes(module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + sum(
        b.numel() * b.element_size() for b in module.buffers())


_log = logging.getLogger("loom.memory")


class ModelManager:
    def __init__(self, device: str = "auto", policy: MemoryPolicy | None = None):
        import torch

        self.device = pick_device(device)
        self.policy = policy or MemoryPolicy()
        bf16 = self.device.type == "cuda" and torch.cuda.is_bf16_supported()
        # fp16 VAEs overflow (SDXL's notably); bf16 has the range, fp32 is the safe fallback.
        dtypes = component_dtypes(self.policy, self.device.type, bf16)
        self.unet_dtype = getattr(torch, dtypes["unet"])
        self.text_dtype = getattr(torch, dtypes["text"])
        self.vae_dtype = getattr(torch, dtypes["vae"])
        for note in device_notes(self.policy, self.device.type):
            _log.warning("loom: %s", note)
        self._lock = threading.RLock()
        self._files: OrderedDict[tuple, Any] = OrderedDict()   # file key → loaded handles
        self._modules: OrderedDict[int, tuple[str, str, Any]] = OrderedDict()  # id → (source, component, module)

    # -- loading -------------------------------------------------------------------------
    @staticmethod
    def _file_key(path: str | os.PathLike, what: str) -> tuple:
        p = Path(path).resolve()
        try:
            st = p.stat()
        except OSError as exc:
            raise ModelLoadError(f"model file not found: {p}") from exc
        return (what, str(p), st.st_size, st.st_mtime_ns)

    def _cached(self, key: tuple, load):
        with self._lock:
            if key in self._files:
                self._files.move_to_end(key)
                return self._files[key]
            value = load()
            self._files[key] = value
            return value

    def _own(self, source: str, component: str, module) -> None:
        self._modules[id(module)] = (source, component, module)
        if self.device.type != "cpu":
            self.use(module)

    def load_file(self, path: str | os.PathLike, kind: str, loader: Callable[[Path], T], *,
                  modules: Callable[[T], Iterable[Any]] | None = None, component: str | None = None) -> T:
        """Load the model file (or folder) at ``path`` once and keep it resident.

        ``loader(path)`` builds the value; it is called again only when the file
        changes on disk (its size or mtime), and :meth:`free` forgets it.  Until then
        every call with the same ``path`` and ``kind`` returns the same object, so
        several nodes and successive prompts share one copy.  ``kind`` names what is
        read from the file ("gligen", "clip_vision" ...): one file can hold several
        things, each cached on its own.  The torch modules ``modules(value)`` gives
        (by default the value itself when it is a module) are placed like the UNet:
        on the compute device, moved back to the CPU when room is needed, used
        through :meth:`use`; :meth:`loaded_models` lists them as ``component``
        (default: ``kind``).
        """
        import torch

        path = Path(path)

        def load() -> T:
            value = loader(path)
            owned = modules(value) if modules is not None else (value,) if isinstance(value, torch.nn.Module) else ()
            for module in owned:
                self._own(path.name, component or kind, module)
            return value

        return self._cached(self._file_key(path, kind), load)

    def load_checkpoint(self, path: str | os.PathLike) -> tuple[DiffusionModel, ClipModel, VaeModel]:
        """MODEL, CLIP and VAE of a single-file checkpoint or a diffusers folder."""
        if Path(path).is_dir():
            return self._cached(self._file_key(path, "diffusers"), lambda: self._load_diffusers(Path(path)))
        return self._cached(self._file_key(path, "checkpoint"), lambda: self._load_checkpoint(Path(path)))

    def _load_checkpoint(self, path: Path):
        from .loading import WeightSource, build_text_encoders, build_unet, build_vae, read_architecture

        source = WeightSource(path)
        arch = read_architecture(source)
        name = path.name
        unet = build_unet(source, arch, self.unet_dtype)
        self._own(name, "unet", unet)
        vae = build_vae(source, arch, self.vae_dtype)
        self._own(name, "vae", vae)
        encoders = tuple(build_text_encoders(source, arch, self.text_dtype))
        for enc in encoders:
            self._own(name, "text_encoder", enc.model)
        fmt = for_family(arch.family)
        return (DiffusionModel(unet, arch.family, arch.prediction_type, fmt, self, source=name),
                ClipModel(encoders, arch.family, self, source=name),
                VaeModel(vae, fmt, self, source=name))

    def _load_diffusers(self, folder: Path):
        import json

        from diffusers import AutoencoderKL, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTextModelWithProjection

        from .loading import TextEncoderWeights

        if not (folder / "model_index.json").is_file() or not (folder / "unet").is_dir():
            raise ModelLoadError(f"{folder.name}: not a diffusers model folder (no model_index.json / unet/)")
        name = folder.name
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", torch_dtype=self.unet_dtype,
                                                    local_files_only=True).eval().requires_grad_(False)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", torch_dtype=self.vae_dtype,
                                            local_files_only=True).eval().requires_grad_(False)
        family = "sdxl" if (folder / "text_encoder_2").is_dir() else (
            "sd2" if unet.config.get("use_linear_projection") else "sd1")
        encoders = []
        for sub, cls in (("text_encoder", CLIPTextModel), ("text_encoder_2", CLIPTextModelWithProjection)):
            if (folder / sub).is_dir():
                te = cls.from_pretrained(folder, subfolder=sub, torch_dtype=self.text_dtype,
                                         local_files_only=True).eval().requires_grad_(False)
                kind = "openclip" if (family == "sd2" or sub == "text_encoder_2") else "clip_l"
                encoders.append(TextEncoderWeights(te, kind, te.config.num_hidden_layers))
        scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text()) \
            if (folder / "scheduler" / "scheduler_config.json").is_file() else {}
        prediction = scheduler.get("prediction_type", "epsilon")
        for module, component in ((unet, "unet"), (vae, "vae"), *((e.model, "text_encoder") for e in encoders)):
            self._own(name, component, module)
        fmt = for_family(family)
        return (DiffusionModel(unet, family, prediction, fmt, self, source=name),
                ClipModel(tuple(encoders), family, self, source=name),
                VaeModel(vae, fmt, self, source=name))

    def load_vae(self, path: str | os.PathLike) -> VaeModel:
        """A standalone VAE file (original layout, with or without ``first_stage_model.``)."""
        def load():
            from .loading import WeightSource, build_vae
            from .latent_formats import SD15, SDXL

            vae = build_vae(WeightSource(path), None, self.vae_dtype)
            # SDXL's VAE has the same shapes as SD's; its file name is the usual tell.
            fmt = SDXL if "xl" in Path(path).name.lower() else SD15
            vae.register_to_config(scaling_factor=fmt.scale_factor)
            self._own(Path(path).name, "vae", vae)
            return VaeModel(vae, fmt, self, source=Path(path).name)

        return self._cached(self._file_key(path, "vae"), load)

    def load_clip(self, path: str | os.PathLike) -> ClipModel:
        """A standalone text encoder file (HF CLIPTextModel keys, optionally prefixed)."""
        def load():
            from .loading import WeightSource, build_text_encoder

            source = WeightSource(path)
            shapes = source.shapes()
            for prefix in ("", "text_model.", "cond_stage_model.transformer.", "transformer."):
                probe = prefix + ("text_model." if not prefix.endswith("text_model.") else "")
                if probe + "embeddings.token_embedding.weight" in shapes:
                    base = probe[: -len("text_model.")] if probe.endswith("text_model.") else probe
                    enc = build_text_encoder(source, base, "clip_l", False, self.text_dtype)
                    self._own(Path(path).name, "text_encoder", enc.model)
                    return ClipModel((enc,), "sd1", self, source=Path(path).name)
            raise ModelLoadError(f"{Path(path).name}: not a CLIP text encoder (no *embeddings.token_embedding.weight)")

        return self._cached(self._file_key(path, "clip"), load)

    def load_controlnet(self, path: str | os.PathLike):
        """A ControlNet (single file or diffusers folder), loaded once and placed like the UNet."""
        def load():
            from .controlnet import load_controlnet

            control = load_controlnet(path, self.unet_dtype)
            if next(control.model.parameters()).dtype != self.unet_dtype:
                control.model.to(dtype=self.unet_dtype)
            self._own(Path(path).name, "controlnet", control.model)
            return control

        what = "controlnet-folder" if Path(path).is_dir() else "controlnet"
        return self._cached(self._file_key(path, what), load)

    # -- placement -----------------------------------------------------------------------
    def use(self, module):
        """Put ``module`` on the compute device (making room if needed) and return it."""
        import torch

        with self._lock:
            if id(module) in self._modules:
                self._modules.move_to_end(id(module))
            if self.device.type == "cpu":
                return module
            current = next(module.parameters()).device
            if current == self.device:
                return module
            if self.policy.exclusive and self.policy.evicts:
                # --lowvram / --novram / --disable-smart-memory: one model on the device at a time
                for _, _, other in list(self._modules.values()):
                    if other is not module and next(other.parameters()).device.type != "cpu":
                        other.to("cpu")
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            if self.device.type == "cuda" and self.policy.evicts:
                reserve = self.policy.reserve_vram_gb * 2**30
                need = _module_bytes(module) * _DEVICE_HEADROOM + reserve
                for other_id, (_, _, other) in list(self._modules.items()):
                    free, _total = torch.cuda.mem_get_info(self.device)
                    if free >= need:
                        break
                    if other is not module and next(other.parameters()).device.type == "cuda":
                        other.to("cpu")
                        torch.cuda.empty_cache()
            return module.to(self.device)

    def free(self, unload_models: bool = True, free_memory: bool = True) -> None:
        """Drop cached models (``unload_models``) and return cached device memory."""
        with self._lock:
            if unload_models:
                self._files.clear()
                self._modules.clear()
            gc.collect()
            if free_memory:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()

    def loaded_models(self) -> list[LoadedModel]:
        with self._lock:
            out = []
            for source, component, module in self._modules.values():
                p = next(module.parameters())
                out.append(LoadedModel(source, component, str(p.device), str(p.dtype).removeprefix("torch."),
                                       _module_bytes(module)))
            return out
