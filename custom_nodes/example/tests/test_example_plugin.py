"""The example plug-in, loaded the way Loom loads plug-ins, in both declaration styles."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from engine.executor import Executor
from engine.node import Interrupted, NodeContext
from engine.object_info import object_info
from engine.plugins import load_plugins
from engine.registry import Registry
from nodes import builtin_nodes
from nodes.runtime import LoomEnv

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(tmp_path) -> Registry:
    registry = Registry(env=LoomEnv.at(tmp_path, device="cpu"))
    registry.add_all(builtin_nodes())
    report = load_plugins(registry, [PLUGIN_DIR.parent])
    assert report.failed == [] and report.clashes == []
    return registry


@pytest.fixture
def plugin(registry):
    return sys.modules[PLUGIN_DIR.name]


def context(env, progress: list | None = None, interrupted: bool = False) -> NodeContext:
    return NodeContext(
        node_id="7", display_node_id="7", prompt_id="p", prompt={}, extra_data={}, env=env,
        report_progress=lambda node, value, total, preview: progress.append((value, total)) if progress is not None else None,
        is_interrupted=lambda: interrupted,
    )


def test_the_plugin_registers_one_node_in_each_style(registry):
    assert registry.origins["ExampleRepeatText"] == "custom_nodes/example"
    assert registry.origins["ExampleGrayscale"] == "custom_nodes/example"


# -- the ComfyUI V1-style node -----------------------------------------------------------


def test_repeat_text_repeats_with_the_separator(plugin):
    node = plugin.NODE_CLASS_MAPPINGS["ExampleRepeatText"]()
    assert node.repeat("ab", 3, "-") == ("ab-ab-ab", 8)


def test_repeat_text_is_described_like_comfyui_describes_it(registry):
    info = object_info(registry)["ExampleRepeatText"]
    assert info["display_name"] == "Repeat Text (example)"
    assert info["input"]["required"]["times"] == ["INT", {"default": 2, "min": 1, "max": 100, "tooltip": "How many copies"}]
    assert info["input"]["optional"]["separator"] == ["STRING", {"default": " "}]
    assert (info["output"], info["output_name"]) == (["STRING", "INT"], ["text", "length"])
    assert info["category"] == "example"


def test_repeat_text_refuses_a_text_that_would_grow_too_long(plugin):
    cls = plugin.NODE_CLASS_MAPPINGS["ExampleRepeatText"]
    assert cls.VALIDATE_INPUTS("x" * 2000, 100) == "the text would be 200000 characters long; the limit is 100000"
    assert cls.VALIDATE_INPUTS("x", 0) == "times must be between 1 and 100, got 0"
    assert cls.VALIDATE_INPUTS(None, 5) is True


# -- the Loom typed node ----------------------------------------------------------------


def test_full_strength_grayscale_sets_every_channel_to_the_luma(registry):
    image = torch.tensor([[[[1.0, 0.0, 0.0], [0.0, 0.5, 1.0]]]])
    gray = registry.get("ExampleGrayscale").fn(context(registry.env), image, 1.0)
    expected = torch.tensor([0.299, 0.587 * 0.5 + 0.114])
    assert torch.allclose(gray[0, 0], expected[:, None].expand(2, 3))


def test_zero_strength_keeps_the_colours_and_alpha_is_untouched(registry):
    image = torch.rand(2, 3, 3, 4)
    grayscale = registry.get("ExampleGrayscale").fn
    assert torch.equal(grayscale(context(registry.env), image, 0.0), image)
    assert torch.equal(grayscale(context(registry.env), image, 1.0)[..., 3], image[..., 3])


def test_grayscale_reports_progress_per_image(registry):
    progress: list = []
    registry.get("ExampleGrayscale").fn(context(registry.env, progress), torch.rand(3, 2, 2, 3), 1.0)
    assert progress == [(0, 3), (1, 3), (2, 3), (3, 3)]


def test_grayscale_stops_when_interrupted(registry):
    with pytest.raises(Interrupted):
        registry.get("ExampleGrayscale").fn(context(registry.env, interrupted=True), torch.rand(1, 2, 2, 3), 1.0)


def test_grayscale_declares_its_inputs_from_the_signature(registry):
    info = object_info(registry)["ExampleGrayscale"]
    assert info["input"]["required"]["image"] == ["IMAGE"]
    assert info["input"]["required"]["strength"][1]["default"] == 1.0
    assert info["output"] == ["IMAGE"]


# -- both, in a prompt --------------------------------------------------------------------


def test_a_prompt_runs_plugin_nodes_next_to_built_in_ones(registry):
    prompt = {
        "1": {"class_type": "PrimitiveString", "inputs": {"value": "la"}},
        "2": {"class_type": "ExampleRepeatText", "inputs": {"text": ["1", 0], "times": 3, "separator": ""}},
        "3": {"class_type": "PreviewAny", "inputs": {"source": ["2", 0]}},
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["2", 1]}},
    }
    outcome = Executor(registry).execute(prompt, prompt_id="example")
    assert outcome.status == "success"
    assert outcome.outputs["3"] == {"text": ["lalala"]}
    assert outcome.outputs["4"] == {"text": ["6"]}
