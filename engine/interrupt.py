"""The interrupt flag a running prompt checks.

The sampler checks it every step; :func:`raise_if_interrupted` lets code that
cannot be handed a context (the model runtime's forward hook, loops inside
``diffusion``) check the flag of the node running in this thread.
"""

from __future__ import annotations

from .node import Interrupted, current_context


class InterruptFlag:
    """Thread-safe: the server sets it from the event loop, nodes read it in the
    worker thread.  Nobody waits on it, so it is a plain attribute (assigning
    one is atomic) rather than a ``threading.Event``, whose condition and lock
    cost more to make and clear than a trivial prompt's node does to run."""

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set


def raise_if_interrupted() -> None:
    """Raise :class:`Interrupted` when the node running in this thread (or task)
    belongs to an interrupted prompt; a no-op outside a node.

    Called before every torch module's forward, so it is two attribute reads.
    """
    ctx = current_context.get()
    if ctx is not None and ctx.is_interrupted():
        raise Interrupted()
