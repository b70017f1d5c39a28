"""V3 nodes (``comfy_api.latest.io.ComfyNode``) get ComfyUI's hook semantics too:
``fingerprint_inputs`` is IS_CHANGED (the same value keeps the node cached) and
``check_lazy_status`` may be a coroutine."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest

from engine.executor import Executor
from engine.registry import Registry

COMPAT = str(Path(__file__).resolve().parents[2] / "comfy_compat")
RUNS: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def comfy_modules(monkeypatch):
    monkeypatch.syspath_prepend(COMPAT)
    yield


def v3_registry() -> Registry:
    from comfy_api.latest import io
    from loom_compat.v3 import V3Node

    class Stamped(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Stamped", inputs=[io.Int.Input("value")], outputs=[io.Int.Output()])

        @classmethod
        def fingerprint_inputs(cls, value):
            return "same"

        @classmethod
        def execute(cls, value):
            RUNS["Stamped"] += 1
            return io.NodeOutput(value)

    class Pick(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Pick", is_output_node=True, inputs=[
                io.Boolean.Input("first"), io.Int.Input("a", lazy=True), io.Int.Input("b", lazy=True)])

        @classmethod
        async def check_lazy_status(cls, first, a=None, b=None):
            await asyncio.sleep(0)
            return ["a"] if first else ["b"]

        @classmethod
        def execute(cls, first, a=None, b=None):
            return io.NodeOutput(ui={"value": [a if first else b]})

    registry = Registry()
    registry.add_all([V3Node(Stamped), V3Node(Pick)])
    return registry


def prompt(first: bool = True) -> dict:
    return {"1": {"class_type": "Stamped", "inputs": {"value": 4}},
            "2": {"class_type": "Stamped", "inputs": {"value": 9}},
            "3": {"class_type": "Pick", "inputs": {"first": first, "a": ["1", 0], "b": ["2", 0]}}}


def test_a_v3_node_whose_fingerprint_is_unchanged_stays_cached():
    RUNS.clear()
    executor = Executor(v3_registry())
    assert executor.execute(prompt(), prompt_id="a").outputs["3"] == {"value": [4]}
    again = executor.execute(prompt(), prompt_id="b")
    assert again.status == "success", again.error
    assert RUNS["Stamped"] == 1 and again.executed == []


def test_a_v3_async_check_lazy_status_is_awaited():
    RUNS.clear()
    outcome = Executor(v3_registry()).execute(prompt(first=False), prompt_id="p")
    assert outcome.status == "success", outcome.error
    assert outcome.outputs["3"] == {"value": [9]}
    assert "1" not in outcome.executed


def test_a_v3_validate_inputs_with_kwargs_gets_the_inputs_but_not_the_hidden_ones():
    from comfy_api.latest import io
    from engine.validation import validate_prompt
    from loom_compat.v3 import V3Node

    seen = []

    class Checked(io.ComfyNode):
        @classmethod
        def define_schema(cls):
            return io.Schema(node_id="Checked", is_output_node=True, inputs=[io.Int.Input("value")],
                             hidden=[io.Hidden.unique_id])

        @classmethod
        def validate_inputs(cls, **kwargs):
            seen.append(kwargs)
            return "bad" if kwargs["value"] > 3 else True

        @classmethod
        def execute(cls, value):
            return io.NodeOutput()

    registry = Registry()
    registry.add(V3Node(Checked))
    assert validate_prompt(registry, {"1": {"class_type": "Checked", "inputs": {"value": 2}}}).ok
    assert seen == [{"value": 2}]
    result = validate_prompt(registry, {"1": {"class_type": "Checked", "inputs": {"value": 5}}})
    (issue,) = result.node_errors["1"]["errors"]
    assert (issue["details"], issue["extra_info"]) == ("value - bad", {"input_name": "value"})
