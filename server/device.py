"""Which device the engine will use, found without importing torch.

Start-up must not pay torch's import (over a second); the NVIDIA driver's
``/proc`` files say whether a GPU is there.  Once something else has imported
torch, its answer is used instead.
"""

from __future__ import annotations

import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

_NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class DeviceInfo:
    type: str  # "cpu" | "cuda" | "mps"
    name: str
    index: int | None = None
    vram_total: int = 0
    vram_free: int = 0

    def describe(self) -> str:
        return self.name if self.type == "cpu" else f"{self.type}:{self.index or 0} {self.name}"


def _nvidia_name() -> str | None:
    try:
        for info in sorted(_NVIDIA_GPUS.glob("*/information")):
            for line in info.read_text(errors="replace").splitlines():
                if line.startswith("Model:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def detect_device(setting: str = "auto") -> DeviceInfo:
    """The device for ``setting`` ("auto", "cpu", "cuda:N"), cheaply."""
    if setting == "cpu":
        return DeviceInfo("cpu", "cpu")
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                index = int(setting.split(":")[1]) if setting.startswith("cuda:") else torch.cuda.current_device()
                free, total = torch.cuda.mem_get_info(index)
                return DeviceInfo("cuda", torch.cuda.get_device_name(index), index, total, free)
        except Exception:
            pass
        return DeviceInfo("cpu", "cpu")
    name = _nvidia_name()
    if name is not None and (setting == "auto" or setting.startswith("cuda")):
        index = int(setting.split(":")[1]) if setting.startswith("cuda:") else 0
        return DeviceInfo("cuda", name, index)
    return DeviceInfo("cpu", "cpu")


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"
