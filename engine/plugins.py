"""Loading custom-node plug-ins from folders, as ComfyUI does.

Every package (folder with ``__init__.py``) or ``.py`` file in a plug-in folder
is imported; its ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` (V1),
``LOOM_NODES`` (Loom's typed nodes) and ``WEB_DIRECTORY`` are registered.  A
plug-in that fails to import is reported and skipped (also when it calls
``sys.exit`` or raises ``KeyboardInterrupt``); a node whose name is already
taken is reported, not silently overridden; a node class that cannot be
compiled is skipped with a warning naming pack, node and reason while the rest
of its pack registers.  Other declaration styles (ComfyUI's V3 entry point)
plug in as *adapters*.

A host may provide stand-ins for names a plug-in imports but the host lacks
(ComfyUI's compatibility layer does: ``comfy.*`` names Loom does not have).
It reports each use with :func:`note_unprovided`; the summary lists, per
plug-in, the names it touched, so users know which of its nodes may not work.
"""

from __future__ import annotations

import contextvars
import importlib.util
import logging
import runpy
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Callable, Iterable, Sequence

from .comfy_v1 import compile_v1
from .node import NodeDefinition
from .registry import NodeClashError, Registry

log = logging.getLogger("loom.plugins")


@dataclass(frozen=True)
class SkippedNode:
    """A node class of a plug-in that Loom could not compile; the rest of the pack loads."""

    class_type: str
    reason: str


#: Extra ways to find nodes in an imported plug-in module (e.g. ComfyUI V3);
#: an adapter lists a class it cannot compile as a :class:`SkippedNode`.
Adapter = Callable[[ModuleType, str], Sequence["NodeDefinition | SkippedNode"]]

#: The plug-in whose code is importing right now (its prestartup script included).
_loading: contextvars.ContextVar[str | None] = contextvars.ContextVar("loom_loading_plugin", default=None)
#: Plug-in name → names it used that the host does not provide (first use first).
_unprovided: dict[str, dict[str, None]] = {}


#: Called with a plug-in's name right before it imports (the compatibility
#: layer forgets its stand-in modules, so each pack's use of them is seen).
_before_import: list[Callable[[str], None]] = []


def before_plugin_import(hook: Callable[[str], None]) -> None:
    """Run ``hook(name)`` before each plug-in imports (registered once)."""
    if hook not in _before_import:
        _before_import.append(hook)


def loading_plugin() -> str | None:
    """The name of the plug-in being imported in this thread, if any."""
    return _loading.get()


def note_unprovided(name: str, plugin: str | None = None) -> None:
    """Record that ``plugin`` (default: the one importing now) used ``name``,
    a stand-in for something the host does not provide."""
    plugin = plugin or _loading.get()
    if plugin:
        _unprovided.setdefault(plugin, {})[name] = None


def unprovided_names(plugin: str) -> list[str]:
    """The stand-in names ``plugin`` has used so far (at import and since); a
    module is left out when a name inside it is listed (``comfy.sd.CLIP`` says
    ``comfy.sd``)."""
    names = list(_unprovided.get(plugin, ()))
    return [n for n in names if not any(other.startswith(n + ".") for other in names)]


@dataclass
class LoadedPlugin:
    name: str
    path: Path
    nodes: list[str]
    seconds: float
    #: Node classes of the pack that were not registered, with why.
    skipped: list[SkippedNode] = field(default_factory=list)

    @property
    def unprovided(self) -> list[str]:
        """Names the pack used that the host only has stand-ins for."""
        return unprovided_names(self.name)


@dataclass
class FailedPlugin:
    name: str
    path: Path
    error: str
    traceback: str
    #: For an import error: the module (and attribute) the plug-in wanted.
    missing: str | None = None


@dataclass
class PluginReport:
    loaded: list[LoadedPlugin] = field(default_factory=list)
    failed: list[FailedPlugin] = field(default_factory=list)
    clashes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"custom nodes: {len(self.loaded)} loaded, {len(self.failed)} failed"]
        for plugin in self.loaded:
            lines.append(f"  ok      {plugin.name} ({len(plugin.nodes)} nodes, {plugin.seconds * 1000:.0f} ms)")
            for skipped in plugin.skipped:
                lines.append(f"          skipped node {skipped.class_type}: {skipped.reason}")
            if plugin.unprovided:
                lines.append(f"          not provided by Loom (fails when used): {', '.join(plugin.unprovided)}")
        for plugin in self.failed:
            why = f"missing {plugin.missing}" if plugin.missing else plugin.error
            lines.append(f"  FAILED  {plugin.name}: {why}")
            unprovided = unprovided_names(plugin.name)
            if unprovided:
                lines.append(f"          not provided by Loom: {', '.join(unprovided)}")
        for clash in self.clashes:
            lines.append(f"  CLASH   {clash}")
        return "\n".join(lines)


def _candidates(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "__")) or entry.name.endswith(".disabled"):
            continue
        if entry.is_dir() and (entry / "__init__.py").is_file():
            found.append(entry)
        elif entry.is_file() and entry.suffix == ".py":
            found.append(entry)
    return found


def _module_name(path: Path) -> str:
    return path.stem if path.is_file() else path.name


