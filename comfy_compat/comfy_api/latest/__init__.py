"""``comfy_api.latest``: ComfyUI's V3 node API (``io``, ``ui``, ``ComfyExtension``)
and the ``ComfyAPI`` / ``ComfyAPISync`` objects packs report progress through.

A pack exports ``async def comfy_entrypoint() -> ComfyExtension``; Loom's plug-in
loader calls it and compiles each node of ``get_node_list()`` to its one schema.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from . import io, ui
from ._api import ComfyAPI_latest, Input, InputImpl, Types, create_sync_class


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Called once when the pack loads, before ``get_node_list``."""

    @abstractmethod
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        """The pack's node classes."""


ComfyAPI = ComfyAPI_latest
ComfyAPISync = create_sync_class(ComfyAPI_latest)

IO = io
UI = ui

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types", "io", "IO", "ui", "UI"]
