"""ComfyUI's PreviewAny (comfy_extras/nodes_preview_any.py) is an output node
with ``RETURN_TYPES = ()``: clients and workflows see no output socket."""

from __future__ import annotations

import nodes
from engine.object_info import node_info
from engine.registry import Registry
from engine.validation import validate_prompt


def test_preview_any_declares_no_outputs_as_comfyui():
    registry = Registry()
    registry.add_all(nodes.builtin_nodes())
    info = node_info(registry.schema("PreviewAny"))
    assert info["output"] == [] and info["output_name"] == [] and info["output_is_list"] == []
    assert info["output_node"] is True
    # Nothing can link from it.
    prompt = {"1": {"class_type": "PreviewAny", "inputs": {"source": 1}},
              "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}}}
    (issue,) = validate_prompt(registry, prompt).node_errors["2"]["errors"]
    assert issue["type"] == "bad_linked_input"
