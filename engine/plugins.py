"""Loading custom-node plug-ins from folders, as ComfyUI does.

Every package (folder with ``__init__.py``) or ``.py`` file in a plug-in folder
is imported; its ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` (V1),
``LOOM_NODES`` (Loom's typed nodes) and ``WEB_DIRECTORY`` are registered.  A
plug-in that fails to import is reported and skipped; a node whose name is
already taken is reported, not silently overridden.  Other declaration styles
(ComfyUI's V3 entry point) plug in as *adapters*.
"""

from __future__ import annotations

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

#: Extra ways to find nodes in an imported plug-in module (e.g. ComfyUI V3).
Adapter = Callable[[ModuleType, str], Sequence[NodeDefinition]]


@dataclass
class LoadedPlugin:
    name: str
    path: Path
    nodes: list[str]
    seconds: float


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
        for plugin in self.failed:
            why = f"missing {plugin.missing}" if plugin.missing else plugin.error
            lines.append(f"  FAILED  {plugin.name}: {why}")
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


def _definitions(module: ModuleType, name: str, adapters: Iterable[Adapter]) -> list[NodeDefinition]:
    definitions: list[NodeDefinition] = []
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None) or {}
    display = getattr(module, "NODE_DISPLAY_NAME_MAPPINGS", None) or {}
    for class_type, cls in mappings.items():
        definitions.append(compile_v1(cls, class_type, display.get(class_type), module=f"custom_nodes.{name}"))
    definitions.extend(getattr(module, "LOOM_NODES", None) or [])
    for adapter in adapters:
        definitions.extend(adapter(module, name))
    return definitions


def run_prestartup_scripts(folders: Iterable[Path]) -> list[FailedPlugin]:
    """Each plug-in's ``prestartup_script.py`` runs before any plug-in imports."""
    failures = []
    for folder in folders:
        for path in _candidates(Path(folder)):
            script = path / "prestartup_script.py"
            if path.is_dir() and script.is_file():
                try:
                    runpy.run_path(str(script), run_name="__main__")
                except Exception as exc:
                    failures.append(FailedPlugin(path.name, path, f"prestartup_script failed: {exc}",
                                                 traceback.format_exc()))
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
            try:
                module = _import(path)
                definitions = _definitions(module, name, adapters)
            except BaseException as exc:  # a broken plug-in must not stop startup
                if isinstance(exc, KeyboardInterrupt):
                    raise
                report.failed.append(FailedPlugin(name, path, f"{type(exc).__name__}: {exc}",
                                                  traceback.format_exc(), _missing_name(exc)))
                log.error("custom node '%s' failed to import:\n%s", name, traceback.format_exc())
                continue
            registered = []
            for definition in definitions:
                try:
                    registry.add(definition, origin=f"custom_nodes/{name}")
                    registered.append(definition.class_type)
                except NodeClashError as exc:
                    report.clashes.append(str(exc))
                    log.error("%s", exc)
            web = getattr(module, "WEB_DIRECTORY", None)
            if isinstance(web, str):
                web_path = (path if path.is_dir() else path.parent) / web
                if web_path.is_dir():
                    registry.web_directories[name] = str(web_path.resolve())
            report.loaded.append(LoadedPlugin(name, path, registered, time.perf_counter() - started))
    return report
