"""ComfyUI's ``comfy.comfy_types``: the ``IO`` type names and node typing helpers."""

from .node_typing import IO, ComfyNodeABC, CheckLazyMixin, FileLocator, InputTypeDict, InputTypeOptions

__all__ = ["IO", "ComfyNodeABC", "CheckLazyMixin", "FileLocator", "InputTypeDict", "InputTypeOptions"]
