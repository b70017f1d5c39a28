"""The one host a process's ComfyUI modules answer for.

ComfyUI's plug-in API is module-level (``folder_paths.get_output_directory()``
takes no host argument), so the compatibility modules need to know which host
they speak for.  That is this binding — set once by the host at start-up and
the only module state in the layer.  Everything per-prompt (progress, interrupt)
is reached through the engine's ``current_context`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


class NotInstalled(RuntimeError):
    """A compatibility module was used before the host installed the layer."""


@dataclass
class Binding:
    registry: Any  # engine.registry.Registry
    #: The server object (``server.app.LoomServer``) once it exists; ``None`` in ``loom run``.
    server: Any = None
    adapters: Sequence[Callable[..., Any]] = field(default_factory=tuple)

    @property
    def env(self) -> Any:
        return self.registry.env

    @property
    def folders(self) -> Any:
        return self.registry.env.folders

    def bind_server(self, server: Any) -> None:
        """Hand ``PromptServer.instance`` the real server (routes, websocket hub)."""
        from .prompt_server import PROMPT_SERVER

        self.server = server
        PROMPT_SERVER.bind(server)


_active: Binding | None = None


def install(registry: Any) -> Binding:
    """Bind the ComfyUI modules to this host; returns the plug-in adapters to use."""
    global _active
    from . import nodes_surface  # noqa: F401  (``nodes.<ComfyUI name>`` delegates to it)
    from . import placeholders
    from .prompt_server import PROMPT_SERVER
    from .v3 import v3_adapter

    placeholders.install()  # missing ComfyUI modules import as placeholders
    _active = Binding(registry=registry, adapters=(v3_adapter,))
    from comfy import cli_args

    cli_args.bind_host(registry.env)
    PROMPT_SERVER.reset()
    return _active


def active() -> Binding:
    if _active is None:
        raise NotInstalled(
            "the ComfyUI compatibility layer is not installed in this process "
            "(the Loom host installs it before loading custom nodes)")
    return _active
