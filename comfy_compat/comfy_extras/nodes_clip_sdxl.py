"""ComfyUI's ``comfy_extras.nodes_clip_sdxl``: Loom's built-ins of the requested names, else placeholders."""

from loom_compat.extras import module_getattr

__getattr__ = module_getattr(__name__)
