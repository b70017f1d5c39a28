"""Stop any torch model mid-forward when the running prompt is interrupted.

One mechanism for every model node (VAE, text encoders, upscalers, CLIP vision,
CLIP ranking, samplers, and the models custom nodes bring): a single *global*
forward pre-hook (``torch.nn.modules.module.register_module_forward_pre_hook``)
calls a check before every module's ``forward``.  The check is injected by the
host (``nodes.interrupts``), because this package does not know the engine: it
reads the running node's interrupt flag and raises the engine's ``Interrupted``,
so the node ends with ``execution_interrupted``.

The latency is therefore one leaf module (a single convolution or matmul), not
one whole decode.  Work that is not a module call (reading tensors while
loading, tile loops) calls :func:`check_interrupt` itself.

Cost: a global hook makes torch take its slower module-call path (a few µs per
call, mostly the hook's own Python call); ``bench/interrupt_hooks.py`` measures
it against the same model without the hook.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

_check: Callable[[], None] | None = None
_handle: Any = None
_lock = threading.Lock()


def install(check: Callable[[], None]) -> None:
    """Make every module call run ``check()`` first (idempotent; the last check wins).

    ``check`` must be cheap (a flag read) and raise to stop the model.
    """
    global _check, _handle
    _check = check
    with _lock:
        if _handle is None:
            import torch

            _handle = torch.nn.modules.module.register_module_forward_pre_hook(_before_forward)


def uninstall() -> None:
    """Remove the hook (benchmarks compare with and without it)."""
    global _check, _handle
    with _lock:
        if _handle is not None:
            _handle.remove()
        _handle, _check = None, None


def installed() -> bool:
    return _handle is not None


def check_interrupt() -> None:
    """Raise if the running prompt was interrupted: for loops between module calls
    (tensors read from a file, tiles), which the forward hook does not see."""
    check = _check
    if check is not None:
        check()


def _before_forward(module: Any, args: Any) -> None:
    check = _check
    if check is not None:
        check()
    return None  # inputs unchanged
