"""Read-only description routes: nodes, models, the machine, the API itself."""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .jsonio import json_response
from .device import detect_device, package_version
from .http_errors import ApiError
from .openapi import openapi_spec

if TYPE_CHECKING:
    from .app import LoomServer

log = logging.getLogger("loom.server")


_SECRET_FLAGS = ("--auth-token",)
MASK = "***"


def masked_argv(argv: list[str], token: str | None) -> list[str]:
    """The command line with the access token hidden: ``/system_stats`` is
    readable by any page allowed to talk to the server, and must not hand out
    the secret that guards it."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(MASK)
            hide_next = False
        elif arg in _SECRET_FLAGS:
            out.append(arg)
            hide_next = True
        elif arg.startswith(tuple(flag + "=" for flag in _SECRET_FLAGS)):
            out.append(arg.split("=", 1)[0] + "=" + MASK)
        elif token and token in arg:
            out.append(arg.replace(token, MASK))
        else:
            out.append(arg)
    return out


class InfoRoutes:
    def __init__(self, server: "LoomServer"):
        self.server = server

    def register(self, add) -> None:
        add("GET", "/object_info", self.object_info)
        add("GET", "/object_info/{node_class}", self.object_info_one)
        add("GET", "/embeddings", self.embeddings)
        add("GET", "/models", self.model_kinds)
        add("GET", "/models/{folder}", self.models)
        add("GET", "/system_stats", self.system_stats)
        add("GET", "/features", self.features)
        add("GET", "/openapi.json", self.openapi)

    async def object_info(self, request: web.Request) -> web.Response:
        from engine.object_info import node_info

        registry = self.server.registry
        out: dict[str, Any] = {}
        for definition in registry:
            try:
                out[definition.class_type] = node_info(definition.schema(registry.env))
            except Exception:  # one broken plug-in node must not hide the others
                log.exception("could not describe node %s", definition.class_type)
        return json_response(out)

    async def object_info_one(self, request: web.Request) -> web.Response:
        from engine.object_info import node_info

        registry = self.server.registry
        name = request.match_info["node_class"]
        definition = registry.get(name)
        if definition is None:
            return json_response({})
        return json_response({name: node_info(definition.schema(registry.env))})

    async def embeddings(self, request: web.Request) -> web.Response:
        names = self.server.folders.list_models("embeddings")
        return json_response([os.path.splitext(n)[0] for n in names])

    async def model_kinds(self, request: web.Request) -> web.Response:
        from nodes.folders import MODEL_KINDS

        folders = self.server.folders
        kinds = list(dict.fromkeys([*MODEL_KINDS, *folders.extra_model_dirs, *folders.preferred_model_dirs]))
        return json_response(kinds)

    async def models(self, request: web.Request) -> web.Response:
        from nodes.folders import MODEL_KINDS, canonical_kind

        folder = request.match_info["folder"]
        folders = self.server.folders
        try:
            kind = canonical_kind(folder)
        except ValueError:
            kind = None
        known = {*MODEL_KINDS, *folders.extra_model_dirs, *folders.preferred_model_dirs}
        if kind not in known:
            raise ApiError(404, "unknown_model_folder",
                           f"no model folder '{folder[:60]}'; known: {', '.join(sorted(known))}")
        return json_response(folders.list_models(kind))

    async def system_stats(self, request: web.Request) -> web.Response:
        import psutil

        device = detect_device(self.server.device_setting)
        memory = psutil.virtual_memory()
        # ComfyUI's model_management reports the CPU device's memory as its
        # "VRAM": on a CPU machine the device entry holds the RAM figures.
        vram_total, vram_free = ((memory.total, memory.available) if device.type == "cpu"
                                 else (device.vram_total, device.vram_free))
        return json_response({
            "system": {
                "os": os.name,
                "ram_total": memory.total,
                "ram_free": memory.available,
                "comfyui_version": f"loom-{package_version('loom')}",
                "loom_version": package_version("loom"),
                "python_version": sys.version,
                "pytorch_version": package_version("torch"),
                "embedded_python": False,
                "argv": masked_argv(sys.argv, self.server.options.auth_token),
            },
            "devices": [{
                "name": device.describe(),
                "type": device.type,
                "index": device.index,
                "vram_total": vram_total,
                "vram_free": vram_free,
                "torch_vram_total": vram_total,
                "torch_vram_free": vram_free,
            }],
            "workers": await self.server.describe_workers(),
        })

    async def features(self, request: web.Request) -> web.Response:
        return json_response(self.server.features())

    async def openapi(self, request: web.Request) -> web.Response:
        return json_response(openapi_spec())
