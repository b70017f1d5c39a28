"""Finishing a hook that may be a coroutine (ComfyUI lets ``VALIDATE_INPUTS``,
``IS_CHANGED`` and ``check_lazy_status`` be ``async def``) from synchronous code.

Validation runs inside the server's event loop, where a second loop cannot be
run in the same thread; there the coroutine is finished on a short-lived
thread of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
from typing import Any


async def _wrap(awaitable: Any) -> Any:
    return await awaitable


def resolve(value: Any) -> Any:
    """``value`` itself, or what it gives when awaited to completion."""
    if not inspect.isawaitable(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_wrap(value))
    box: dict[str, Any] = {}
    # The caller's context (the running node, for progress reports) goes along.
    context = contextvars.copy_context()

    def work() -> None:
        try:
            box["value"] = asyncio.run(_wrap(value))
        except BaseException as exc:  # handed to the caller below
            box["error"] = exc

    thread = threading.Thread(target=context.run, args=(work,), name="loom-await-hook", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")
