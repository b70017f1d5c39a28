"""Fixtures for the capability tests: a host env in a temporary folder, a real
NodeContext for calling typed nodes through ``<Node>.fn(...)``, and a graph runner."""

from __future__ import annotations

import os
from pathlib import Path
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


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_models")


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """``tiny(kind) -> TinyModel`` (the diffusion engineer's generator), built once per session."""
    from tests.fixtures.tiny_models import build

    built = {}

    def get(kind: str):
        if kind not in built:
            built[kind] = build(kind, tiny_dir)
        return built[kind]

    return get


def install(env, kind: str, source) -> str:
    """Link a file or folder into the env's models/<kind>; returns its name."""
    folder = env.folders.models / kind
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / Path(source).name
    if not target.exists():
        os.symlink(source, target)
    return target.name
