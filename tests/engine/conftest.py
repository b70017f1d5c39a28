"""Small pure-Python nodes the engine tests run, with execution counting."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any

import pytest

from engine.declare import Float, Input, Int, String, node
from engine.executor import Executor
from engine.node import NodeContext, NodeOutput
from engine.registry import Registry


class Recorder:
    """Counts node executions and collects events."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.events: list[Any] = []
        #: node id → (start, end) of its run, for checks on overlap
        self.spans: dict[str, tuple[float, float]] = {}

    def sink(self, event: Any) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def reset(self) -> None:
        self.calls.clear()
        self.events.clear()


def make_nodes(rec: Recorder) -> list:
    @node(category="test")
    def Number(value: int = Int(0, min=-1000, max=1000), ctx: NodeContext = None) -> int:
        rec.calls[ctx.node_id] += 1
        return value

    @node(category="test")
    def Add(a: int, b: int = Int(0), ctx: NodeContext = None) -> int:
        rec.calls[ctx.node_id] += 1
        return a + b

    @node(category="test")
    def Scale(x: float = Float(1.0, min=0.0, max=10.0), ctx: NodeContext = None) -> float:
        rec.calls[ctx.node_id] += 1
        return x * 2

    @node(category="test")
    def Text(text: str = String("", multiline=True)) -> str:
        return text

    @node(category="test", output_node=True)
    def Show(value: Any, ctx: NodeContext = None) -> None:
        rec.calls[ctx.node_id] += 1
        return NodeOutput(ui={"value": [value]})

    @node(category="test", output_node=True)
    def Fail(value: Any) -> None:
        raise RuntimeError("this node always fails")

    def choose_needed(use_first: bool, first=None, second=None):
        return ["first"] if use_first else ["second"]

    @node(category="test", lazy_check=choose_needed)
    def Switch(use_first: bool, first: Any = Input(lazy=True), second: Any = Input(lazy=True)) -> Any:
        return first if use_first else second

    @node(category="test", output_is_list=(True,))
    def Range(count: int = Int(3, min=0, max=100), ctx: NodeContext = None) -> int:
        rec.calls[ctx.node_id] += 1
        return list(range(count))

    @node(category="test", input_is_list=True)
    def Sum(values: int, ctx: NodeContext = None) -> int:
        rec.calls[ctx.node_id] += 1
        return sum(values)

    @node(category="test")
    def Slow(value: Any, steps: int = Int(50), ctx: NodeContext = None) -> Any:
        import time
        for step in range(steps):
            ctx.progress(step + 1, steps)
            time.sleep(0.01)
        return value

    @node(category="test")
    async def AsyncSleep(value: Any, seconds: float = Float(0.2), ctx: NodeContext = None) -> Any:
        rec.calls[ctx.node_id] += 1
        started = time.monotonic()
        await asyncio.sleep(seconds)
        rec.spans[ctx.node_id] = (started, time.monotonic())
        return value

    return [Number, Add, Scale, Text, Show, Fail, Switch, Range, Sum, Slow, AsyncSleep]


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(rec: Recorder) -> Registry:
    registry = Registry()
    registry.add_all(make_nodes(rec))
    return registry


@pytest.fixture
def executor(registry: Registry) -> Executor:
    return Executor(registry)


def chain(length: int) -> dict:
    """Number → Add → Add → ... → Show."""
    prompt = {"0": {"class_type": "Number", "inputs": {"value": 1}}}
    for i in range(1, length):
        prompt[str(i)] = {"class_type": "Add", "inputs": {"a": [str(i - 1), 0], "b": 1}}
    prompt[str(length)] = {"class_type": "Show", "inputs": {"value": [str(length - 1), 0]}}
    return prompt
