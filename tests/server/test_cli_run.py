"""``loom run WORKFLOW``: headless runs of API prompts, UI workflows and PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from server.cli import main

from .nodes_for_tests import png_bytes

TEXT_PROMPT = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "hello from loom run"}},
    "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
}

UI_WORKFLOW = {
    "last_node_id": 2, "last_link_id": 1, "version": 0.4,
    "nodes": [
        {"id": 1, "type": "PrimitiveString", "mode": 0, "inputs": [],
         "outputs": [{"name": "STRING", "type": "STRING", "links": [1]}], "widgets_values": ["from the editor"]},
        {"id": 2, "type": "PreviewAny", "mode": 0, "inputs": [{"name": "source", "type": "*", "link": 1}],
         "outputs": [{"name": "STRING", "type": "STRING", "links": []}], "widgets_values": []},
    ],
    "links": [[1, 1, 0, 2, 0, "STRING"]],
}


def _run(tmp_path: Path, workflow: Path, *extra: str) -> int:
    return main(["run", str(workflow), "--base-directory", str(tmp_path / "base"), "--quiet", *extra])


def _write(tmp_path: Path, data, name: str = "workflow.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_run_executes_an_api_prompt_and_prints_its_text_output(tmp_path, capsys):
    assert _run(tmp_path, _write(tmp_path, TEXT_PROMPT)) == 0
    assert "hello from loom run" in capsys.readouterr().out


def test_run_accepts_a_post_prompt_body(tmp_path, capsys):
    assert _run(tmp_path, _write(tmp_path, {"prompt": TEXT_PROMPT, "client_id": "x"})) == 0
    assert "hello from loom run" in capsys.readouterr().out


def test_run_prints_where_saved_images_went(tmp_path, capsys):
    (tmp_path / "base" / "input").mkdir(parents=True)
    (tmp_path / "base" / "input" / "in.png").write_bytes(png_bytes(size=(8, 8)))
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "in.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "cli/run"}},
    }
    assert _run(tmp_path, _write(tmp_path, prompt)) == 0
    out = capsys.readouterr().out
    saved = tmp_path / "base" / "output" / "cli" / "run_00001_.png"
    assert saved.is_file()
    assert str(saved) in out


def test_run_converts_a_ui_workflow(tmp_path, capsys):
    assert _run(tmp_path, _write(tmp_path, UI_WORKFLOW)) == 0
    assert "from the editor" in capsys.readouterr().out


def test_run_reads_the_prompt_from_a_png(tmp_path, capsys):
    info = PngInfo()
    info.add_text("prompt", json.dumps(TEXT_PROMPT))
    path = tmp_path / "made_by_loom.png"
    Image.new("RGB", (4, 4)).save(path, pnginfo=info)
    assert _run(tmp_path, path) == 0
    assert "hello from loom run" in capsys.readouterr().out


def test_an_invalid_prompt_exits_2_listing_each_problem_readably(tmp_path, capsys):
    prompt = {
        "1": {"class_type": "IntMath", "inputs": {"a": "seven", "b": 1, "operation": "add"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    assert _run(tmp_path, _write(tmp_path, prompt)) == 2
    err = capsys.readouterr().err
    assert "is not a valid prompt" in err
    assert "node 1 (IntMath)" in err
    assert "Traceback" not in err


def test_an_unknown_node_type_exits_2_naming_it(tmp_path, capsys):
    prompt = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    assert _run(tmp_path, _write(tmp_path, prompt)) == 2
    assert "NoSuchNode" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not valid JSON"),
    ("[1, 2, 3]", "expected a prompt object"),
])
def test_an_unusable_file_exits_2_saying_why(tmp_path, capsys, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert _run(tmp_path, path) == 2
    assert message in capsys.readouterr().err


def test_a_missing_file_exits_2(tmp_path, capsys):
    assert _run(tmp_path, tmp_path / "nope.json") == 2
    assert "no such file" in capsys.readouterr().err


def test_a_node_that_fails_exits_1_naming_node_and_error(tmp_path, capsys):
    prompt = {
        "1": {"class_type": "IntMath", "inputs": {"a": 1, "b": 0, "operation": "divide"}},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }
    assert _run(tmp_path, _write(tmp_path, prompt)) == 1
    err = capsys.readouterr().err
    assert "node 1 (IntMath) failed" in err
    assert "by zero" in err


def test_progress_bars_are_drawn_per_node(tmp_path, capsys):
    assert main(["run", str(_write(tmp_path, TEXT_PROMPT)), "--base-directory", str(tmp_path / "b")]) == 0
    err = capsys.readouterr().err
    assert "#1 PrimitiveString" in err and "#2 PreviewAny" in err


A1111_PARAMETERS = ("a lighthouse at dusk\nNegative prompt: blurry\n"
                    "Steps: 2, Sampler: Euler, CFG scale: 5, Seed: 7, Size: 64x48, Model: tiny_sd15")


def _a1111_png(tmp_path: Path) -> Path:
    info = PngInfo()
    info.add_text("parameters", A1111_PARAMETERS)
    path = tmp_path / "from_a1111.png"
    Image.new("RGB", (64, 48)).save(path, pnginfo=info)
    return path


def test_run_reruns_an_a1111_png_as_the_equivalent_graph(tmp_path, capsys):
    from tests.fixtures.tiny_models import build

    tiny = build("sd1", tmp_path / "tiny")
    checkpoints = tmp_path / "base" / "models" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "tiny_sd15.safetensors").write_bytes(tiny.checkpoint.read_bytes())
    assert _run(tmp_path, _a1111_png(tmp_path), "--cpu") == 0
    (saved,) = (tmp_path / "base" / "output").rglob("*.png")
    with Image.open(saved) as image:
        assert image.size == (64, 48)
        embedded = json.loads(image.text["prompt"])
    sampler = next(n for n in embedded.values() if n["class_type"] == "KSampler")["inputs"]
    assert (sampler["seed"], sampler["steps"], sampler["cfg"]) == (7, 2, 5.0)


def test_an_a1111_png_whose_model_is_missing_exits_2_naming_the_file_and_folder(tmp_path, capsys):
    assert _run(tmp_path, _a1111_png(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "tiny_sd15.safetensors" in err and "models/checkpoints" in err
