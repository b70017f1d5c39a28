"""``loom run workflows/<file>.json``: the shipped UI files run from the terminal too —
the model-free one to completion, one whose checkpoint is missing refused with the file
and the folder to put it in."""

from __future__ import annotations

import shutil

import numpy as np
from PIL import Image

from server.cli import main

from .conftest import INPUTS, WORKFLOWS
from .test_shipped_workflows_run import image_only_expected


def test_image_only_runs_from_the_terminal_with_no_models(tmp_path, capsys):
    base = tmp_path / "base"
    (base / "input").mkdir(parents=True)
    for name in ("loom_scene.png", "loom_pattern.png"):
        shutil.copyfile(INPUTS / name, base / "input" / name)
    code = main(["run", str(WORKFLOWS / "image_only.json"), "--base-directory", str(base), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    [saved] = (base / "output").glob("image_only_*.png")
    assert str(saved) in out
    with Image.open(saved) as picture:
        got = np.asarray(picture.convert("RGB"), dtype=np.int16)
    assert got.shape == (512, 512, 3)
    assert np.abs(got - image_only_expected()).max() <= 1


def test_txt2img_from_the_terminal_without_its_checkpoint_says_which_file_and_where(tmp_path, capsys):
    code = main(["run", str(WORKFLOWS / "txt2img_sd15.json"), "--base-directory", str(tmp_path / "base"), "--quiet"])
    captured = capsys.readouterr()
    said = captured.out + captured.err
    assert code == 2
    assert "v1-5-pruned-emaonly-fp16.safetensors" in said and "models/checkpoints" in said
