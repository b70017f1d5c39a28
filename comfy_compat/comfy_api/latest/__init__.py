"""``comfy_api.latest``: ComfyUI's V3 node API (``io``, ``ui``, ``ComfyExtension``).

A pack exports ``async def comfy_entrypoint() -> ComfyExtension``; Loom's plug-in
loader calls it and compiles each node of ``get_node_list()`` to its one schema.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from . import io, ui


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called once when the pack loads, before ``get_node_list``."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The pack's node classes."""


class _Execution:
    async def set_progress(self, value: float, max_value: float, node_id: str | None = None,
                           preview_image: Any = None, ignore_size_limit: bool = False) -> None:
        from comfy.utils import ProgressBar

        ProgressBar(max_value, node_id).update_absolute(value, max_value)


class ComfyAPI:
    VERSION = "latest"
    execution = _Execution()


IO = io
UI = ui

__all__ = ["ComfyAPI", "ComfyExtension", "io", "IO", "ui", "UI"]
