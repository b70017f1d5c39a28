"""ComfyUI's ``comfy_execution`` helpers used by flow-control packs."""