def _missing_name(exc: BaseException) -> str | None:
    if isinstance(exc, ModuleNotFoundError) and exc.name:
        return f"module '{exc.name}'"
    if isinstance(exc, ImportError) and exc.name:
        return f"'{exc.msg.split(chr(39))[1]}' from module '{exc.name}'" if exc.msg.count("'") >= 2 else f"module '{exc.name}'"
    if isinstance(exc, AttributeError) and getattr(exc, "obj", None) is not None and exc.name:
        owner = getattr(exc.obj, "__name__", type(exc.obj).__name__)
        return f"attribute '{exc.name}' of '{owner}'"
    return None


def _import(path: Path) -> ModuleType:
    name = _module_name(path)
    init = path / "__init__.py" if path.is_dir() else path
    spec = importlib.util.spec_from_file_location(
        name, init, submodule_search_locations=[str(path)] if path.is_dir() else None)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _definitions(module: ModuleType, name: str,
                 adapters: Iterable[Adapter]) -> tuple[list[NodeDefinition], list[SkippedNode]]:
    """The pack's node definitions, and the classes that could not be compiled
    (one bad class never drops the pack)."""
    definitions: list[NodeDefinition] = []
    skipped: list[SkippedNode] = []
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None) or {}
    display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
    if not isinstance(display, dict):
        display = {}
    for class_type, cls in dict(mappings).items():
        try:
            definitions.append(compile_v1(cls, str(class_type), display.get(class_type),
                                          module=f"custom_nodes.{name}"))
        except Exception as exc:
            skipped.append(SkippedNode(str(class_type), _reason(exc)))
    definitions.extend(getattr(module, "LOOM_NODES", None) or [])
    for adapter in adapters:
        try:
            found = adapter(module, name)
        except Exception as exc:
            skipped.append(SkippedNode(f"<{getattr(adapter, '__name__', 'adapter')}>", _reason(exc)))
            continue
        for item in found:
            (skipped if isinstance(item, SkippedNode) else definitions).append(item)
    return definitions, skipped


def _abort_reason(exc: BaseException) -> str:
    """How a plug-in's code stopped: ``sys.exit`` and ``KeyboardInterrupt`` named as such."""
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return _reason(exc)


def run_prestartup_scripts(folders: Iterable[Path]) -> list[FailedPlugin]:
    """Each plug-in's ``prestartup_script.py`` runs before any plug-in imports;
    one that fails (or exits) is reported and start-up goes on."""
    failures = []
    for folder in folders:
        for path in _candidates(Path(folder)):
            script = path / "prestartup_script.py"
            if path.is_dir() and script.is_file():
                token = _loading.set(path.name)
                try:
                    runpy.run_path(str(script), run_name="__main__")
                except BaseException as exc:  # sys.exit / KeyboardInterrupt in a script too
                    failures.append(FailedPlugin(path.name, path, f"prestartup_script failed: {_abort_reason(exc)}",
                                                 traceback.format_exc()))
                    log.error("custom node '%s': prestartup_script failed:\n%s", path.name, traceback.format_exc())
                finally:
                    _loading.reset(token)
    return failures


def load_plugins(registry: Registry, folders: Iterable[Path], adapters: Sequence[Adapter] = ()) -> PluginReport:
    folders = [Path(f) for f in folders]
    report = PluginReport(failed=run_prestartup_scripts(folders))
    prestartup_failed = {f.name for f in report.failed}
    for folder in folders:
        for path in _candidates(folder):
            name = _module_name(path)
            if name in prestartup_failed:
                continue
            started = time.perf_counter()
            if name in sys.modules and not getattr(sys.modules[name], "__file__", "").startswith(str(folder)):
                report.failed.append(FailedPlugin(name, path, f"its name clashes with the installed module '{name}'", ""))
                continue
            _unprovided.pop(name, None)
            token = _loading.set(name)
            try:
                for hook in _before_import:
                    hook(name)
                module = _import(path)
                definitions, skipped = _definitions(module, name, adapters)
            except BaseException as exc:  # a broken plug-in (even one that exits) must not stop startup
                report.failed.append(FailedPlugin(name, path, _abort_reason(exc),
                                                  traceback.format_exc(), _missing_name(exc)))
                log.error("custom node '%s' failed to import:\n%s", name, traceback.format_exc())
                continue
            finally:
                _loading.reset(token)
            registered = []
            for definition in definitions:
                try:
                    registry.add(definition, origin=f"custom_nodes/{name}")
                    registered.append(definition.class_type)
                except NodeClashError as exc:
                    report.clashes.append(str(exc))
                    log.error("%s", exc)
                except Exception as exc:
                    skipped.append(SkippedNode(str(getattr(definition, "class_type", definition)), _reason(exc)))
            for node in skipped:
                log.warning("custom node pack '%s': node '%s' skipped: %s", name, node.class_type, node.reason)
            web = getattr(module, "WEB_DIRECTORY", None)
            if isinstance(web, str):
                web_path = (path if path.is_dir() else path.parent) / web
                if web_path.is_dir():
                    registry.web_directories[name] = str(web_path.resolve())
            report.loaded.append(LoadedPlugin(name, path, registered, time.perf_counter() - started, skipped))
    return report
