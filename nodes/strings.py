"""Text nodes: joining and replacing strings, and showing any value as text.

Names, inputs and categories follow ComfyUI (``comfy_extras/nodes_string.py``,
``nodes_preview_any.py``).
"""

from __future__ import annotations

import json
from typing import Any

from engine.declare import String, node
from engine.node import NodeOutput

CATEGORY = "utils/string"


@node(category=CATEGORY, display_name="Concatenate")
def StringConcatenate(
    string_a: str = String("", multiline=True),
    string_b: str = String("", multiline=True),
    delimiter: str = String(""),
) -> str:
    """Joins two strings with a delimiter between them."""
    return delimiter.join((string_a, string_b))


@node(category=CATEGORY, display_name="Replace")
def StringReplace(
    string: str = String("", multiline=True),
    find: str = String("", multiline=True),
    replace: str = String("", multiline=True),
) -> str:
    """Replaces every occurrence of `find` in the string with `replace`."""
    return string.replace(find, replace)


def as_text(value: Any) -> str:
    """How PreviewAny shows a value: strings as they are, numbers and booleans
    with str(), JSON-able data as indented JSON, anything else with str()."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    try:
        return json.dumps(value, indent=4)
    except (TypeError, ValueError):
        pass
    try:
        return str(value)
    except Exception:  # a foreign object whose __str__ fails still gets a line
        return f"<{type(value).__name__} that could not be shown as text>"


@node(category="utilities", display_name="Preview as Text", output_node=True)
def PreviewAny(source: Any) -> None:
    """Shows any value as text on the node. Like ComfyUI's, it has no outputs."""
    text = as_text(source)
    return NodeOutput(ui={"text": [text]})
