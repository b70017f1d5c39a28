"""Fixtures for the capability tests: a host env in a temporary folder, a real
NodeContext for calling typed nodes through ``<Node>.fn(...)``, and a graph runner."""

from __future__ import annotations

import os
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def env(tmp_path):
    from nodes.runtime import LoomEnv

    env = LoomEnv.at(tmp_path / "loom", device="cpu")
    env.folders.ensure()
    return env


@pytest.fixture
def ctx(env):
    from engine.node import NodeContext

    return NodeContext(node_id="1", display_node_id="1", prompt_id="capabilities", prompt={}, extra_data={},
                       env=env, report_progress=lambda node, value, total, preview: None,
                       is_interrupted=lambda: False)


def run_graph(env, prompt: dict[str, Any]):
    """Run an API-format prompt through the real validator-free executor; returns the outcome."""
    from engine.executor import Executor
    from engine.registry import Registry
    from nodes import builtin_nodes

    registry = Registry(env=env)
    registry.add_all(builtin_nodes(), "nodes")
    return Executor(registry, cache="none").execute(prompt, prompt_id="test", sink=lambda event: None)
