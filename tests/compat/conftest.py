"""A real Loom server built the way ``loom serve`` builds it (``build_host`` →
compat layer installed → plug-ins loaded → ``PromptServer.instance`` bound),
with the test packs from :mod:`.packs` in its ``custom_nodes/`` folder."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from server.app import LoomServer
from server.cli import parser
from server.config import ServerOptions
from server.host import build_host
from tests.server.conftest import Running

from .packs import ALL_PACKS, ROUTE_PACK_JS


def write_packs(base: Path, packs: dict[str, str]) -> None:
    for name, source in packs.items():
        folder = base / "custom_nodes" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").write_text(source)
    if "route_pack" in packs:
        js = base / "custom_nodes" / "route_pack" / "js"
        js.mkdir(exist_ok=True)
        (js / "announce.js").write_text(ROUTE_PACK_JS)


def forget_packs(names) -> None:
    """Plug-ins are imported under their own names; drop them so the next test's
    server imports its fresh copies."""
    for name in list(sys.modules):
        if name.split(".")[0] in names:
            del sys.modules[name]


class CompatRunning(Running):
    host: Any = None

    def pack(self, name: str) -> Any:
        return sys.modules[name]


@pytest.fixture
async def compat(tmp_path: Path):
    """A started server with every test pack; stopped (and the packs forgotten) afterwards."""
    base = tmp_path / "base"
    write_packs(base, ALL_PACKS)
    host = build_host(parser().parse_args(["serve", "--base-directory", str(base), "--cpu"]))
    options = ServerOptions(port=0, web_root=base / "web", preview_interval=0.0)
    server = LoomServer(host.registry, options, device="cpu")
    host.on_server(server)
    await server.start()
    session = aiohttp.ClientSession()
    run = CompatRunning(server, base, session, options)
    run.host = host
    try:
        yield run
    finally:
        await session.close()
        await server.stop()
        forget_packs(ALL_PACKS)
