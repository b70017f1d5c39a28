"""The interrupt flag a running prompt checks.

The sampler checks it every step; :func:`raise_if_interrupted` lets code that
cannot be handed a context (the model runtime's forward hook, loops inside
``diffusion``) check the flag of the node running in this thread.
"""

from __future__ import annotations

import threading

from .node import Interrupted, current_context


class InterruptFlag:
    """Thread-safe: the server sets it from the event loop, nodes read it in the
    worker thread."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def is_set(self) -> bool:
        return self._event.is_set()


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` when the node running in this thread (or task)
    belongs to an interrupted prompt; a no-op outside a node.

    Called before every torch module's forward, so it is two attribute reads.
    """
    ctx = current_context.get()
    if ctx is not None and ctx.is_interrupted():
        raise Interrupted()
