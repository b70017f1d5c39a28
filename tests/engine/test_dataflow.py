"""Lazy inputs, list mapping, expansion, blockers and async nodes."""

from __future__ import annotations

from typing import Any

from engine.declare import node
from engine.executor import Executor
from engine.node import ExecutionBlocker, NodeOutput
from engine.registry import Registry

from .conftest import make_nodes


def switch_prompt(use_first: bool) -> dict:
    return {"1": {"class_type": "Number", "inputs": {"value": 1}},
            "2": {"class_type": "Number", "inputs": {"value": 2}},
            "3": {"class_type": "Switch", "inputs": {"use_first": use_first, "first": ["1", 0], "second": ["2", 0]}},
            "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}}}


def test_lazy_inputs_evaluate_only_the_branch_asked_for(executor, rec):
    outcome = executor.execute(switch_prompt(True), prompt_id="p")
    assert outcome.outputs["4"] == {"value": [1]}
    assert rec.calls["1"] == 1 and rec.calls["2"] == 0


def test_lazy_inputs_follow_the_condition(executor, rec):
    outcome = executor.execute(switch_prompt(False), prompt_id="p")
    assert outcome.outputs["4"] == {"value": [2]}
    assert rec.calls["1"] == 0 and rec.calls["2"] == 1


def test_a_list_output_maps_the_consumer_over_its_items(executor, rec):
    prompt = {"1": {"class_type": "Range", "inputs": {"count": 3}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 10}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert rec.calls["2"] == 3
    assert outcome.outputs["3"] == {"value": [10, 11, 12]}


def test_shorter_lists_repeat_their_last_element(executor):
    prompt = {"1": {"class_type": "Range", "inputs": {"count": 4}},
              "2": {"class_type": "Range", "inputs": {"count": 2}},
              "3": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["2", 0]}},
              "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.outputs["4"] == {"value": [0, 2, 3, 4]}


def test_input_is_list_receives_the_whole_list_in_one_call(executor, rec):
    prompt = {"1": {"class_type": "Range", "inputs": {"count": 5}},
              "2": {"class_type": "Sum", "inputs": {"values": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert rec.calls["2"] == 1
    assert outcome.outputs["3"] == {"value": [10]}


def test_a_node_expands_into_new_nodes_that_run_in_place(registry, rec):
    @node(category="test")
    def AddThrice(x: int) -> int:
        """Builds x+1+1+1 out of Add nodes, the way loop packs build loops."""
        graph = {
            "a": {"class_type": "Add", "inputs": {"a": x, "b": 1}},
            "b": {"class_type": "Add", "inputs": {"a": ["a", 0], "b": 1}},
            "c": {"class_type": "Add", "inputs": {"a": ["b", 0], "b": 1}},
        }
        return NodeOutput(["c", 0], expand=graph)

    registry.add(AddThrice)
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 5}},
              "2": {"class_type": "AddThrice", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    events = []
    outcome = Executor(registry).execute(prompt, prompt_id="p", sink=events.append)
    assert outcome.outputs["3"] == {"value": [8]}
    assert {"2.a", "2.b", "2.c"} <= set(rec.calls)
    inner = [e for e in events if e.type == "executing" and e.node == "2.b"]
    assert inner[0].display_node == "2"


def test_an_expansion_can_link_back_to_nodes_of_the_prompt(registry):
    @node(category="test")
    def Double(x: int) -> int:
        return NodeOutput(["d", 0], expand={"d": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": ["1", 0]}}})

    registry.add(Double)
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 21}},
              "2": {"class_type": "Double", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    assert Executor(registry).execute(prompt, prompt_id="p").outputs["3"] == {"value": [42]}


def test_an_expansion_naming_an_unknown_node_type_fails_on_the_parent(registry):
    @node(category="test")
    def Broken(x: int) -> int:
        return NodeOutput(["z", 0], expand={"z": {"class_type": "Nope", "inputs": {}}})

    registry.add(Broken)
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "Broken", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    outcome = Executor(registry).execute(prompt, prompt_id="p")
    assert outcome.status == "error"
    assert outcome.error.node_id == "2"
    assert "Nope" in outcome.error.exception_message


def test_a_blocked_value_stops_its_consumers_silently(registry, rec):
    @node(category="test")
    def Gate(value: Any, open: bool = True) -> Any:
        return value if open else ExecutionBlocker(None)

    registry.add(Gate)
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "Gate", "inputs": {"value": ["1", 0], "open": False}},
              "3": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
              "4": {"class_type": "Show", "inputs": {"value": ["3", 0]}}}
    outcome = Executor(registry).execute(prompt, prompt_id="p")
    assert outcome.status == "success"
    assert rec.calls["3"] == 0 and rec.calls["4"] == 0
    assert outcome.outputs == {}


def test_a_blocker_with_a_message_is_an_error_on_the_output_node(registry):
    @node(category="test")
    def Refuse(value: Any) -> Any:
        return ExecutionBlocker("nothing to save: the input was rejected")

    registry.add(Refuse)
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "Refuse", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    outcome = Executor(registry).execute(prompt, prompt_id="p")
    assert outcome.status == "error"
    assert outcome.error.node_id == "3"
    assert "input was rejected" in outcome.error.exception_message


def test_independent_async_nodes_overlap(executor, rec):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "AsyncSleep", "inputs": {"value": ["1", 0], "seconds": 0.3}},
              "3": {"class_type": "AsyncSleep", "inputs": {"value": ["1", 0], "seconds": 0.31}},
              "4": {"class_type": "Show", "inputs": {"value": ["2", 0]}},
              "5": {"class_type": "Show", "inputs": {"value": ["3", 0]}}}
    outcome = executor.execute(prompt, prompt_id="p")
    assert outcome.outputs == {"4": {"value": [1]}, "5": {"value": [1]}}
    (start_a, end_a), (start_b, end_b) = rec.spans["2"], rec.spans["3"]
    assert start_b < end_a and start_a < end_b  # each started before the other ended


