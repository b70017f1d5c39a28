"""A real Loom server (built-in nodes, CPU) for the shipped workflows, and the tiny
random-weight models they need, installed under the exact file names the
workflows name.  Models are built once per session and only when a test asks
for them, so running one workflow's test builds only that workflow's models."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.server_thread import ServerThread

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
INPUTS = WORKFLOWS / "inputs"


def shipped_files() -> list[str]:
    return sorted(p.name for p in WORKFLOWS.glob("*.json"))


def load_workflow(name: str) -> dict[str, Any]:
    return json.loads((WORKFLOWS / name).read_text())


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
        """Link a built model into models/<kind> under the name the workflow expects (the FLUX.1
        and SD3 examples name the same text encoder files: the last test's models win)."""
        folder = self.base / "models" / kind
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if target.is_symlink() and target.resolve() != Path(source).resolve():
            target.unlink()
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

    def flux(self):
        """Tiny FLUX.1 files (dev, schnell transformers in BFL's layout; t5xxl, clip_l; ae.safetensors)."""
        from tests.fixtures.tiny_flux import build

        return self._once("flux", lambda: build(self.folder / "flux"))

    def sd3(self):
        """Tiny SD3/SD3.5 files (MMDiT transformers, all-in-one checkpoints; clip_l, clip_g, t5xxl; the VAE)."""
        from tests.fixtures.tiny_sd3 import build

        return self._once("sd3", lambda: build(self.folder / "sd3"))

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
    server = ServerThread(tmp_path_factory.mktemp("loom"), preview_method="none").start()
    yield Host(server, model_factory)
    server.stop()
