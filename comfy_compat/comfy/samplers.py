"""ComfyUI's ``comfy.samplers``: the sampler and scheduler names packs offer in
their own combos, read from Loom's one sampler table (``diffusion.schedules``)."""

from __future__ import annotations

import sys
from typing import Any


def _names(attr: str) -> list[str]:
    # Imported on first use: diffusion.schedules pulls in the model runtime.
    from diffusion import schedules

    return list(getattr(schedules, attr))


class _Names:
    """A class attribute computed when read (``KSampler.SAMPLERS``)."""

    def __init__(self, attr: str):
        self.attr = attr

    def __get__(self, obj: Any, owner: Any) -> list[str]:
        return _names(self.attr)


class KSampler:
    SAMPLERS = _Names("SAMPLER_NAMES")
    SCHEDULERS = _Names("SCHEDULER_NAMES")


def __getattr__(name: str) -> Any:
    if name == "SAMPLER_NAMES":
        return _names("SAMPLER_NAMES")
    if name in ("SCHEDULER_NAMES", "SCHEDULER_HANDLERS"):
        return _names("SCHEDULER_NAMES")
    from loom_compat import placeholders

    return placeholders.attribute(__name__, name)
