"""A1111's PNG ``parameters`` text imported as an equivalent txt2img graph.

The same fixtures drive the JS twin (tests/web/a1111.test.mjs)."""

import json
from pathlib import Path

import pytest

from engine.workflow_format import WorkflowConversionError
from nodes.a1111_parameters import a1111_to_api

CASES = sorted((Path(__file__).parent / "fixtures" / "a1111").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", [p for p in CASES if "api" in load(p)], ids=lambda p: p.stem)
def test_parameters_convert_to_the_expected_txt2img_prompt(path):
    case = load(path)
    assert a1111_to_api(case["parameters"], case["checkpoints"]) == case["api"], case["about"]


@pytest.mark.parametrize("path", [p for p in CASES if "error" in load(p)], ids=lambda p: p.stem)
def test_unconvertible_parameters_raise_a_clear_error(path):
    case = load(path)
    with pytest.raises(WorkflowConversionError) as info:
        a1111_to_api(case["parameters"], case["checkpoints"])
    for fragment in case["error"]["message_contains"]:
        assert fragment in str(info.value)


def test_imported_prompt_passes_validation_against_the_built_in_nodes(tmp_path):
    import nodes
    from engine.registry import Registry
    from engine.validation import validate_prompt
    from nodes.runtime import LoomEnv

    (tmp_path / "models" / "checkpoints").mkdir(parents=True)
    (tmp_path / "models" / "checkpoints" / "real.safetensors").write_bytes(b"")
    registry = Registry(env=LoomEnv.at(tmp_path, device="cpu"))
    registry.add_all(nodes.builtin_nodes(), origin="builtin")
    case = load(next(p for p in CASES if p.stem == "schedule_type_field_and_clip_skip"))
    prompt = a1111_to_api(case["parameters"], registry.env.folders.list_models("checkpoints"))
    result = validate_prompt(registry, prompt)
    assert result.ok, result.response()


def test_empty_text_is_refused():
    with pytest.raises(WorkflowConversionError, match="empty"):
        a1111_to_api("   ")
