"""The README's custom-node examples work as printed.

Each code block the README marks with ``<!-- readme-example: PATH -->`` is
written to PATH under a temporary Loom folder, loaded the way ``loom serve``
loads plug-ins, and its example prompt is run with ``loom run``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.object_info import object_info
from engine.plugins import load_plugins
from engine.registry import Registry
from nodes.runtime import LoomEnv

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"<!-- readme-example: (\S+) -->\s*\n```(\w+)\n(.*?)\n```", re.DOTALL)

TYPED = "custom_nodes/brightness.py"
V1 = "custom_nodes/posterize.py"
PROMPT = "posterize.json"


def readme_examples() -> dict[str, str]:
    """Marked code blocks of README.md by the path they are written to."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return {path: code + "\n" for path, _lang, code in EXAMPLE.findall(text)}


@pytest.fixture
def base(tmp_path) -> Path:
    """A Loom folder holding the README's files and an input picture."""
    from PIL import Image

    for path, code in readme_examples().items():
        target = tmp_path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(code, encoding="utf-8")
    (tmp_path / "input").mkdir()
    picture = Image.new("RGB", (4, 2))
    picture.putdata(PIXELS)
    picture.save(tmp_path / "input" / "photo.png")
    return tmp_path


PIXELS = [(0, 0, 0), (40, 90, 130), (100, 150, 200), (255, 255, 255),
          (10, 60, 250), (170, 85, 5), (128, 128, 128), (200, 30, 90)]


def expected_pixel(pixel: tuple[int, ...], amount: float, levels: int) -> tuple[int, ...]:
    """Brightness then Posterize, as the README describes them, on 8-bit values."""
    out = []
    for value in pixel:
        bright = min(value / 255 * amount, 1.0)
        poster = round(bright * (levels - 1)) / (levels - 1)
        out.append(round(poster * 255))
    return tuple(out)


def test_the_readme_marks_both_custom_node_styles_and_a_prompt():
    assert set(readme_examples()) == {TYPED, V1, PROMPT}


def test_the_readme_nodes_load_as_plugins_with_the_declared_inputs(base):
    registry = Registry(env=LoomEnv.at(base, device="cpu"))
    try:
        report = load_plugins(registry, [base / "custom_nodes"])
    finally:
        for name in ("brightness", "posterize"):
            sys.modules.pop(name, None)
    assert report.failed == [] and report.clashes == []
    info = object_info(registry)
    assert info["Brightness"]["input"]["required"]["amount"] == [
        "FLOAT", {"default": 1.0, "min": 0.0, "max": 4.0, "step": 0.05}]
    assert info["Brightness"]["description"] == "Multiplies every pixel by `amount`."
    assert info["Posterize"]["input"]["required"]["levels"] == ["INT", {"default": 4, "min": 2, "max": 256}]
    assert info["Posterize"]["output"] == ["IMAGE"]


def test_loom_run_runs_the_readme_prompt_through_both_nodes(base):
    prompt = json.loads((base / PROMPT).read_text())
    amount = prompt["2"]["inputs"]["amount"]
    levels = prompt["3"]["inputs"]["levels"]
    done = subprocess.run(
        [sys.executable, "-m", "server.cli", "run", str(base / PROMPT), "--base-directory", str(base),
         "--cpu", "--quiet"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    saved = sorted((base / "output").glob("posterized_*.png"))
    assert [str(path) for path in saved] == [line.split(": ", 1)[1] for line in done.stdout.splitlines()]

    from PIL import Image

    with Image.open(saved[0]) as image:
        assert list(image.convert("RGB").getdata()) == [expected_pixel(p, amount, levels) for p in PIXELS]
