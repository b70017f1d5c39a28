"""A real Loom server (built-in nodes, CPU) for the shipped workflows, and the tiny
random-weight models they need, installed under the exact file names the
workflows name.  Models are built once per session and only when a test asks
for them, so running one workflow's test builds only that workflow's models."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
INPUTS = WORKFLOWS / "inputs"


def shipped_files() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.json"))


def load_workflow(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / name).read_text())


class ServerThread:
    """LoomServer on its own asyncio loop in a thread, so sync tests can call it over HTTP."""

    def __init__(self, base: Path):
        self.base = base
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as exc:  # re-raised by start()
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        import nodes
        from engine.registry import Registry
        from nodes.runtime import LoomEnv
        from server.app import LoomServer
        from server.config import ServerOptions

        self.registry = Registry(env=LoomEnv.at(self.base, device="cpu", preview_method="none"))
        self.registry.add_all(nodes.builtin_nodes(), origin="builtin")
        self.server = LoomServer(self.registry, ServerOptions(port=0, preview_interval=0.0))
        await self.server.start()

    def start(self) -> "ServerThread":
        self.thread.start()
        self.ready.wait(60)
        if self.error:
            raise self.error
        self.url = f"http://127.0.0.1:{self.server.port}"
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # -- HTTP, as any client would
    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body)
        return body


@dataclass
class Run:
    """A finished prompt: its history entry, and where its files are."""

    prompt_id: str
    history: dict[str, Any]
    base: Path

    @property
    def outputs(self) -> dict[str, Any]:
        return self.history["outputs"]

    def images(self, node_id: int | str) -> list[Path]:
        records = self.outputs[str(node_id)]["images"]
        return [self.base / r["type"] / r.get("subfolder", "") / r["filename"] for r in records]

    def text(self, node_id: int | str) -> list[str]:
        return self.outputs[str(node_id)]["text"]


class Host:
    """The test server plus its folders: install models and input images, run workflows."""

    def __init__(self, server: ServerThread, models: "ModelFactory"):
        self.server = server
        self.base = server.base
        self.models = models

    @property
    def registry(self):
        return self.server.registry

    def install_model(self, kind: str, source: Path, name: str) -> None:
        """Link a built model into models/<kind> under the name the workflow expects."""
        folder = self.base / "models" / kind
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if not target.exists():
            os.symlink(source, target)

    def install_input(self, name: str, size: tuple[int, int] | None = None) -> Path:
        """Put a shipped example image into input/ under its own name; with ``size``, a
        downscaled copy (same picture) so a tiny model on a CPU handles it in seconds."""
        from PIL import Image

        folder = self.base / "input"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if size is None:
            shutil.copyfile(INPUTS / name, target)
        else:
            with Image.open(INPUTS / name) as picture:
                # NEAREST keeps the inpainting image's transparent hole hard-edged.
                picture.resize(size, Image.NEAREST).save(target)
        return target

    def object_info(self) -> dict[str, Any]:
        return self.server.get("/object_info")

    def queue_workflow(self, workflow: dict[str, Any]) -> tuple[int, Any]:
        return self.server.request("POST", "/prompt", {"workflow": workflow, "client_id": "workflows-tests"})

    def run_workflow(self, workflow: dict[str, Any], timeout: float = 300.0) -> Run:
        """POST the UI-format workflow (the server converts it), wait for its history entry."""
        status, body = self.queue_workflow(workflow)
        assert status == 200, f"the server refused the workflow: {json.dumps(body)[:2000]}"
        prompt_id = body["prompt_id"]
        deadline = time.monotonic() + timeout
        while True:
            history = self.server.get(f"/history/{prompt_id}")
            if prompt_id in history:
                entry = history[prompt_id]
                status = entry.get("status", {})
                assert status.get("status_str") == "success", \
                    f"the workflow failed: {json.dumps(status.get('messages'))[:3000]}"
                return Run(prompt_id, entry, self.base)
            assert time.monotonic() < deadline, f"prompt {prompt_id} did not finish in {timeout} s"
            time.sleep(0.05)


class ModelFactory:
    """Tiny random-weight models in the real file layouts, each built at most once."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.built: dict[str, Any] = {}

    def _once(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self.built:
            self.built[key] = make()
        return self.built[key]

    def checkpoint(self, kind: str):
        """A TinyModel (single-file checkpoint + diffusers folder) of kind sd1, sdxl, sd1_inpaint..."""
        from tests.fixtures.tiny_models import build

        return self._once(kind, lambda: build(kind, self.folder / kind))

    def _sd1_unet(self):
        from diffusers import UNet2DConditionModel

        return self._once("sd1_unet", lambda: UNet2DConditionModel.from_pretrained(
            self.checkpoint("sd1").diffusers_dir, subfolder="unet", local_files_only=True))

    def lora(self) -> Path:
        """A kohya-layout LoRA over the tiny SD1's UNet and text encoder."""
        from transformers import CLIPTextModel

        from tests.fixtures.tiny_extras import kohya_lora_state, save

        def make() -> Path:
            text_encoder = CLIPTextModel.from_pretrained(self.checkpoint("sd1").diffusers_dir,
                                                         subfolder="text_encoder", local_files_only=True)
            return save(kohya_lora_state(self._sd1_unet(), [text_encoder], scale=0.5),
                        self.folder / "lora" / "tiny_lora.safetensors")

        return self._once("lora", make)

    def controlnet(self) -> Path:
        """A ControlNet for the tiny SD1, original ``control_model.*`` single-file layout."""
        from tests.fixtures.tiny_extras import tiny_controlnet

        return self._once("controlnet", lambda: tiny_controlnet(self._sd1_unet(), self.folder / "controlnet")[0])

    def esrgan(self) -> Path:
        """A 4x ESRGAN (RRDBNet) with Real-ESRGAN's new-arch key names."""
        from tests.fixtures.tiny_extras import esrgan_new_state, esrgan_old_state, save

        return self._once("esrgan", lambda: save(esrgan_new_state(esrgan_old_state(scale=4)),
                                                 self.folder / "esrgan" / "tiny_esrgan_x4.safetensors"))

    def clip(self) -> tuple[Path, Path]:
        """A tiny CLIPModel as one .safetensors file and its CLIPConfig .json."""
        from tests.fixtures.tiny_extras import tiny_clip

        def make() -> tuple[Path, Path]:
            _, single, _ = tiny_clip(self.folder / "clip")
            return single, single.with_suffix(".json")

        return self._once("clip", make)


@pytest.fixture(scope="session")
def model_factory(tmp_path_factory) -> ModelFactory:
    return ModelFactory(tmp_path_factory.mktemp("workflow_models"))


@pytest.fixture(scope="session")
def host(tmp_path_factory, model_factory):
    """One server for every shipped workflow, so loaded models are shared between tests."""
    server = ServerThread(tmp_path_factory.mktemp("loom")).start()
    yield Host(server, model_factory)
    server.stop()
