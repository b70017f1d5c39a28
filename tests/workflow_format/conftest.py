import json
from pathlib import Path

import pytest

from engine.workflow_format import schemas_from_object_info

FIXTURES = Path(__file__).parent / "fixtures"


def fixture_cases() -> list[Path]:
    return sorted(p for p in FIXTURES.glob("*.json") if p.name != "object_info.json")


@pytest.fixture(scope="session")
def object_info() -> dict:
    return json.loads((FIXTURES / "object_info.json").read_text())


@pytest.fixture(scope="session")
def schemas(object_info):
    return schemas_from_object_info(object_info)
