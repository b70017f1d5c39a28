"""Loops built by expansion, the open/close pattern flow-control packs use.

ComfyUI (execution.py, comfy_execution/graph.py) adds the nodes of an
expansion under the ids ``GraphBuilder`` gave them (``{node}.{call}.{graph}.``
prefixes, set before each call), keeps them in the ``DynamicPrompt`` next to the
prompt's own nodes, and resolves a link to any of them.  The close node gets
its ``flow_control`` input as the raw link (``rawLink``), walks the loop body
through ``DYNPROMPT`` and copies it into the next iteration's expansion.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.comfy_v1 import compile_v1
from engine.executor import Executor
from engine.registry import Registry

COMPAT = str(Path(__file__).resolve().parents[2] / "comfy_compat")


@pytest.fixture(autouse=True)
def comfy_modules(monkeypatch):
    monkeypatch.syspath_prepend(COMPAT)
    yield


def loop_pack():
    from comfy_execution.graph_utils import GraphBuilder, is_link

    class WhileLoopOpen:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"condition": ("BOOLEAN", {"default": True})},
                    "optional": {"initial_value0": ("*",)}}

        RETURN_TYPES = ("FLOW_CONTROL", "*")
        RETURN_NAMES = ("FLOW_CONTROL", "value0")
        FUNCTION = "open"

        def open(self, condition, initial_value0=None):
            return ("stub", initial_value0)

    class WhileLoopClose:
        @classmethod
        def INPUT_TYPES(cls):
            return {
                "required": {"flow_control": ("FLOW_CONTROL", {"rawLink": True}),
                             "condition": ("BOOLEAN", {"forceInput": True})},
                "optional": {"initial_value0": ("*",)},
                "hidden": {"dynprompt": "DYNPROMPT", "unique_id": "UNIQUE_ID"},
            }

        RETURN_TYPES = ("*",)
        FUNCTION = "close"

        def explore(self, node_id, dynprompt, upstream):
            for value in dynprompt.get_node(node_id)["inputs"].values():
                if is_link(value):
                    parent = value[0]
                    if parent not in upstream:
                        upstream[parent] = []
                        self.explore(parent, dynprompt, upstream)
                    upstream[parent].append(node_id)

        def collect(self, node_id, upstream, contained):
            for child in upstream.get(node_id, []):
                if child not in contained:
                    contained[child] = True
                    self.collect(child, upstream, contained)

        def close(self, flow_control, condition, dynprompt=None, unique_id=None, initial_value0=None):
            if not condition:
                return (initial_value0,)
            upstream = {}
            self.explore(unique_id, dynprompt, upstream)
            open_node = flow_control[0]
            contained = {}
            self.collect(open_node, upstream, contained)
            contained[unique_id] = True
            contained[open_node] = True
            graph = GraphBuilder()
            for node_id in contained:
                original = dynprompt.get_node(node_id)
                node = graph.node(original["class_type"], "Recurse" if node_id == unique_id else node_id)
                node.set_override_display_id(node_id)
            for node_id in contained:
                original = dynprompt.get_node(node_id)
                node = graph.lookup_node("Recurse" if node_id == unique_id else node_id)
                for key, value in original["inputs"].items():
                    if is_link(value) and value[0] in contained:
                        node.set_input(key, graph.lookup_node(value[0]).out(value[1]))
                    else:
                        node.set_input(key, value)
            graph.lookup_node(open_node).set_input("initial_value0", initial_value0)
            return {"result": (graph.lookup_node("Recurse").out(0),), "expand": graph.finalize()}

    class AddInt:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("*",), "b": ("INT", {"default": 1})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "add"

        def add(self, a, b):
            return (a + b,)

    class Less:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"a": ("INT", {"forceInput": True}), "b": ("INT", {"forceInput": True})}}

        RETURN_TYPES = ("BOOLEAN",)
        FUNCTION = "less"

        def less(self, a, b):
            return (a < b,)

    class Const:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("INT", {"default": 0})}}

        RETURN_TYPES = ("INT",)
        FUNCTION = "const"

        def const(self, value):
            return (value,)

    class Result:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("*",)}}

        RETURN_TYPES = ()
        FUNCTION = "show"
        OUTPUT_NODE = True

        def show(self, value):
            return {"ui": {"value": [value]}}

    registry = Registry()
    registry.add_all(compile_v1(cls, cls.__name__)
                     for cls in (WhileLoopOpen, WhileLoopClose, AddInt, Less, Const, Result))
    return registry


def counting_loop(limit: int, step: int = 3) -> dict:
    """value = 0; while value < limit: value += step — the limit is a node of
    the enclosing prompt that every iteration links back to."""
    return {
        "1": {"class_type": "Const", "inputs": {"value": limit}},
        "2": {"class_type": "WhileLoopOpen", "inputs": {"condition": True, "initial_value0": 0}},
        "3": {"class_type": "AddInt", "inputs": {"a": ["2", 1], "b": step}},
        "4": {"class_type": "Less", "inputs": {"a": ["3", 0], "b": ["1", 0]}},
        "5": {"class_type": "WhileLoopClose",
              "inputs": {"flow_control": ["2", 0], "condition": ["4", 0], "initial_value0": ["3", 0]}},
        "6": {"class_type": "Result", "inputs": {"value": ["5", 0]}},
    }


def test_a_while_loop_built_by_expansion_with_graph_builder_runs_to_its_end():
    events = []
    outcome = Executor(loop_pack()).execute(counting_loop(10), prompt_id="p", sink=events.append)
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["6"] == {"value": [12]}  # 3, 6, 9, 12
    # Every copied node is shown as the prompt node it copies (override_display_id).
    executing = [e for e in events if e.type == "executing" and e.node]
    assert {e.display_node for e in executing} <= set(counting_loop(10))
    assert any(e.node != e.display_node for e in executing)


def test_expansion_node_ids_are_graph_builder_ids_under_the_expanding_node():
    outcome = Executor(loop_pack()).execute(counting_loop(4), prompt_id="p")
    assert outcome.status == "success", outcome.error
    # ComfyUI's default prefix: "{unique_id}.{call_index}.{graph_index}."
    assert "5.0.0.Recurse" in outcome.executed
    assert "5.0.0.3" in outcome.executed


def test_a_loop_runs_again_from_the_cache_with_the_same_result():
    executor = Executor(loop_pack())
    assert executor.execute(counting_loop(7), prompt_id="a").outputs["6"] == {"value": [9]}
    again = executor.execute(counting_loop(7), prompt_id="b")
    assert again.outputs["6"] == {"value": [9]}
    assert again.executed == []
    changed = executor.execute(counting_loop(13), prompt_id="c")
    assert changed.outputs["6"] == {"value": [15]}
