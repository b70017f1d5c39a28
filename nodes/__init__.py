"""Loom's built-in nodes, grouped by domain, one module each.

``builtin_nodes()`` collects them.  Importing this package imports no torch:
node modules import torch, numpy and PIL inside the node functions.
"""

from __future__ import annotations

import importlib

from engine.declare import collect_nodes
from engine.node import NodeDefinition

#: The node modules, in the order their nodes are registered; a module's nodes are
#: the node definitions it declares (engine.declare.collect_nodes), in declaration order.
NODE_MODULES = (
    "nodes.primitives",
    "nodes.strings",
    "nodes.math",
    "nodes.image",
    "nodes.io",
    "nodes.loaders",
    "nodes.conditioning",
    "nodes.sampling",
    "nodes.latent",
    # capabilities: LoRA, ControlNet, masks, upscaling, CLIP ranking
    "nodes.masks",
    "nodes.preprocess",
    "nodes.latent_resize",
    "nodes.upscale",
    "nodes.lora",
    "nodes.controlnet",
    "nodes.clip_ranking",
    # nodes ComfyUI's example workflows use
    "nodes.custom_sampling",
    "nodes.gligen",
    "nodes.clip_vision",
    "nodes.unclip",
    "nodes.model_sampling",
    # FLUX.1, SD3 and custom-sampling guiders
    "nodes.flux",
    "nodes.sd3",
    "nodes.guiders",
    # ComfyUI's latent batch and .latent file nodes
    "nodes.latent_batch",
    "nodes.latent_files",
)


def builtin_nodes() -> list[NodeDefinition]:
    """Every built-in node definition."""
    definitions: dict[int, NodeDefinition] = {}  # by identity: a node one module imports from another counts once
    for name in NODE_MODULES:
        for definition in collect_nodes(vars(importlib.import_module(name)).values()):
            definitions.setdefault(id(definition), definition)
    return list(definitions.values())


def __getattr__(name: str):
    # ComfyUI compatibility: custom packs `import nodes` and read
    # NODE_CLASS_MAPPINGS, MAX_RESOLUTION, KSampler, SaveImage...  Those names come from
    # comfy_compat/ (loom_compat.nodes_surface) once the host has installed it; Loom's own
    # code never uses them, and without the layer this is a plain AttributeError.
    import sys

    surface = sys.modules.get("loom_compat.nodes_surface")
    if surface is None or name.startswith("__"):
        raise AttributeError(f"module 'nodes' has no attribute '{name}'")
    return surface.comfy_attribute(name)
