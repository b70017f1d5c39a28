"""Validation of literal values and VALIDATE_INPUTS exactly as ComfyUI's
execution.validate_inputs does it: literals of INT, FLOAT, STRING and BOOLEAN
inputs go through Python's int(), float(), str() and bool(); a failure is
``invalid_input_type`` with details "name, value, exception"; VALIDATE_INPUTS
gets the given inputs (linked ones as None) filtered to its parameters, and a
result other than True is one ``custom_validation_failed`` per input, each
with details starting with the input name and extra_info {"input_name": name}."""

from __future__ import annotations

import asyncio
import math

import pytest

from engine.comfy_v1 import compile_v1
from engine.registry import Registry
from engine.validation import validate_prompt


class Widgets:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"i": ("INT", {"default": 0, "min": -100, "max": 100}),
                             "f": ("FLOAT", {"default": 0.0}),
                             "s": ("STRING", {"default": ""}),
                             "b": ("BOOLEAN", {"default": False})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    def run(self, i, f, s, b):
        return {}


def widgets(**values) -> dict:
    inputs = {"i": 0, "f": 0.0, "s": "", "b": False, **values}
    return {"1": {"class_type": "Widgets", "inputs": inputs}}


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.add(compile_v1(Widgets, "Widgets"))
    return registry


@pytest.mark.parametrize("name, given, expected", [
    ("i", "5", 5), ("i", " 7 ", 7), ("i", 5.9, 5), ("i", True, 1),
    ("f", "1e2", 100.0), ("f", 3, 3.0), ("f", True, 1.0),
    ("s", 5, "5"), ("s", 1.5, "1.5"), ("s", None, "None"),
    ("b", "false", True), ("b", "", False), ("b", 0, False), ("b", "no", True), ("b", 2, True),
])
def test_literals_convert_with_pythons_own_constructors(registry, name, given, expected):
    result = validate_prompt(registry, widgets(**{name: given}))
    assert result.ok, result.node_errors
    converted = result.prompt["1"]["inputs"][name]
    assert converted == expected and type(converted) is type(expected)


def test_a_nan_float_literal_is_accepted_as_comfyui_accepts_it(registry):
    result = validate_prompt(registry, widgets(f="nan"))
    assert result.ok and math.isnan(result.prompt["1"]["inputs"]["f"])


@pytest.mark.parametrize("name, given, message", [
    ("i", "5.0", "invalid literal for int() with base 10: '5.0'"),
    ("i", "abc", "invalid literal for int() with base 10: 'abc'"),
    ("i", float("inf"), "cannot convert float infinity to integer"),
    ("f", "abc", "could not convert string to float: 'abc'"),
])
def test_an_unconvertible_literal_is_invalid_input_type_with_comfyuis_details(registry, name, given, message):
    result = validate_prompt(registry, widgets(**{name: given}))
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "invalid_input_type"
    kind = {"i": "INT", "f": "FLOAT"}[name]
    assert issue["message"] == f"Failed to convert an input value to a {kind} value"
    assert issue["details"] == f"{name}, {given}, {message}"
    assert issue["extra_info"]["input_name"] == name
    assert issue["extra_info"]["exception_message"] == message


def test_a_wrapped_list_value_is_unwrapped_then_converted(registry):
    result = validate_prompt(registry, widgets(i={"__value__": "12"}))
    assert result.ok and result.prompt["1"]["inputs"]["i"] == 12
    bad = validate_prompt(registry, widgets(i={"__value__": [1, 2]}))
    assert [e["type"] for e in bad.node_errors["1"]["errors"]] == ["invalid_input_type"]


def test_a_list_that_is_not_a_link_is_a_bad_linked_input(registry):
    result = validate_prompt(registry, widgets(i=[1, 2, 3]))
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "bad_linked_input"
    assert issue["message"] == "Bad linked input, must be a length-2 list of [node_id, slot_index]"
    assert issue["details"] == "i"