def test_ui_dicts_of_mapped_calls_merge_by_key(executor):
    prompt = {"1": {"class_type": "Range", "inputs": {"count": 3}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    assert executor.execute(prompt, prompt_id="p").outputs["2"] == {"value": [0, 1, 2]}


def test_a_fingerprint_change_reruns_the_node(rec):
    state = {"version": 1}

    @node(category="test", fingerprint=lambda path: state["version"])
    def ReadFile(path: str) -> str:
        rec.calls["read"] += 1
        return f"{path}@{state['version']}"

    registry = Registry()
    registry.add(ReadFile)
    registry.add_all(n for n in make_nodes(rec) if n.class_type == "Show")
    prompt = {"1": {"class_type": "ReadFile", "inputs": {"path": "a.txt"}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    executor = Executor(registry)
    executor.execute(prompt, prompt_id="a")
    executor.execute(prompt, prompt_id="b")
    assert rec.calls["read"] == 1
    state["version"] = 2
    assert executor.execute(prompt, prompt_id="c").outputs["2"] == {"value": ["a.txt@2"]}
    assert rec.calls["read"] == 2


def test_a_nan_fingerprint_means_always_rerun(rec):
    @node(category="test", output_node=True, fingerprint=lambda: float("nan"))
    def Clock() -> None:
        rec.calls["clock"] += 1
        return None

    registry = Registry()
    registry.add(Clock)
    executor = Executor(registry)
    executor.execute({"1": {"class_type": "Clock", "inputs": {}}}, prompt_id="a")
    executor.execute({"1": {"class_type": "Clock", "inputs": {}}}, prompt_id="b")
    assert rec.calls["clock"] == 2


def test_a_fingerprint_hook_may_take_a_subset_of_the_inputs(rec):
    @node(category="test", output_node=True, fingerprint=lambda path: "same")
    def Load(path: str, strength: float = 1.0) -> None:
        rec.calls["load"] += 1
        return None

    registry = Registry()
    registry.add(Load)
    executor = Executor(registry)
    prompt = {"1": {"class_type": "Load", "inputs": {"path": "a", "strength": 0.5}}}
    executor.execute(prompt, prompt_id="a")
    executor.execute(prompt, prompt_id="b")
    assert rec.calls["load"] == 1  # a hook failing on extra arguments would mean "always re-run"


def test_typed_hooks_may_ask_for_the_host_env(rec):
    def version(path, env):
        return env["versions"][path]

    def exists(path, env):
        return True if path in env["versions"] else f"no file '{path}'"

    @node(category="test", output_node=True, fingerprint=version, validate=exists)
    def Load(path: str) -> None:
        rec.calls["load"] += 1
        return None

    registry = Registry(env={"versions": {"a.png": 1}})
    registry.add(Load)
    executor = Executor(registry)
    prompt = {"1": {"class_type": "Load", "inputs": {"path": "a.png"}}}
    executor.execute(prompt, prompt_id="a")
    executor.execute(prompt, prompt_id="b")
    registry.env["versions"]["a.png"] = 2
    executor.execute(prompt, prompt_id="c")
    assert rec.calls["load"] == 2
    missing = {"1": {"class_type": "Load", "inputs": {"path": "b.png"}}}
    from engine.validation import validate_prompt
    issue = validate_prompt(registry, missing).node_errors["1"]["errors"][0]
    assert issue["type"] == "custom_validation_failed" and "no file 'b.png'" in issue["details"]


def test_dynprompt_is_a_live_view_of_the_prompt_with_expansions(registry):
    seen = {}

    class Inspect:
        RETURN_TYPES = ("INT",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"x": ("INT",)}, "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"}}

        def run(self, x, dynprompt, unique_id):
            seen["self"] = dynprompt.get_node(unique_id)
            seen["display"] = dynprompt.get_display_node_id(unique_id)
            seen["source"] = dynprompt.get_node("1")
            return (x,)

    @node(category="test")
    def Wrap(x: int) -> int:
        return NodeOutput(["i", 0], expand={"i": {"class_type": "Inspect", "inputs": {"x": ["1", 0]}}})

    from engine.comfy_v1 import compile_v1
    registry.add_all([compile_v1(Inspect, "Inspect"), Wrap])
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 5}},
              "2": {"class_type": "Wrap", "inputs": {"x": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    assert Executor(registry).execute(prompt, prompt_id="p").outputs["3"] == {"value": [5]}
    assert seen == {"self": {"class_type": "Inspect", "inputs": {"x": ["1", 0]}}, "display": "2",
                    "source": {"class_type": "Number", "inputs": {"value": 5}}}


def test_an_async_node_is_interrupted_while_it_waits(executor):
    import threading

    from engine.interrupt import InterruptFlag

    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "AsyncSleep", "inputs": {"value": ["1", 0], "seconds": 30.0}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    flag = InterruptFlag()
    threading.Timer(0.2, flag.set).start()
    outcome = executor.execute(prompt, prompt_id="p", interrupt=flag)
    assert outcome.status == "interrupted"  # not "success" after the full 30 s sleep
