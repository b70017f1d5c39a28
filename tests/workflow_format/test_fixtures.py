"""Every fixture: a UI workflow and the API prompt (or error) it must give.

The same files drive the JS twin (tests/web/workflow_to_api.test.mjs)."""

import json

import pytest

from engine.workflow_format import WorkflowConversionError, load_workflow_text, ui_to_api

from .conftest import fixture_cases

CASES = fixture_cases()


def test_fixture_set_covers_every_compatibility_case():
    names = {p.stem for p in CASES}
    required = {"txt2img_v04", "version1_links_and_native_reroutes", "subgraph_flattened", "nested_subgraphs",
                "legacy_reroutes", "native_reroutes_v04", "primitive_node", "notes_dropped", "muted_node_removed",
                "bypassed_pass_through_by_type", "seed_control_legacy_true", "converted_widget_keeps_slot",
                "widgets_values_list_wins_over_named", "widgets_values_named_fills_a_short_list", "array_values_wrapped", "nan_and_infinity"}
    assert required <= names


@pytest.mark.parametrize("path", [p for p in CASES if "api" in json.loads(p.read_text())], ids=lambda p: p.stem)
def test_workflow_converts_to_expected_api_prompt(path, schemas):
    case = load_workflow_text(path.read_text())
    assert ui_to_api(case["workflow"], schemas) == case["api"], case["about"]


@pytest.mark.parametrize("path", [p for p in CASES if "error" in json.loads(p.read_text())], ids=lambda p: p.stem)
def test_unconvertible_workflow_raises_error_naming_the_node(path, schemas):
    case = load_workflow_text(path.read_text())
    expected = case["error"]
    with pytest.raises(WorkflowConversionError) as info:
        ui_to_api(case["workflow"], schemas)
    assert info.value.node_id == expected["node_id"]
    assert info.value.class_type == expected["class_type"]
    for fragment in expected["message_contains"]:
        assert fragment in str(info.value)


def test_a_list_and_names_that_disagree_are_logged_and_the_list_wins(schemas, caplog):
    case = load_workflow_text(next(p for p in CASES if p.stem == "widgets_values_list_wins_over_named").read_text())
    with caplog.at_level("WARNING", logger="loom.workflow"):
        prompt = ui_to_api(case["workflow"], schemas)
    assert prompt["3"]["inputs"]["sampler_name"] == "euler"
    assert any("sampler_name = 'euler' but widgets_values_named says 'dpmpp_2m'" in r.getMessage() for r in caplog.records)
