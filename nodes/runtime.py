"""The host environment handed to the engine and, through ``ctx.env``, to every node.

The engine never looks inside it; nodes read their folders from it and the
model runtime hangs off it.  Building one is cheap and imports no torch: the
model manager is created the first time a node asks for it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .folders import Folders, ModelNotFound, UnsafePath
from .image_bounds import DEFAULT_MAX_IMAGE_PIXELS

PREVIEW_METHODS = ("auto", "latent2rgb", "taesd", "none")  # ComfyUI's --preview-method names
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class LoomEnv:
    """Paths, device choice and preview settings of one Loom host."""

    folders: Folders
    #: "auto" picks the best device; "cpu" forces the CPU; "cuda:1" picks a GPU.
    device: str = "auto"
    #: How sampling previews are made: "latent2rgb" (cheap linear map), "taesd" (tiny decoder
    #: from models/vae_approx), "auto" (taesd when its file is there, else latent2rgb) or "none".
    preview_method: str = "latent2rgb"
    #: Largest image (width x height, summed over frames) decoded from a file; 0: no limit.
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    #: Precision and device-memory policy (``diffusion.memory_policy.MemoryPolicy``) from
    #: ComfyUI's ``--force-fp16`` / ``--lowvram`` ... flags; None: the device's defaults.
    memory: Any = None
    _models: Any = field(default=None, init=False, repr=False, compare=False)
    _models_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _DEVICE.match(self.device):
            raise ValueError(f"unknown device {self.device!r}; use auto, cpu, mps, cuda or cuda:N")
        if self.preview_method not in PREVIEW_METHODS:
            raise ValueError(
                f"unknown preview method {self.preview_method!r}; use one of {', '.join(PREVIEW_METHODS)}"
            )

    @classmethod
    def at(cls, base_dir: Any, **options: Any) -> "LoomEnv":
        """An environment whose folders all sit under ``base_dir`` (tests, scripts)."""
        return cls(folders=Folders.from_options(base_dir), **options)

    def missing_model_message(self, kind: str, name: str) -> str:
        """Why ``name`` can't be used as a ``kind`` model: the file and the folder to put it in."""
        try:
            self.folders.model_path(kind, name)
        except (ModelNotFound, UnsafePath) as exc:
            return str(exc)
        return f"{kind} '{name}' was added after the list was read; run again"

    @property
    def models(self) -> Any:
        """The model memory manager (``diffusion.memory.ModelManager``), created on first use."""
        if self._models is None:
            with self._models_lock:
                if self._models is None:
                    # Imported here: it pulls in torch, which start-up must not pay for.
                    from diffusion.memory import ModelManager

                    self._models = ModelManager(device=self.device, policy=self.memory)
                    # From now on an interrupt stops any model mid-forward, not only the sampler.
                    from .interrupts import watch_interrupts

                    watch_interrupts()
        return self._models

    @property
    def models_loaded(self) -> bool:
        """Whether the model manager exists yet (without creating it)."""
        return self._models is not None
