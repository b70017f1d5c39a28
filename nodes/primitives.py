"""Primitive value nodes: a widget whose value feeds other nodes.

Class names, input names and categories are ComfyUI's (``comfy_extras/
nodes_primitive.py``) so the same API prompt runs on both.
"""

from __future__ import annotations

import sys
from typing import Any

from engine.declare import Boolean, Float, Int, String, node
from engine.node import NodeDefinition

CATEGORY = "utils/primitive"


def _primitive(class_type: str, display_name: str, value_type: type, widget: Any) -> NodeDefinition:
    """A node that outputs its one widget's value unchanged."""

    def passthrough(value):
        return value

    # The declaration reads the input and output types from these, as if written out.
    passthrough.__annotations__ = {"value": value_type, "return": value_type}
    passthrough.__defaults__ = (widget,)
    passthrough.__doc__ = f"Outputs the {display_name.lower()} typed into its widget."
    passthrough.__module__ = __name__
    passthrough.__qualname__ = passthrough.__name__ = class_type
    return node(class_type, display_name=display_name, category=CATEGORY)(passthrough)


PrimitiveInt = _primitive(
    "PrimitiveInt", "Int", int,
    Int(0, min=-sys.maxsize, max=sys.maxsize, control_after_generate=True),
)
PrimitiveFloat = _primitive(
    "PrimitiveFloat", "Float", float, Float(0.0, min=-sys.maxsize, max=sys.maxsize, step=0.1),
)
PrimitiveString = _primitive("PrimitiveString", "String", str, String(""))
PrimitiveStringMultiline = _primitive(
    "PrimitiveStringMultiline", "String (Multiline)", str, String("", multiline=True),
)
PrimitiveBoolean = _primitive("PrimitiveBoolean", "Boolean", bool, Boolean(False))
