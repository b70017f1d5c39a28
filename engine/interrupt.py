"""The interrupt flag a running prompt checks (the sampler checks it every step)."""

from __future__ import annotations

import threading


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
