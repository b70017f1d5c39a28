"""``comfy_api.latest`` / ``comfy_api.v0_0_2``: ``ComfyAPI`` and ``ComfyAPISync``
with ``execution.set_progress(value, max_value, node_id=None, preview_image=None)``
and the other members ComfyUI exposes there (comfy_api/latest/__init__.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.comfy_v1 import compile_v1
from engine.executor import Executor
from engine.registry import Registry

COMPAT = str(Path(__file__).resolve().parents[2] / "comfy_compat")


@pytest.fixture(autouse=True)
def comfy_modules(monkeypatch):
    monkeypatch.syspath_prepend(COMPAT)
    yield


@pytest.mark.parametrize("module, version", [("comfy_api.latest", "latest"), ("comfy_api.v0_0_2", "0.0.2")])
def test_a_pack_importing_comfy_api_and_comfy_api_sync_loads(module, version):
    import importlib

    api = importlib.import_module(module)
    for name in ("ComfyAPI", "ComfyAPISync", "ComfyExtension", "Input", "InputImpl", "Types", "io", "ui", "IO", "UI"):
        assert hasattr(api, name), name
    assert api.ComfyAPI.VERSION == version and api.ComfyAPISync.VERSION == version
    assert api.ComfyAPI.STABLE is False
    assert api.IO is api.io and api.UI is api.ui
    assert api.Input.Audio is dict and api.Input.Latent is dict


def progress_pack():
    from PIL import Image

    from comfy_api.latest import ComfyAPI, ComfyAPISync

    class SyncSteps:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"steps": ("INT", {"default": 3})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        def run(self, steps):
            api = ComfyAPISync()
            for step in range(1, steps + 1):
                api.execution.set_progress(step, steps)
            return (steps,)

    class AsyncPreview:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT", {"forceInput": True})},
                    "hidden": {"unique_id": "UNIQUE_ID"}}

        RETURN_TYPES = ()
        OUTPUT_NODE = True
        FUNCTION = "run"

        async def run(self, value, unique_id):
            await ComfyAPI().execution.set_progress(value=1, max_value=2, node_id=unique_id,
                                                    preview_image=Image.new("RGB", (8, 8), "red"))
            return {"ui": {"value": [value]}}

    registry = Registry()
    registry.add_all([compile_v1(SyncSteps, "SyncSteps"), compile_v1(AsyncPreview, "AsyncPreview")])
    return registry


def test_set_progress_from_comfy_api_sync_and_async_reports_the_running_node():
    events = []
    prompt = {"1": {"class_type": "SyncSteps", "inputs": {"steps": 3}},
              "2": {"class_type": "AsyncPreview", "inputs": {"value": ["1", 0]}}}
    outcome = Executor(progress_pack()).execute(prompt, prompt_id="p", sink=events.append)
    assert outcome.status == "success", outcome.error
    progress = [(e.node, e.value, e.max) for e in events if e.type == "progress"]
    assert progress == [("1", 1, 3), ("1", 2, 3), ("1", 3, 3), ("2", 1, 2)]
    (preview,) = [e for e in events if e.type == "preview"]
    assert preview.node == "2" and preview.image_format == "JPEG" and preview.image[:2] == b"\xff\xd8"


def test_set_progress_outside_a_running_node_needs_a_node_id():
    from comfy_api.latest import ComfyAPI, ComfyAPISync

    with pytest.raises(ValueError, match="node_id must be provided"):
        ComfyAPISync().execution.set_progress(1, 2)
    with pytest.raises(ValueError, match="node_id must be provided"):
        asyncio.run(ComfyAPI().execution.set_progress(1, 2))
