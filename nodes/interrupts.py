"""Wire the engine's interrupt into the model runtime (``diffusion.interrupt_hooks``).

Kept here because it joins the two: ``diffusion`` knows torch but not the engine,
the engine knows the flag but never imports torch.
"""

from __future__ import annotations


def watch_interrupts() -> None:
    """From now on, every torch module call in this process checks the running
    prompt's interrupt flag first.  Idempotent and cheap to call again."""
    from diffusion.interrupt_hooks import install, installed
    from engine.interrupt import raise_if_interrupted

    if not installed():
        install(raise_if_interrupted)
