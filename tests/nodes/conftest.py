"""Fixtures for the built-in node tests: a host env in a temporary folder and
real NodeContexts to call typed nodes through ``<Node>.fn(...)``."""

from __future__ import annotations

from typing import Any, Callable

import pytest

from engine.node import NodeContext
from nodes.runtime import LoomEnv


@pytest.fixture
def env(tmp_path) -> LoomEnv:
    return LoomEnv.at(tmp_path / "loom", device="cpu")


@pytest.fixture
def folders(env):
    return env.folders


@pytest.fixture
def make_ctx(env) -> Callable[..., NodeContext]:
    def make(prompt: dict[str, Any] | None = None, extra_pnginfo: dict[str, Any] | None = None,
             node_id: str = "1") -> NodeContext:
        extra = {} if extra_pnginfo is None else {"extra_pnginfo": extra_pnginfo}
        return NodeContext(
            node_id=node_id,
            display_node_id=node_id,
            prompt_id="prompt-under-test",
            prompt=prompt or {},
            extra_data=extra,
            env=env,
            report_progress=lambda node, value, total, preview: None,
            is_interrupted=lambda: False,
        )

    return make


@pytest.fixture
def ctx(make_ctx) -> NodeContext:
    return make_ctx()
