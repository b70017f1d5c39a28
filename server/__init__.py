"""Loom's server: ComfyUI's HTTP and websocket API over a durable queue.

Importing this package is cheap (no torch, no aiohttp): the pieces are in
submodules — ``server.app`` (the aiohttp application), ``server.store`` (SQLite
queue and history), ``server.hub`` (websocket fan-out), ``server.worker`` (the
thread that runs the engine) and ``server.cli`` (``loom serve`` / ``loom run``).
"""


def __getattr__(name: str):
    # ComfyUI compatibility: custom packs do
    # `from server import PromptServer`; it comes from comfy_compat/
    # (loom_compat.prompt_server) once the host has installed the layer.
    import sys

    surface = sys.modules.get("loom_compat.prompt_server")
    if surface is None or name.startswith("_"):
        raise AttributeError(f"module 'server' has no attribute '{name}'")
    return surface.server_attribute(name)  # PromptServer, BinaryEventTypes, web; else a placeholder
