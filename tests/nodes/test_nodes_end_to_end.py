"""Built-in nodes run as prompts through the engine's validator and executor."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import nodes
from engine.executor import Executor, PromptValidationError
from engine.registry import Registry


@pytest.fixture
def registry(env) -> Registry:
    registry = Registry(env=env)
    registry.add_all(nodes.builtin_nodes())
    return registry


@pytest.fixture
def executor(registry) -> Executor:
    executor = Executor(registry)
    yield executor
    executor.close()


TEXT_PROMPT = {
    "1": {"class_type": "PrimitiveString", "inputs": {"value": "a cat"}},
    "2": {"class_type": "StringReplace", "inputs": {"string": ["1", 0], "find": "cat", "replace": "dog"}},
    "3": {"class_type": "StringConcatenate", "inputs": {"string_a": ["2", 0], "string_b": "on a mat", "delimiter": " "}},
    "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    "5": {"class_type": "IntMath", "inputs": {"a": 6, "b": 7, "operation": "multiply"}},
    "6": {"class_type": "PreviewAny", "inputs": {"source": ["5", 0]}},
}


def with_input(prompt, node_id, name, value):
    changed = json.loads(json.dumps(prompt))
    changed[node_id]["inputs"][name] = value
    return changed


def test_a_text_prompt_shows_its_results(executor):
    outcome = executor.execute(TEXT_PROMPT, prompt_id="t1")
    assert outcome.status == "success"
    assert outcome.outputs["4"] == {"text": ["a dog on a mat"]}
    assert outcome.outputs["6"] == {"text": ["42"]}


def test_rerunning_the_same_prompt_executes_nothing(executor):
    executor.execute(TEXT_PROMPT, prompt_id="t1")
    again = executor.execute(TEXT_PROMPT, prompt_id="t2")
    assert again.executed == []
    assert again.outputs["4"] == {"text": ["a dog on a mat"]}


def test_changing_one_widget_reruns_that_node_and_what_follows_only(executor):
    executor.execute(TEXT_PROMPT, prompt_id="t1")
    outcome = executor.execute(with_input(TEXT_PROMPT, "2", "replace", "bird"), prompt_id="t2")
    assert sorted(outcome.executed) == ["2", "3", "4"]
    assert outcome.outputs["4"] == {"text": ["a bird on a mat"]}


def test_an_operation_not_offered_is_refused_before_running(executor):
    math_only = {key: TEXT_PROMPT[key] for key in ("5", "6")}
    with pytest.raises(PromptValidationError) as caught:
        executor.execute(with_input(math_only, "5", "operation", "sqrt"), prompt_id="bad")
    errors = caught.value.result.node_errors["5"]["errors"]
    assert errors[0]["type"] == "value_not_in_list"


def test_an_image_prompt_loads_transforms_and_saves_with_metadata(executor, folders):
    folders.input.mkdir(parents=True)
    pixels = np.zeros((4, 6, 4), dtype=np.uint8)
    pixels[..., 0] = 255
    pixels[..., 3] = 255
    Image.fromarray(pixels, "RGBA").save(folders.input / "red.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "red.png"}},
        "2": {"class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "nearest-exact",
                                                     "width": 12, "height": 8, "crop": "disabled"}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "e2e/inverted"}},
    }
    workflow = {"nodes": [{"id": 4, "type": "SaveImage"}], "links": []}
    outcome = executor.execute(prompt, prompt_id="img", extra_data={"extra_pnginfo": {"workflow": workflow}})
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["4"] == {"images": [{"filename": "inverted_00001_.png", "subfolder": "e2e", "type": "output"}]}
    with Image.open(folders.output / "e2e" / "inverted_00001_.png") as saved:
        assert saved.size == (12, 8)
        assert np.asarray(saved)[0, 0].tolist() == [0, 255, 255]
        assert json.loads(saved.text["prompt"]) == prompt
        assert json.loads(saved.text["workflow"]) == workflow


def test_a_missing_input_image_fails_the_prompt_with_a_clear_message(executor, folders):
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "nowhere.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    with pytest.raises(PromptValidationError) as refused:
        executor.execute(prompt, prompt_id="missing")
    (issue,) = refused.value.result.node_errors["1"]["errors"]
    assert issue["type"] == "custom_validation_failed"
    assert "image 'nowhere.png' not found in the input folder" in issue["details"]


def test_rerunning_an_unchanged_image_prompt_writes_no_new_file(executor, folders):
    folders.input.mkdir(parents=True)
    Image.new("RGB", (4, 4), "blue").save(folders.input / "blue.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "blue.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "again"}},
    }
    executor.execute(prompt, prompt_id="a")
    second = executor.execute(prompt, prompt_id="b")
    assert second.executed == []
    assert sorted(p.name for p in folders.output.iterdir()) == ["again_00001_.png"]


def test_editing_the_input_file_reruns_the_image_prompt(executor, folders):
    folders.input.mkdir(parents=True)
    Image.new("RGB", (4, 4), "blue").save(folders.input / "blue.png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "blue.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "edited"}},
    }
    executor.execute(prompt, prompt_id="a")
    Image.new("RGB", (4, 4), "red").save(folders.input / "blue.png")
    second = executor.execute(prompt, prompt_id="b")
    assert second.executed == ["1", "2"]
