"""Link type compatibility follows the table the editor's twin also runs over."""

import json
from pathlib import Path

import pytest

from engine.schema import types_compatible

TABLE = json.loads((Path(__file__).parents[1] / "fixtures" / "type_compatibility.json").read_text())


@pytest.mark.parametrize("output_type,input_type,expected", TABLE["cases"],
                         ids=[f"{o or 'empty'}->{i or 'empty'}" for o, i, _ in TABLE["cases"]])
def test_types_compatible_follows_the_shared_table(output_type, input_type, expected):
    assert types_compatible(output_type, input_type) is expected
