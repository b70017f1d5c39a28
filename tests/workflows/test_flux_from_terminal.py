"""``loom run`` on the shipped FLUX.1 workflows: the UI files run from the terminal with the
Flux files installed under the names they give (tiny models, small sizes, 2 steps)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from server.cli import main

from .conftest import load_workflow
from .generate import CLIP_L, FLUX_AE, FLUX_DEV, FLUX_SCHNELL, T5XXL
from .ui_format import _registry
from .ui import with_widgets

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name, transformer, file, small", [
    ("txt2img_flux_schnell.json", "schnell", FLUX_SCHNELL,
     {"KSampler": {"steps": 2}, "EmptySD3LatentImage": {"width": 48, "height": 32}}),
    ("txt2img_flux_dev.json", "dev", FLUX_DEV,
     {"BasicScheduler": {"steps": 2}, "EmptySD3LatentImage": {"width": 48, "height": 32},
      "ModelSamplingFlux": {"width": 48, "height": 32}}),
])
def test_flux_workflow_runs_from_the_terminal(tmp_path, capsys, model_factory, name, transformer, file, small):
    flux = model_factory.flux()
    base = tmp_path / "base"
    for kind, source, target in (("diffusion_models", flux.files[transformer], file["name"]),
                                 ("text_encoders", flux.files["t5"], T5XXL["name"]),
                                 ("text_encoders", flux.files["clip_l"], CLIP_L["name"]),
                                 ("vae", flux.files["vae"], FLUX_AE["name"])):
        (base / "models" / kind).mkdir(parents=True, exist_ok=True)
        os.symlink(source, base / "models" / kind / target)
    workflow = with_widgets(load_workflow(name), _registry().schema, small)
    path = tmp_path / name
    path.write_text(json.dumps(workflow))
    code = main(["run", str(path), "--base-directory", str(base), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    [saved] = (base / "output").glob(f"{name.removesuffix('.json')}_*.png")
    with Image.open(saved) as picture:
        assert picture.size == (48, 32)
