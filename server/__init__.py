"""Loom's server: ComfyUI's HTTP and websocket API over a durable queue.

Importing this package is cheap (no torch, no aiohttp): the pieces are in
submodules — ``server.app`` (the aiohttp application), ``server.store`` (SQLite
queue and history), ``server.hub`` (websocket fan-out), ``server.worker`` (the
thread that runs the engine) and ``server.cli`` (``loom serve`` / ``loom run``).
"""
