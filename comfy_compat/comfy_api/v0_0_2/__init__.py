"""``comfy_api.v0_0_2``: the versioned name of the same V3 API as ``comfy_api.latest``."""

from comfy_api.latest import IO, UI, ComfyAPI, ComfyExtension, io, ui

__all__ = ["ComfyAPI", "ComfyExtension", "io", "IO", "ui", "UI"]
