"""PNG text chunks carrying a generation's prompt and workflow (ComfyUI's format).

A saved PNG has a tEXt chunk ``prompt`` with the API prompt as JSON and one
chunk per ``extra_pnginfo`` key (the editor puts its UI ``workflow`` there),
each value JSON-encoded.  Dragging such a PNG onto the editor, or passing it to
``loom run``, brings the graph back.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def _jsonable(value: Any) -> Any:
    # Prompts reach nodes as read-only mappings; JSON wants plain dicts.
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} cannot be written as PNG metadata")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_jsonable)


def text_chunks(prompt: Mapping[str, Any] | None, extra_pnginfo: Mapping[str, Any] | None) -> dict[str, str]:
    """The tEXt chunks for a saved image, in ComfyUI's order: ``prompt`` first."""
    chunks: dict[str, str] = {}
    if prompt is not None:
        chunks["prompt"] = _dumps(prompt)
    for key, value in (extra_pnginfo or {}).items():
        chunks[str(key)] = _dumps(value)
    return chunks


def png_info(chunks: Mapping[str, str]):
    """A Pillow ``PngInfo`` holding ``chunks`` as tEXt (iTXt where not Latin-1)."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    return info


@dataclass(frozen=True)
class PngMetadata:
    """What a PNG says about how it was made."""

    prompt: dict[str, Any] | None = None
    workflow: dict[str, Any] | None = None
    #: Every text chunk, raw.
    text: dict[str, str] = field(default_factory=dict)


def read_metadata(source: str | os.PathLike[str] | bytes) -> PngMetadata:
    """The prompt and workflow stored in a PNG file (or its bytes).

    Chunks that are missing or not valid JSON come back as None; a file that is
    not an image raises ValueError.
    """
    from PIL import Image, UnidentifiedImageError

    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with Image.open(stream) as picture:
            text = {str(k): v for k, v in getattr(picture, "text", {}).items() if isinstance(v, str)}
    except UnidentifiedImageError:
        raise ValueError("not an image file Pillow can read") from None
    return PngMetadata(prompt=_json_object(text.get("prompt")), workflow=_json_object(text.get("workflow")), text=text)


def _json_object(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
