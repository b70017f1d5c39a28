"""PNG text chunks: what SaveImage writes and what read_metadata gives back."""

from __future__ import annotations

import io
import json
from types import MappingProxyType

import pytest
from PIL import Image

from nodes.png_metadata import png_info, read_metadata, text_chunks

PROMPT = {"1": {"class_type": "PrimitiveString", "inputs": {"value": "ünïcode"}}}
WORKFLOW = {"nodes": [], "links": [], "version": 0.4}


def png_bytes(chunks: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG", pnginfo=png_info(chunks))
    return buffer.getvalue()


def test_the_prompt_chunk_comes_first_then_each_extra_key():
    chunks = text_chunks(PROMPT, {"workflow": WORKFLOW, "extra": [1]})
    assert list(chunks) == ["prompt", "workflow", "extra"]
    assert json.loads(chunks["prompt"]) == PROMPT and json.loads(chunks["extra"]) == [1]


def test_read_only_mappings_are_written_as_json_objects():
    chunks = text_chunks(MappingProxyType({"1": MappingProxyType({"class_type": "X"})}), None)
    assert json.loads(chunks["prompt"]) == {"1": {"class_type": "X"}}


def test_nothing_is_written_without_a_prompt_or_extras():
    assert text_chunks(None, None) == {}


def test_metadata_reads_back_prompt_and_workflow():
    metadata = read_metadata(png_bytes(text_chunks(PROMPT, {"workflow": WORKFLOW})))
    assert metadata.prompt == PROMPT
    assert metadata.workflow == WORKFLOW


def test_metadata_reads_from_a_file_path(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(png_bytes(text_chunks(PROMPT, None)))
    assert read_metadata(path).prompt == PROMPT


def test_missing_or_broken_chunks_read_as_none():
    metadata = read_metadata(png_bytes({"prompt": "{not json", "other": "x"}))
    assert (metadata.prompt, metadata.workflow) == (None, None)
    assert metadata.text == {"prompt": "{not json", "other": "x"}


def test_reading_a_file_that_is_no_image_is_a_clear_error():
    with pytest.raises(ValueError, match="not an image file"):
        read_metadata(b"plain text")
