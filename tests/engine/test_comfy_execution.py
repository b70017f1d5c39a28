"""Execution semantics ComfyUI clients and custom nodes depend on, each
reproduced from ComfyUI's execution.py / comfy_execution/graph.py."""

from __future__ import annotations

import asyncio

from engine.executor import Executor

from .comfy_nodes import RUNS, ExecutionBlocker, Output, Twice, Value, registry_of


# -- ExecutionBlocker inside list outputs ------------------------------------------


class Numbers:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 4})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, count):
        return (list(range(1, count + 1)),)


class OnlyOdd:
    """Called once per element; blocks the even ones."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return (value if value % 2 else ExecutionBlocker(None),)


class OddList:
    """One call returning a list with blocked elements in it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 4})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, count):
        return ([i if i % 2 else ExecutionBlocker(None) for i in range(1, count + 1)],)


class Collect:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ()
    INPUT_IS_LIST = True
    OUTPUT_NODE = True
    FUNCTION = "run"

    def run(self, values):
        RUNS["Collect"] += 1
        return {"ui": {"values": list(values)}}


def test_a_blocked_element_of_a_list_stops_only_that_element():
    executor = Executor(registry_of(Numbers, OnlyOdd, Twice, Output))
    prompt = {"1": {"class_type": "Numbers", "inputs": {"count": 5}},
              "2": {"class_type": "OnlyOdd", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Twice", "inputs": {"value": ["2", 0]}},
              "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["4"] == {"value": [2, 6, 10]}
    assert RUNS["Twice"] == 3 and RUNS["Output"] == 3


def test_blockers_inside_an_output_is_list_value_let_the_other_elements_flow():
    executor = Executor(registry_of(OddList, Twice, Output))
    prompt = {"1": {"class_type": "OddList", "inputs": {"count": 4}},
              "2": {"class_type": "Twice", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["3"] == {"value": [2, 6]}


def test_an_input_is_list_node_given_a_list_with_a_blocked_element_is_blocked():
    executor = Executor(registry_of(OddList, Collect))
    prompt = {"1": {"class_type": "OddList", "inputs": {"count": 4}},
              "2": {"class_type": "Collect", "inputs": {"values": ["1", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert RUNS["Collect"] == 0 and "2" not in outcome.outputs


# -- async nodes ----------------------------------------------------------------------


class AsyncGate:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True}), "open": ("BOOLEAN", {"default": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    async def run(self, value, open):
        await asyncio.sleep(0.01)
        return (value,) if open else ExecutionBlocker(None)


def test_an_async_node_returning_an_execution_blocker_blocks_its_consumers():
    executor = Executor(registry_of(Value, AsyncGate, Output))
    prompt = {"1": {"class_type": "Value", "inputs": {"value": 3}},
              "2": {"class_type": "AsyncGate", "inputs": {"value": ["1", 0], "open": False}},
              "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert RUNS["Output"] == 0 and outcome.outputs == {}
    prompt["2"]["inputs"]["open"] = True
    assert executor.execute(prompt, prompt_id="q").outputs["3"] == {"value": [3]}


# -- partial execution ------------------------------------------------------------------


class Tee:
    """An output node that also has a socket output (PreviewAndPass)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_NODE = True
    FUNCTION = "run"

    def run(self, value):
        RUNS["Tee"] += 1
        return {"ui": {"seen": [value]}, "result": (value,)}


def tee_prompt() -> dict:
    return {"1": {"class_type": "Value", "inputs": {"value": 4}},
            "2": {"class_type": "Tee", "inputs": {"value": ["1", 0]}},
            "3": {"class_type": "Twice", "inputs": {"value": ["2", 0]}},
            "4": {"class_type": "Output", "inputs": {"value": ["3", 0]}}}


def test_partial_execution_of_an_output_node_that_feeds_another_output_runs_only_its_ancestors():
    executor = Executor(registry_of(Value, Tee, Twice, Output))
    outcome = executor.execute(tee_prompt(), prompt_id="p", outputs=["2"])
    assert outcome.status == "success", outcome.error
    assert outcome.outputs == {"2": {"seen": [4]}}
    assert RUNS["Output"] == 0 and RUNS["Twice"] == 0


def test_partial_execution_of_the_downstream_output_runs_the_upstream_output_node_too():
    executor = Executor(registry_of(Value, Tee, Twice, Output))
    outcome = executor.execute(tee_prompt(), prompt_id="p", outputs=["4"])
    assert outcome.status == "success", outcome.error
    assert outcome.outputs == {"2": {"seen": [4]}, "4": {"value": [8]}}


# -- IS_CHANGED ---------------------------------------------------------------------------

SEEN: list[dict] = []


class Watched:
    """IS_CHANGED over a linked input and a widget, as LoadImage-like nodes write it."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True}), "mode": ("STRING", {"default": "a"})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    STAMP = "same"

    @classmethod
    def IS_CHANGED(cls, value, mode):
        SEEN.append({"value": value, "mode": mode})
        return cls.STAMP

    def run(self, value, mode):
        RUNS["Watched"] += 1
        return (value,)


def watched_prompt(value: int = 2, mode: str = "a") -> dict:
    return {"1": {"class_type": "Value", "inputs": {"value": value}},
            "2": {"class_type": "Watched", "inputs": {"value": ["1", 0], "mode": mode}},
            "3": {"class_type": "Output", "inputs": {"value": ["2", 0]}}}


def test_is_changed_returning_the_same_value_keeps_a_node_with_linked_inputs_cached():
    SEEN.clear()
    Watched.STAMP = "same"
    executor = Executor(registry_of(Value, Watched, Output))
    executor.execute(watched_prompt(), prompt_id="a")
    again = executor.execute(watched_prompt(), prompt_id="b")
    assert again.status == "success", again.error
    assert RUNS["Watched"] == 1 and "2" not in again.executed
    # ComfyUI evaluates IS_CHANGED on the prompt's constants: a linked input is None.
    assert SEEN[-1] == {"value": None, "mode": "a"}


def test_is_changed_returning_a_new_value_reruns_the_node():
    SEEN.clear()
    executor = Executor(registry_of(Value, Watched, Output))
    Watched.STAMP = "one"
    executor.execute(watched_prompt(), prompt_id="a")
    Watched.STAMP = "two"
    outcome = executor.execute(watched_prompt(), prompt_id="b")
    assert RUNS["Watched"] == 2 and "2" in outcome.executed
    Watched.STAMP = "same"


def test_is_changed_unchanged_but_an_upstream_value_changed_reruns_the_node():
    Watched.STAMP = "same"
    executor = Executor(registry_of(Value, Watched, Output))
    executor.execute(watched_prompt(2), prompt_id="a")
    outcome = executor.execute(watched_prompt(3), prompt_id="b")
    assert outcome.outputs["3"] == {"value": [3]} and RUNS["Watched"] == 2
