"""``comfy_execution.graph``: the blocker a node returns to stop its consumers."""

from engine.node import ExecutionBlocker

__all__ = ["ExecutionBlocker"]
