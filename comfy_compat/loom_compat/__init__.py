"""Loom's side of the ComfyUI compatibility layer.

The folder above this package (``comfy_compat/``) is put on ``sys.path`` by the
host, before plug-ins import, so that ``import folder_paths``, ``import comfy.utils``,
``from comfy_api.latest import io`` ... resolve to thin modules over Loom's own
API.  Loom's own code never imports any of it; only the host wiring does::

    compat = loom_compat.install(registry)        # before load_plugins
    load_plugins(registry, folders, adapters=compat.adapters)
    compat.bind_server(server)                     # once the server object exists
"""

from __future__ import annotations

from .binding import Binding, active, install

__all__ = ["Binding", "active", "install"]
