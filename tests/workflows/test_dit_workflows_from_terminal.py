"""``loom run`` on the shipped FLUX.1 and SD3.5 workflows: the UI files run from the terminal with
the model files installed under the names they give (tiny models, small sizes, 2 steps)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from server.cli import main

from .conftest import load_workflow
from .generate import CLIP_G, CLIP_L, FLUX_AE, FLUX_DEV, FLUX_SCHNELL, SD35_LARGE, T5XXL
from .ui_format import _registry
from .ui import with_widgets

pytestmark = pytest.mark.slow

SMALL_LATENT = {"EmptySD3LatentImage": {"width": 48, "height": 32}}


def _flux_files(transformer: str, file: dict):
    return lambda factory: ((file, factory.flux().files[transformer]), (T5XXL, factory.flux().files["t5"]),
                            (CLIP_L, factory.flux().files["clip_l"]), (FLUX_AE, factory.flux().files["vae"]))


def _sd35_files(factory):
    sd3 = factory.sd3()
    return ((SD35_LARGE, sd3.files["checkpoint_bare"]), (CLIP_L, sd3.files["clip_l"]), (CLIP_G, sd3.files["clip_g"]),
            (T5XXL, sd3.files["t5"]))


@pytest.mark.parametrize("name, files, small", [
    ("txt2img_flux_schnell.json", _flux_files("schnell", FLUX_SCHNELL), {"KSampler": {"steps": 2}, **SMALL_LATENT}),
    ("txt2img_flux_dev.json", _flux_files("dev", FLUX_DEV),
     {"BasicScheduler": {"steps": 2}, "ModelSamplingFlux": {"width": 48, "height": 32}, **SMALL_LATENT}),
    ("txt2img_sd35.json", _sd35_files, {"KSampler": {"steps": 2}, **SMALL_LATENT}),
])
def test_workflow_runs_from_the_terminal(tmp_path, capsys, model_factory, name, files, small):
    base = tmp_path / "base"
    for model, source in files(model_factory):
        folder = base / "models" / model["directory"]
        folder.mkdir(parents=True, exist_ok=True)
        os.symlink(source, folder / model["name"])
    workflow = with_widgets(load_workflow(name), _registry().schema, small)
    path = tmp_path / name
    path.write_text(json.dumps(workflow))
    code = main(["run", str(path), "--base-directory", str(base), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    [saved] = (base / "output").glob(f"{name.removesuffix('.json')}_*.png")
    with Image.open(saved) as picture:
        assert picture.size == (48, 32)
