"""Lazy inputs as ComfyUI evaluates them (execution.py: check_lazy_status is
asked on every staging until it names no unevaluated input; the named inputs
become strong links).  A lazily requested source that is already available —
cached from an earlier prompt, or an identical twin of a node that already ran —
must not break the run."""

from __future__ import annotations

from engine.comfy_v1 import compile_v1
from engine.executor import Executor

from .comfy_nodes import RUNS, AsyncMix, AsyncTwice, Mix, Output, Value, registry_of


def mix_prompt(mask: int, kind: str = "Mix") -> dict:
    # "2" and "3" are twins (same class, same value): the second one to be
    # needed is served from the first one's result, without running.
    return {
        "1": {"class_type": "Value", "inputs": {"value": 3}},
        "2": {"class_type": "Value", "inputs": {"value": mask}},
        "3": {"class_type": "Value", "inputs": {"value": mask}},
        "4": {"class_type": kind, "inputs": {"image1": ["1", 0], "image2": ["3", 0], "mask": ["2", 0]}},
        "9": {"class_type": "Output", "inputs": {"value": ["4", 0]}},
    }


def test_lazy_inputs_requested_from_an_already_computed_twin_run_in_a_plain_graph():
    executor = Executor(registry_of(Value, Mix, Output))
    outcome = executor.execute(mix_prompt(2), prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["9"] == {"value": [3 + 2]}


def test_lazy_inputs_only_evaluate_what_check_lazy_status_asks_for():
    executor = Executor(registry_of(Value, Mix, Output))
    prompt = mix_prompt(0)
    prompt["3"]["inputs"]["value"] = 7  # not a twin now; mask 0 never asks for it
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["9"] == {"value": [3]}
    assert "3" not in outcome.executed


def test_lazy_inputs_whose_sources_are_cached_from_the_previous_prompt_run():
    executor = Executor(registry_of(Value, Mix, Output))
    first = mix_prompt(2)
    first["3"]["inputs"]["value"] = 4
    assert executor.execute(first, prompt_id="a").status == "success"
    second = mix_prompt(2)
    second["3"]["inputs"]["value"] = 4
    second["2"]["inputs"]["value"] = 5  # Mix re-runs; both images come from the cache
    outcome = executor.execute(second, prompt_id="b")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["9"] == {"value": [3 + 4]}
    assert sorted(outcome.executed) == ["2", "4", "9"]


def test_lazy_inputs_of_a_node_inside_an_expansion_run():
    class ExpandMix:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"mask": ("INT", {"default": 2})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "expand"

        def expand(self, mask):
            graph = {
                "e1": {"class_type": "Value", "inputs": {"value": 3}},
                "e2": {"class_type": "Value", "inputs": {"value": mask}},
                "e3": {"class_type": "Value", "inputs": {"value": mask}},
                "e4": {"class_type": "Mix", "inputs": {"image1": ["e1", 0], "image2": ["e3", 0], "mask": ["e2", 0]}},
            }
            return {"result": (["e4", 0],), "expand": graph}

    registry = registry_of(Value, Mix, Output)
    registry.add(compile_v1(ExpandMix, "ExpandMix"))
    executor = Executor(registry)
    prompt = {"1": {"class_type": "ExpandMix", "inputs": {"mask": 2}},
              "9": {"class_type": "Output", "inputs": {"value": ["1", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["9"] == {"value": [5]}


def test_lazy_inputs_of_an_async_node_with_an_async_check_run():
    executor = Executor(registry_of(Value, AsyncMix, Output))
    outcome = executor.execute(mix_prompt(2, "AsyncMix"), prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["9"] == {"value": [5]}
    outcome = executor.execute(mix_prompt(1, "AsyncMix"), prompt_id="q")
    assert outcome.outputs["9"] == {"value": [1]}
    assert "1" not in outcome.executed  # image1 was never asked for


def test_a_mixed_sync_and_async_graph_with_lazy_inputs_runs():
    registry = registry_of(Value, Mix, AsyncTwice, Output)
    executor = Executor(registry)
    prompt = {
        "1": {"class_type": "Value", "inputs": {"value": 3}},
        "2": {"class_type": "AsyncTwice", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "Value", "inputs": {"value": 2}},
        "4": {"class_type": "Mix", "inputs": {"image1": ["2", 0], "image2": ["1", 0], "mask": ["3", 0]}},
        "9": {"class_type": "Output", "inputs": {"value": ["4", 0]}},
    }
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["9"] == {"value": [6 + 3]}
    assert RUNS["AsyncTwice"] == 1
