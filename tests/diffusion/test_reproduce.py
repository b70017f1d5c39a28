"""A PNG saved by a tiny-model txt2img carries everything needed to make it again:
``loom run`` on that PNG writes a byte-identical PNG."""

from __future__ import annotations

import json
import os

from tests.diffusion.conftest import txt2img_prompt


def loom_run(base, workflow) -> set:
    from server.cli import main

    before = set((base / "output").glob("*.png")) if (base / "output").exists() else set()
    assert main(["run", str(workflow), "--base-directory", str(base), "--cpu", "--quiet"]) == 0
    return set((base / "output").glob("*.png")) - before


def test_loom_run_on_a_saved_png_reproduces_identical_bytes(tiny, tmp_path):
    from PIL import Image

    base = tmp_path / "loom"
    (base / "models" / "checkpoints").mkdir(parents=True)
    model = tiny("sd1")
    os.symlink(model.checkpoint, base / "models" / "checkpoints" / model.checkpoint.name)
    prompt = txt2img_prompt(model.checkpoint.name, sampler="dpmpp_2m", scheduler="karras", seed=1234, cfg=6.5)
    (tmp_path / "prompt.json").write_text(json.dumps(prompt))

    [first] = loom_run(base, tmp_path / "prompt.json")
    assert json.loads(Image.open(first).text["prompt"]) == prompt
    [second] = loom_run(base, first)
    assert second != first and second.read_bytes() == first.read_bytes()
