"""Stand-ins for the ComfyUI names Loom does not provide.

A pack that imports ``comfy.ldm.modules.attention`` or reads
``comfy.model_management.vram_state`` must still load: most of its nodes
rarely touch those names, and ComfyUI users choose packs by the nodes they
use.  So every such name resolves to a *placeholder*: a class that can be
imported, referenced, subclassed, used in annotations and read further
(``placeholder.attr`` is another placeholder), and that raises
``NotImplementedError("Loom does not provide comfy.X.Y; used by <pack>/<node>")``
only when it is called or instantiated.

Two ways in:

* :class:`MissingModuleFinder`, last on ``sys.meta_path``, turns an import of a
  missing module under ComfyUI's roots (``comfy.*``, ``comfy_extras.*``,
  ``app.*``, ``node_helpers``...) into a :class:`PlaceholderModule`; real
  modules always win because every other finder runs first.
* :func:`attribute` is what the provided modules' ``__getattr__`` returns for a
  name they lack.

Each use is reported to the plug-in loader (:func:`engine.plugins.note_unprovided`),
whose start-up summary lists per pack the names it touched.
"""

from __future__ import annotations

import abc
import importlib.abc
import importlib.machinery
import os
import sys
import types
from typing import Any

from engine.node import current_context
from engine.plugins import loading_plugin, note_unprovided

#: Top-level ComfyUI modules whose missing submodules become placeholders.
#: (``nodes`` and ``server`` are single files in ComfyUI, packs never import
#: submodules of them, and Loom's own packages of those names rely on real
#: ``ModuleNotFoundError``s; their missing *attributes* are placeholders.)
PACKAGE_ROOTS = frozenset({"comfy", "comfy_extras", "comfy_execution", "app", "comfy_config"})
#: Top-level ComfyUI modules that become placeholders when Loom has none.
#: (Only ComfyUI's own names: a generic one such as ``protocol`` or ``utils`` could
#: shadow a library's optional import.)
MODULE_ROOTS = frozenset({"node_helpers", "latent_preview", "execution", "comfyui_version"})


#: Lower-case names the node protocols (V1, V3) probe on a node class.
NODE_PROTOCOL = frozenset({"check_lazy_status", "define_schema", "GET_SCHEMA", "execute", "validate_inputs",
                           "fingerprint_inputs", "comfy_entrypoint"})


def _running_pack() -> tuple[str | None, str | None]:
    """(pack, node class) of the node running in this thread, if it is a plug-in's."""
    ctx = current_context.get()
    if ctx is None:
        return None, None
    class_type = None
    entry = (ctx.prompt or {}).get(ctx.node_id) or (ctx.prompt or {}).get(ctx.display_node_id)
    if isinstance(entry, dict):
        class_type = entry.get("class_type")
    pack = None
    try:
        from .binding import active

        origin = active().registry.origins.get(class_type or "")
        if origin and origin.startswith("custom_nodes/"):
            pack = origin.split("/", 1)[1]
    except Exception:  # no host bound: a pack's own script
        pass
    return pack, class_type


def _record(name: str) -> None:
    pack = loading_plugin()
    if pack is None:
        pack = _running_pack()[0]
    note_unprovided(name, pack)


def not_provided(name: str, users: set[str] | None = None) -> NotImplementedError:
    """The error raised when a placeholder is used: what is missing, and by whom."""
    pack, node = _running_pack()
    if pack or node:
        who = f"{pack or 'a custom node'}/{node or '?'}"
    elif users:
        who = ", ".join(sorted(users))
    else:
        who = "a custom node"
    return NotImplementedError(f"Loom does not provide {name}; used by {who}")


