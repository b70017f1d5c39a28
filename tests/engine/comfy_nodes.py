"""ComfyUI V1 node classes the conformance tests run, written as packs write them."""

from __future__ import annotations

import asyncio
import collections

from engine.comfy_v1 import compile_v1
from engine.node import ExecutionBlocker
from engine.registry import Registry

#: class name → times its FUNCTION ran (reset by each registry built).
RUNS: collections.Counter[str] = collections.Counter()


class Value:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 0, "min": -10**6, "max": 10**6})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        RUNS["Value"] += 1
        return (value,)


class Twice:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        RUNS["Twice"] += 1
        return (value * 2,)


class Mix:
    """ComfyUI's image-mix pattern: mask 0 → image1 only, 1 → image2 only,
    anything else → both; the mask decides which lazy image is evaluated."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "image1": ("INT", {"lazy": True, "forceInput": True}),
            "image2": ("INT", {"lazy": True, "forceInput": True}),
            "mask": ("INT", {"forceInput": True}),
        }}

    RETURN_TYPES = ("INT",)
    FUNCTION = "mix"

    def check_lazy_status(self, mask, image1, image2):
        needed = []
        if image1 is None and mask != 1:
            needed.append("image1")
        if image2 is None and mask != 0:
            needed.append("image2")
        return needed

    def mix(self, mask, image1, image2):
        RUNS["Mix"] += 1
        if mask == 0:
            return (image1,)
        if mask == 1:
            return (image2,)
        return (image1 + image2,)


class AsyncMix(Mix):
    """The same, with an async check_lazy_status and an async function."""

    async def check_lazy_status(self, mask, image1, image2):
        await asyncio.sleep(0)
        return Mix.check_lazy_status(self, mask, image1, image2)

    async def mix(self, mask, image1, image2):
        await asyncio.sleep(0.01)
        return Mix.mix(self, mask, image1, image2)


class AsyncTwice(Twice):
    async def run(self, value):
        await asyncio.sleep(0.01)
        RUNS["AsyncTwice"] += 1
        return (value * 2,)


class Output:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    RETURN_TYPES = ()
    FUNCTION = "show"
    OUTPUT_NODE = True

    def show(self, value):
        RUNS["Output"] += 1
        return {"ui": {"value": [value]}}


def registry_of(*classes: type) -> Registry:
    RUNS.clear()
    registry = Registry()
    registry.add_all(compile_v1(cls, cls.__name__) for cls in classes)
    return registry


__all__ = ["RUNS", "Value", "Twice", "Mix", "AsyncMix", "AsyncTwice", "Output", "registry_of", "ExecutionBlocker"]
