"""``comfy_extras.<module>.<NodeClass>``: ComfyUI's extra core nodes, as aliases
of Loom's built-ins of the same name (``nodes_custom_sampler.SamplerCustom``,
``nodes_mask.GrowMask``...).  A name Loom has no built-in for is a placeholder."""

from __future__ import annotations

from typing import Any, Callable


def builtin_class(name: str) -> type | None:
    """The ComfyUI-style class of Loom's built-in node ``name``, if there is one."""
    from .binding import active
    from .nodes_surface import v1_class

    registry = active().registry
    if name[:1].isupper() and registry.origins.get(name) == "builtin":
        definition = registry.get(name)
        if definition is not None:
            return v1_class(definition)
    return None


def module_getattr(module: str, helpers: dict[str, Callable[[], Any]] | None = None) -> Callable[[str], Any]:
    """A module ``__getattr__``: helpers, then built-in node classes, then placeholders."""

    def __getattr__(name: str) -> Any:
        if helpers and name in helpers:
            return helpers[name]()
        if not name.startswith("_"):
            found = builtin_class(name)
            if found is not None:
                return found
        from .placeholders import attribute

        return attribute(module, name)

    return __getattr__