def test_a_converted_value_out_of_range_is_reported_after_conversion(registry):
    result = validate_prompt(registry, widgets(i="101"))
    (issue,) = result.node_errors["1"]["errors"]
    assert issue["type"] == "value_bigger_than_max" and issue["extra_info"]["received_value"] == 101


# -- VALIDATE_INPUTS ---------------------------------------------------------------

RECEIVED: list[dict] = []


class Source:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"

    def run(self):
        return (None,)


def checked(hook, extra_required=None):
    class Checked:
        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",), "name": ("STRING", {"default": ""}),
                                 "size": ("INT", {"default": 1, "min": 1, "max": 8}),
                                 **(extra_required or {})},
                    "optional": {"note": ("STRING", {"default": ""})},
                    "hidden": {"unique_id": "UNIQUE_ID"}}

        RETURN_TYPES = ()
        OUTPUT_NODE = True
        FUNCTION = "run"
        VALIDATE_INPUTS = hook

        def run(self, **kwargs):
            return {}

    registry = Registry()
    registry.add_all([compile_v1(Source, "Source"), compile_v1(Checked, "Checked")])
    return registry


def checked_prompt(**inputs) -> dict:
    return {"1": {"class_type": "Source", "inputs": {}},
            "2": {"class_type": "Checked", "inputs": {"image": ["1", 0], "name": "a.png", "size": 3, **inputs}}}


def test_validate_inputs_gets_its_parameters_with_linked_inputs_as_none():
    RECEIVED.clear()

    @classmethod
    def hook(cls, image, name, size):
        RECEIVED.append({"image": image, "name": name, "size": size})
        return True

    assert validate_prompt(checked(hook), checked_prompt(size="3")).ok
    assert RECEIVED == [{"image": None, "name": "a.png", "size": 3}]


def test_validate_inputs_with_kwargs_and_input_types_gets_every_given_input():
    RECEIVED.clear()

    @classmethod
    def hook(cls, input_types, **kwargs):
        RECEIVED.append({"input_types": input_types, **kwargs})
        return True

    # size 99 is past max: a hook taking **kwargs turns every built-in range check off
    assert validate_prompt(checked(hook), checked_prompt(size=99)).ok
    assert RECEIVED == [{"input_types": {"image": "IMAGE"}, "image": None, "name": "a.png", "size": 99,
                         "unique_id": "2"}]


def test_a_failed_validate_inputs_names_each_input_in_details_and_extra_info():
    @classmethod
    def hook(cls, name):
        return f"no file '{name}'"

    result = validate_prompt(checked(hook), checked_prompt(name="missing.png"))
    (issue,) = result.node_errors["2"]["errors"]
    assert issue == {"type": "custom_validation_failed", "message": "Custom validation failed for node",
                     "details": "name - no file 'missing.png'", "extra_info": {"input_name": "name"}}


def test_validate_inputs_returning_false_gives_the_bare_input_names():
    @classmethod
    def hook(cls, name, size):
        return False

    result = validate_prompt(checked(hook), checked_prompt())
    errors = result.node_errors["2"]["errors"]
    assert [(e["details"], e["extra_info"]) for e in errors] == [
        ("name", {"input_name": "name"}), ("size", {"input_name": "size"})]


def test_an_async_validate_inputs_is_awaited():
    @classmethod
    async def hook(cls, size):
        await asyncio.sleep(0)
        return True if size < 5 else "too big"

    assert validate_prompt(checked(hook), checked_prompt(size=3)).ok
    result = validate_prompt(checked(hook), checked_prompt(size=6))
    (issue,) = result.node_errors["2"]["errors"]
    assert issue["details"] == "size - too big" and issue["extra_info"] == {"input_name": "size"}


async def test_an_async_validate_inputs_is_awaited_inside_a_running_event_loop():
    @classmethod
    async def hook(cls, size):
        await asyncio.sleep(0)
        return "nope"

    result = validate_prompt(checked(hook), checked_prompt())
    assert result.node_errors["2"]["errors"][0]["details"] == "size - nope"
