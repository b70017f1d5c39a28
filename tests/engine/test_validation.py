"""Validation reports every problem in ComfyUI's error shape."""

from __future__ import annotations

from engine.declare import Combo, node
from engine.registry import Registry
from engine.validation import validate_prompt


def error_types(result, node_id):
    return [e["type"] for e in result.node_errors[node_id]["errors"]]


def test_a_prompt_that_is_not_an_object_is_invalid(registry):
    result = validate_prompt(registry, ["not", "a", "dict"])
    assert not result.ok
    assert result.error.type == "invalid_prompt"


def test_a_node_without_class_type_is_named_in_the_error(registry):
    result = validate_prompt(registry, {"5": {"inputs": {}}})
    assert result.error.type == "invalid_prompt"
    assert "#5" in result.error.details


def test_unknown_class_type_is_reported_with_the_node(registry):
    prompt = {"1": {"class_type": "NoSuchNode", "inputs": {}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(registry, prompt)
    assert result.error.type == "missing_node_type"
    assert "NoSuchNode" in result.error.message
    assert error_types(result, "1") == ["missing_node_type"]


def test_a_prompt_without_output_nodes_is_rejected(registry):
    result = validate_prompt(registry, {"1": {"class_type": "Number", "inputs": {"value": 1}}})
    assert result.error.type == "prompt_no_outputs"


def test_missing_required_input_names_the_input(registry):
    result = validate_prompt(registry, {"1": {"class_type": "Show", "inputs": {}}})
    assert result.error.type == "prompt_outputs_failed_validation"
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "required_input_missing"
    assert issue["extra_info"]["input_name"] == "value"
    assert result.node_errors["1"]["dependent_outputs"] == ["1"]
    assert result.node_errors["1"]["class_type"] == "Show"


def test_link_to_a_missing_node_is_a_bad_linked_input(registry):
    result = validate_prompt(registry, {"1": {"class_type": "Show", "inputs": {"value": ["9", 0]}}})
    assert error_types(result, "1") == ["bad_linked_input"]
    assert "'9'" in result.node_errors["1"]["errors"][0]["details"]


def test_link_to_a_slot_out_of_range_is_a_bad_linked_input(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 3]}}}
    result = validate_prompt(registry, prompt)
    assert error_types(result, "2") == ["bad_linked_input"]


