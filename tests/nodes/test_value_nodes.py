"""Primitive, string and math nodes: their values and their ComfyUI-compatible schemas."""

from __future__ import annotations

import sys

import pytest

from nodes.math import OPERATIONS, FloatMath, IntMath
from nodes.primitives import (
    PrimitiveBoolean,
    PrimitiveFloat,
    PrimitiveInt,
    PrimitiveString,
    PrimitiveStringMultiline,
)
from nodes.strings import PreviewAny, StringConcatenate, StringReplace, as_text

# -- primitives ---------------------------------------------------------------------


@pytest.mark.parametrize("definition, value", [
    (PrimitiveInt, -7), (PrimitiveFloat, 2.5), (PrimitiveString, "hi"),
    (PrimitiveStringMultiline, "a\nb"), (PrimitiveBoolean, True),
])
def test_a_primitive_outputs_its_value(definition, value):
    assert definition.fn(value) == value


@pytest.mark.parametrize("definition, type_name, display_name", [
    (PrimitiveInt, "INT", "Int"), (PrimitiveFloat, "FLOAT", "Float"), (PrimitiveString, "STRING", "String"),
    (PrimitiveStringMultiline, "STRING", "String (Multiline)"), (PrimitiveBoolean, "BOOLEAN", "Boolean"),
])
def test_primitives_have_comfyuis_schema(definition, type_name, display_name):
    schema = definition.schema()
    assert schema.category == "utils/primitive"
    assert schema.display_name == display_name
    assert [spec.name for spec in schema.inputs] == ["value"]
    assert schema.inputs[0].type == type_name
    assert [output.type for output in schema.outputs] == [type_name]


def test_the_int_primitive_spans_the_full_range_and_can_change_after_each_run():
    spec = PrimitiveInt.schema().inputs[0]
    assert (spec.min, spec.max, spec.control_after_generate) == (-sys.maxsize, sys.maxsize, True)


def test_the_multiline_primitive_has_a_multiline_widget():
    assert PrimitiveStringMultiline.schema().inputs[0].multiline
    assert not PrimitiveString.schema().inputs[0].multiline


# -- strings ------------------------------------------------------------------------


def test_concatenate_joins_with_the_delimiter():
    assert StringConcatenate.fn("left", "right", ", ") == "left, right"
    assert StringConcatenate.fn("a", "b", "") == "ab"


def test_concatenate_has_comfyuis_inputs():
    schema = StringConcatenate.schema()
    assert [s.name for s in schema.inputs] == ["string_a", "string_b", "delimiter"]
    assert (schema.category, schema.display_name) == ("utils/string", "Concatenate")


def test_replace_replaces_every_occurrence():
    assert StringReplace.fn("a cat and a cat", "cat", "dog") == "a dog and a dog"


def test_replace_has_comfyuis_inputs():
    assert [s.name for s in StringReplace.schema().inputs] == ["string", "find", "replace"]


@pytest.mark.parametrize("value, text", [
    ("plain", "plain"), (3, "3"), (2.5, "2.5"), (True, "True"), (None, "None"),
    ({"a": [1, 2]}, '{\n    "a": [\n        1,\n        2\n    ]\n}'),
])
def test_preview_any_shows_values_as_text(value, text):
    assert as_text(value) == text


def test_preview_any_falls_back_to_str_for_other_objects():
    class Thing:
        def __str__(self):
            return "a thing"

    assert as_text(Thing()) == "a thing"


def test_preview_any_shows_the_text_on_the_node():
    result = PreviewAny.fn([1, "two"])
    assert result.values == ()
    assert result.ui == {"text": ['[\n    1,\n    "two"\n]']}


def test_preview_any_is_an_output_node_accepting_anything():
    schema = PreviewAny.schema()
    assert schema.output_node
    assert [(s.name, s.type) for s in schema.inputs] == [("source", "*")]
    assert (schema.category, schema.display_name) == ("utilities", "Preview as Text")


# -- math ---------------------------------------------------------------------------


@pytest.mark.parametrize("operation, expected", [
    ("add", 10), ("subtract", 4), ("multiply", 21), ("divide", 2), ("modulo", 1),
    ("power", 343), ("minimum", 3), ("maximum", 7),
])
def test_int_math(operation, expected):
    assert IntMath.fn(7, 3, operation) == expected


def test_int_division_rounds_down_and_modulo_follows_the_divisor():
    assert IntMath.fn(-7, 2, "divide") == -4
    assert IntMath.fn(-7, 2, "modulo") == 1


@pytest.mark.parametrize("operation, expected", [
    ("add", 8.5), ("subtract", 5.5), ("multiply", 10.5), ("divide", 7 / 1.5), ("modulo", 1.0),
    ("power", 7 ** 1.5), ("minimum", 1.5), ("maximum", 7.0),
])
def test_float_math(operation, expected):
    assert FloatMath.fn(7.0, 1.5, operation) == pytest.approx(expected)


@pytest.mark.parametrize("definition, operation", [
    (IntMath, "divide"), (IntMath, "modulo"), (FloatMath, "divide"), (FloatMath, "modulo"),
])
def test_dividing_by_zero_is_a_clear_error(definition, operation):
    with pytest.raises(ValueError, match=f"{definition.class_type}: cannot {operation} 5.* by zero"):
        definition.fn(5, 0, operation)


def test_a_huge_integer_power_is_refused_instead_of_hanging():
    with pytest.raises(ValueError, match="IntMath: 10 to the power 10000000000 is too large"):
        IntMath.fn(10, 10**10, "power")


def test_a_negative_integer_exponent_is_refused():
    with pytest.raises(ValueError, match="non-negative exponent"):
        IntMath.fn(2, -1, "power")


def test_a_float_overflow_is_a_clear_error():
    with pytest.raises(ValueError, match="too large"):
        FloatMath.fn(1e300, 1e300, "multiply")
    with pytest.raises(ValueError, match="too large"):
        FloatMath.fn(10.0, 400.0, "power")


def test_a_float_power_without_a_real_value_is_a_clear_error():
    with pytest.raises(ValueError, match="no real value"):
        FloatMath.fn(-8.0, 0.5, "power")


def test_an_unknown_operation_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown operation 'sqrt'"):
        IntMath.fn(1, 2, "sqrt")


def test_math_nodes_offer_every_operation_in_a_combo():
    for definition, type_name in ((IntMath, "INT"), (FloatMath, "FLOAT")):
        schema = definition.schema()
        assert [(s.name, s.type) for s in schema.inputs] == [("a", type_name), ("b", type_name), ("operation", "COMBO")]
        assert schema.inputs[2].choices == OPERATIONS
        assert [o.type for o in schema.outputs] == [type_name]
