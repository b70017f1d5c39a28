"""``comfy_api.v0_0_2``: the versioned name of the same API as ``comfy_api.latest``."""

from comfy_api.latest import ComfyAPI_latest, ComfyExtension, Input, InputImpl, Types, io, ui
from comfy_api.latest._api import create_sync_class


class ComfyAPIAdapter_v0_0_2(ComfyAPI_latest):
    VERSION = "0.0.2"
    STABLE = False


ComfyAPI = ComfyAPIAdapter_v0_0_2
ComfyAPISync = create_sync_class(ComfyAPIAdapter_v0_0_2)
IO = io
UI = ui

__all__ = ["ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types", "io", "IO", "ui", "UI"]