def test_link_type_mismatch_is_reported_with_both_types(registry):
    prompt = {"1": {"class_type": "Text", "inputs": {"text": "hi"}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    result = validate_prompt(registry, prompt)
    (issue,) = result.node_errors["2"]["errors"]
    assert issue["type"] == "return_type_mismatch"
    assert "received_type(STRING) mismatch input_type(INT)" in issue["details"]


def test_wildcard_input_accepts_any_type(registry):
    prompt = {"1": {"class_type": "Text", "inputs": {"text": "hi"}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    assert validate_prompt(registry, prompt).ok


def test_union_types_match_when_they_share_a_member():
    @node(category="test")
    def MakeA() -> __import__("engine.declare").declare.Socket("A"):
        return 1

    @node(category="test", output_node=True)
    def TakeAB(x: __import__("engine.declare").declare.Socket("B,A")) -> None:
        return None

    registry = Registry()
    registry.add_all([MakeA, TakeAB])
    prompt = {"1": {"class_type": "MakeA", "inputs": {}}, "2": {"class_type": "TakeAB", "inputs": {"x": ["1", 0]}}}
    assert validate_prompt(registry, prompt).ok


def test_value_not_convertible_to_int_is_invalid_input_type(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": "twelve"}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(registry, prompt)
    assert error_types(result, "1") == ["invalid_input_type"]


def test_numeric_strings_are_converted_to_the_declared_type(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": "12"}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(registry, prompt)
    assert result.ok
    assert result.prompt["1"]["inputs"]["value"] == 12


def test_values_outside_min_and_max_are_reported(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 5000}},
              "2": {"class_type": "Scale", "inputs": {"x": -1.0}},
              "3": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
              "4": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    result = validate_prompt(registry, prompt)
    assert error_types(result, "1") == ["value_bigger_than_max"]
    assert error_types(result, "2") == ["value_smaller_than_min"]


def test_a_value_not_among_combo_options_is_reported():
    @node(category="test", output_node=True)
    def Pick(choice: str = Combo(("a", "b"), default="a")) -> None:
        return None

    registry = Registry()
    registry.add(Pick)
    result = validate_prompt(registry, {"1": {"class_type": "Pick", "inputs": {"choice": "c"}}})
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "value_not_in_list"
    assert "'c' not in ['a', 'b']" in issue["details"]


class _HostKnowingItsModelFolders:
    def missing_model_message(self, kind, name):
        return f"{kind} '{name}' not found; put it in models/{kind}/"


def test_a_missing_model_file_is_reported_with_the_folder_it_belongs_in():
    @node(category="test", output_node=True)
    def Load(ckpt: str = Combo(("have.safetensors",), model_kind="checkpoints")) -> None:
        return None

    registry = Registry(env=_HostKnowingItsModelFolders())
    registry.add(Load)
    result = validate_prompt(registry, {"1": {"class_type": "Load", "inputs": {"ckpt": "want.safetensors"}}})
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "value_not_in_list"  # the type ComfyUI clients know
    assert issue["message"] == "Model file not found"
    assert issue["details"] == "ckpt: checkpoints 'want.safetensors' not found; put it in models/checkpoints/"


def test_a_model_combo_without_a_host_that_knows_folders_falls_back_to_the_option_list():
    @node(category="test", output_node=True)
    def Load(ckpt: str = Combo(("have.safetensors",), model_kind="checkpoints")) -> None:
        return None

    registry = Registry()
    registry.add(Load)
    result = validate_prompt(registry, {"1": {"class_type": "Load", "inputs": {"ckpt": "want.safetensors"}}})
    (issue,) = result.node_errors["1"]["errors"]
    assert "'want.safetensors' not in ['have.safetensors']" in issue["details"]


def test_every_error_of_a_prompt_is_reported_at_once(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": "x"}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {}},
              "4": {"class_type": "Scale", "inputs": {"x": 99.0}},
              "5": {"class_type": "Show", "inputs": {"value": ["4", 0]}}}
    result = validate_prompt(registry, prompt)
    assert set(result.node_errors) == {"1", "3", "4"}


def test_a_cycle_is_an_error_naming_its_nodes(registry):
    prompt = {"1": {"class_type": "Add", "inputs": {"a": ["2", 0], "b": 1}},
              "2": {"class_type": "Add", "inputs": {"a": ["1", 0], "b": 1}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    result = validate_prompt(registry, prompt)
    assert error_types(result, "1") == ["dependency_cycle"]
    assert error_types(result, "2") == ["dependency_cycle"]
    assert result.node_errors["1"]["errors"][0]["extra_info"]["cycle"] == ["1", "2"]


def test_valid_outputs_run_even_when_another_output_is_invalid(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {}}}
    result = validate_prompt(registry, prompt)
    assert result.ok
    assert result.outputs == ["2"]
    assert "3" in result.node_errors


def test_partial_execution_targets_limit_the_outputs(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": 1}},
              "2": {"class_type": "Show", "inputs": {"value": ["1", 0]}},
              "3": {"class_type": "Show", "inputs": {"value": ["1", 0]}}}
    result = validate_prompt(registry, prompt, partial_execution_targets=["3"])
    assert result.outputs == ["3"]


def test_nodes_not_needed_by_an_output_are_not_validated(registry):
    prompt = {"1": {"class_type": "Number", "inputs": {"value": "broken"}},
              "2": {"class_type": "Number", "inputs": {"value": 1}},
              "3": {"class_type": "Show", "inputs": {"value": ["2", 0]}}}
    result = validate_prompt(registry, prompt)
    assert result.ok and result.node_errors == {}
    assert result.order == ["2", "3"]


def test_a_list_literal_is_passed_as_one_value(registry):
    prompt = {"1": {"class_type": "Show", "inputs": {"value": {"__value__": [1, 2, 3]}}}}
    result = validate_prompt(registry, prompt)
    assert result.ok


def test_validate_inputs_failure_is_a_custom_validation_error():
    def only_even(value):
        return True if value % 2 == 0 else f"{value} is odd"

    @node(category="test", output_node=True, validate=only_even)
    def Even(value: int) -> None:
        return None

    registry = Registry()
    registry.add(Even)
    result = validate_prompt(registry, {"1": {"class_type": "Even", "inputs": {"value": 3}}})
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "custom_validation_failed"
    assert "3 is odd" in issue["details"]


def test_validate_inputs_taking_an_input_turns_off_its_range_check():
    @node(category="test", output_node=True, validate=lambda value: True)
    def Lenient(value: int = __import__("engine.declare").declare.Int(0, max=10)) -> None:
        return None

    registry = Registry()
    registry.add(Lenient)
    assert validate_prompt(registry, {"1": {"class_type": "Lenient", "inputs": {"value": 99}}}).ok


def test_validate_inputs_asking_for_input_types_turns_off_the_link_type_check():
    seen = {}

    def check(input_types):
        seen.update(input_types)
        return True

    @node(category="test", output_node=True, validate=check)
    def TakesInts(value: int) -> None:
        return None

    @node(category="test")
    def Word() -> str:
        return "w"

    registry = Registry()
    registry.add_all([TakesInts, Word])
    prompt = {"1": {"class_type": "Word", "inputs": {}}, "2": {"class_type": "TakesInts", "inputs": {"value": ["1", 0]}}}
    assert validate_prompt(registry, prompt).ok
    assert seen == {"value": "STRING"}


def test_response_has_comfyui_shape(registry):
    result = validate_prompt(registry, {"1": {"class_type": "Show", "inputs": {}}})
    body = result.response()
    assert set(body) == {"error", "node_errors"}
    assert set(body["error"]) == {"type", "message", "details", "extra_info"}
    assert set(body["node_errors"]["1"]) == {"errors", "dependent_outputs", "class_type"}