class PlaceholderType(abc.ABCMeta):
    """The metaclass of placeholders: reading an attribute gives a deeper
    placeholder; calling the placeholder itself raises ``NotImplementedError``.
    (An ``ABCMeta``, so a pack may mix a placeholder with ``ComfyNodeABC``.)"""

    def __getattr__(cls, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        if not cls.__dict__.get("__loom_placeholder__") and (attr.isupper() or attr in NODE_PROTOCOL):
            # A pack's own class on a placeholder base: Loom probes node attributes
            # (IS_CHANGED, VALIDATE_INPUTS...) with hasattr; absent must stay absent.
            raise AttributeError(attr)
        return placeholder(f"{cls.__loom_name__}.{attr}")

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls.__dict__.get("__loom_placeholder__"):
            raise not_provided(cls.__loom_name__, cls.__loom_users__)
        return super().__call__(*args, **kwargs)

    def __getitem__(cls, item: Any) -> Any:  # ``Placeholder[...]`` in annotations
        return cls

    def __repr__(cls) -> str:
        if cls.__dict__.get("__loom_placeholder__"):
            return f"<placeholder for {cls.__loom_name__} (not provided by Loom)>"
        return super().__repr__()


class Placeholder(metaclass=PlaceholderType):
    """Base of every placeholder class.  A pack's subclass may define its own
    ``__init__``; reaching this one means the missing base is really used."""

    __loom_name__ = "comfy"
    __loom_users__: set[str] = set()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        for klass in cls.__mro__:
            if klass.__dict__.get("__loom_placeholder__"):
                raise not_provided(klass.__loom_name__, klass.__loom_users__)

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_"):
            raise AttributeError(attr)
        for klass in type(self).__mro__:
            if klass.__dict__.get("__loom_placeholder__"):
                return placeholder(f"{klass.__loom_name__}.{attr}")
        raise AttributeError(attr)


_placeholders: dict[str, type] = {}


def placeholder(name: str) -> type:
    """The placeholder for the dotted ComfyUI name ``name`` (one per name)."""
    _record(name)
    found = _placeholders.get(name)
    if found is None:
        short = name.rsplit(".", 1)[-1] or "Placeholder"
        module = name.rsplit(".", 1)[0] if "." in name else name
        found = PlaceholderType(short if short.isidentifier() else "Placeholder", (Placeholder,), {
            "__loom_placeholder__": True, "__loom_name__": name, "__loom_users__": set(),
            "__module__": module, "__qualname__": short, "__doc__": f"Loom does not provide {name}.",
        })
        _placeholders[name] = found
    pack = loading_plugin()
    if pack:
        found.__loom_users__.add(pack)
    return found


def _is_submodule(module: str, name: str) -> bool:
    """Whether ``module.name`` is a real submodule not imported yet (``from nodes
    import imaging`` asks the package first, and must then import it)."""
    package = sys.modules.get(module)
    for folder in getattr(package, "__path__", None) or ():
        base = os.path.join(folder, name)
        if os.path.isfile(base + ".py") or os.path.isfile(os.path.join(base, "__init__.py")):
            return True
    return False


def attribute(module: str, name: str) -> Any:
    """``module.name`` for a name a provided module lacks: a placeholder, except
    for private and dunder names (probes like ``__path__`` must fail as usual)
    and real submodules not imported yet."""
    if name.startswith("_") or _is_submodule(module, name):
        raise AttributeError(f"module '{module}' has no attribute '{name}'", name=name, obj=sys.modules.get(module))
    return placeholder(f"{module}.{name}")


def is_placeholder(value: Any) -> bool:
    return isinstance(value, PlaceholderType) and bool(value.__dict__.get("__loom_placeholder__")) \
        or isinstance(value, PlaceholderModule)


class PlaceholderModule(types.ModuleType):
    """A ComfyUI module Loom does not have: every attribute is a placeholder,
    and it is a package, so deeper imports work too."""

    def __getattr__(self, attr: str) -> Any:
        if self.__name__.startswith("comfy_extras.") and not attr.startswith("_"):
            from .extras import builtin_class

            found = builtin_class(attr)  # ComfyUI's extra core nodes Loom has built in
            if found is not None:
                return found
        return attribute(self.__name__, attr)


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = PlaceholderModule(spec.name, f"Loom does not provide the module {spec.name}.")
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__path__ = []  # a package: ``import comfy.ldm.modules.attention`` goes on
        module.__loom_placeholder__ = True
        _record(module.__name__)


class MissingModuleFinder(importlib.abc.MetaPathFinder):
    """Last on ``sys.meta_path``: a ComfyUI module no other finder found
    becomes a placeholder module."""

    loader = _PlaceholderLoader()

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        root = fullname.split(".", 1)[0]
        if root in MODULE_ROOTS or root in PACKAGE_ROOTS:
            return importlib.machinery.ModuleSpec(fullname, self.loader, is_package=True)
        return None


_FINDER = MissingModuleFinder()


def forget_modules(_plugin: str | None = None) -> None:
    """Drop the placeholder modules from ``sys.modules`` (and their parents'
    attributes), so the next pack importing one goes through the finder and
    its use is reported too.  They hold no state; packs keep their references."""
    for name in [n for n, m in sys.modules.items() if isinstance(m, PlaceholderModule)]:
        del sys.modules[name]
        parent_name, _, child = name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and isinstance(parent.__dict__.get(child), PlaceholderModule):
            delattr(parent, child)


def install() -> None:
    """Put the finder last on ``sys.meta_path`` (once); forget placeholder
    modules before each plug-in imports."""
    from engine.plugins import before_plugin_import

    if not any(isinstance(finder, MissingModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_FINDER)
    before_plugin_import(forget_modules)
