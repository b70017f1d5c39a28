"""Building a host from command-line options: folders, env, registry, plug-ins.

Shared by ``loom serve`` and ``loom run`` (same folders, same nodes).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.registry import Registry


@dataclass
class Host:
    registry: Registry
    plugin_report: Any  # engine.plugins.PluginReport | None
    builtin_count: int
    #: Called with the server object once it exists (ComfyUI compat: PromptServer.instance).
    on_server: Any = None

    @property
    def env(self) -> Any:
        return self.registry.env

    @property
    def folders(self) -> Any:
        return self.registry.env.folders


def _lru_policy(text: str) -> str:
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of results, got {text!r}") from None
    if size < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {size}")
    return "classic" if size == 0 else f"lru:{size}"


def add_folder_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("folders")
    group.add_argument("--base-directory", default=".", metavar="DIR",
                       help="where models/, input/, output/, temp/, user/ and custom_nodes/ live (default: .)")
    group.add_argument("--output-directory", metavar="DIR", help="where outputs are saved (default: BASE/output)")
    group.add_argument("--input-directory", metavar="DIR", help="where input images are read (default: BASE/input)")
    group.add_argument("--temp-directory", metavar="DIR", help="where previews go (default: BASE/temp)")
    group.add_argument("--user-directory", metavar="DIR",
                       help="settings, saved workflows and the queue database (default: BASE/user)")
    group.add_argument("--models-dir", metavar="DIR", help="the models folder (default: BASE/models)")
    group.add_argument("--extra-model-paths-config", action="append", metavar="YAML",
                       help="ComfyUI's extra_model_paths.yaml (repeatable)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU even if a GPU is present")
    parser.add_argument("--preview-method", choices=("auto", "latent2rgb", "taesd", "none"), default="latent2rgb",
                        help="live sampling previews: taesd needs models/vae_approx/taesd_decoder.safetensors "
                             "(taesdxl_ for SDXL); auto uses it when present, else latent2rgb")
    parser.add_argument("--cache", default="classic", metavar="classic|lru:N|none",
                        help="how node results are kept between prompts (default: classic)")
    # ComfyUI's spellings of the same choice (the last one given wins).
    parser.add_argument("--cache-classic", dest="cache", action="store_const", const="classic",
                        help="same as --cache classic (ComfyUI's flag)")
    parser.add_argument("--cache-lru", dest="cache", type=_lru_policy, metavar="N",
                        help="same as --cache lru:N; 0 means classic (ComfyUI's flag)")
    parser.add_argument("--cache-none", dest="cache", action="store_const", const="none",
                        help="same as --cache none (ComfyUI's flag)")
    parser.add_argument("--disable-custom-nodes", action="store_true", help="load no plug-ins")
    parser.add_argument("--verbose", action="store_true", help="log debug messages")


def build_host(args: argparse.Namespace) -> Host:
    import nodes
    from nodes.folders import Folders
    from nodes.runtime import LoomEnv

    folders = Folders.from_options(
        Path(args.base_directory),
        output_directory=args.output_directory,
        input_directory=args.input_directory,
        temp_directory=args.temp_directory,
        user_directory=args.user_directory,
        models_dir=args.models_dir,
        extra_model_paths_config=args.extra_model_paths_config,
    )
    env = LoomEnv(folders=folders, device="cpu" if args.cpu else "auto", preview_method=args.preview_method)
    from .precision_options import memory_policy

    env.memory = memory_policy(args)  # ComfyUI's --force-fp16 / --lowvram ... (warnings printed once)
    registry = Registry(env=env)
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    builtin = len(registry)
    report = None
    if not args.disable_custom_nodes:
        from engine.plugins import load_plugins

        compat = install_comfy_compat(registry)
        report = load_plugins(registry, folders.custom_nodes, adapters=compat.adapters)
        return Host(registry=registry, plugin_report=report, builtin_count=builtin,
                    on_server=compat.bind_server)
    return Host(registry=registry, plugin_report=report, builtin_count=builtin)


def install_comfy_compat(registry: Registry) -> Any:
    """ComfyUI's import surface for custom nodes (``folder_paths``, ``comfy.*``,
    ``comfy_api``...): the ``comfy_compat/`` folder goes on ``sys.path`` and is
    bound to this host before plug-ins import.  Loom's own code never imports it."""
    import sys

    folder = str(Path(__file__).resolve().parent.parent / "comfy_compat")
    if folder not in sys.path:
        sys.path.append(folder)
    import loom_compat

    return loom_compat.install(registry)


def plugin_summary(host: Host) -> str:
    plugins = len(host.registry) - host.builtin_count
    line = f"nodes: {host.builtin_count} built-in, {plugins} from plug-ins"
    if host.plugin_report is None:
        return line + " (plug-ins disabled)"
    return line + "\n" + host.plugin_report.summary()
