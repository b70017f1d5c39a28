"""``/openapi.json`` tells the truth: live responses match it, and fuzzing the
API from it finds no server errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema_rs
import pytest

from server.openapi import openapi_spec

from .conftest import listen, sleep_prompt, text_prompt
from .nodes_for_tests import png_bytes
from .process import ServerProcess

SPEC = openapi_spec()


def _operation(path: str, method: str) -> dict:
    for template, item in SPEC["paths"].items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return item[method.lower()]
    raise AssertionError(f"{method} {path} is not in the OpenAPI spec")


async def _check(response, path: str, method: str = "GET") -> None:
    operation = _operation(path.split("?")[0], method)
    status = str(response.status)
    assert status in operation["responses"], f"{method} {path} answered {status}, not documented"
    content = operation["responses"][status].get("content", {})
    if "application/json" in content:
        schema = {**content["application/json"]["schema"], "components": SPEC["components"]}
        body = await response.json()
        errors = [str(e) for e in jsonschema_rs.Draft202012Validator(schema).iter_errors(body)]
        assert not errors, f"{method} {path}: {errors[:3]}"


def test_the_spec_is_an_openapi_3_document_covering_every_route():
    assert SPEC["openapi"].startswith("3.")
    for path in ["/prompt", "/queue", "/history", "/history/{prompt_id}", "/interrupt", "/free",
                 "/view", "/upload/image", "/upload/mask", "/object_info", "/object_info/{node_class}",
                 "/embeddings", "/models", "/models/{folder}", "/system_stats", "/features", "/ws"]:
        assert path in SPEC["paths"] and "/api" + path in SPEC["paths"]
    queue_ops = SPEC["components"]["schemas"]["QueueOperation"]["properties"]
    assert {"pause", "resume", "move", "clear", "delete"} <= set(queue_ops)


async def test_live_responses_match_the_spec(server):
    listener = await listen(server)
    prompt_id = await server.queue(text_prompt("spec"), listener.client_id)
    await listener.until_done(prompt_id)
    (server.base / "output").mkdir(parents=True, exist_ok=True)
    (server.base / "output" / "a.png").write_bytes(png_bytes())

    gets = ["/prompt", "/queue", "/history", "/history?max_items=1", f"/history/{prompt_id}",
            "/object_info", "/object_info/Text", "/object_info/Nope", "/embeddings", "/models",
            "/models/checkpoints", "/models/nope", "/system_stats", "/features", "/openapi.json",
            "/extensions", "/view?filename=a.png", "/view?filename=missing.png",
            "/view?filename=../x.png", "/history?max_items=x", "/api/queue"]
    for path in gets:
        async with await server.get(path) as response:
            await _check(response, path)

    posts = [
        ("/prompt", {"prompt": text_prompt("spec2")}),
        ("/prompt", {"prompt": {"1": {"class_type": "Nope", "inputs": {}}}}),
        ("/prompt", {}),
        ("/queue", {"pause": True}),
        ("/prompt", {"prompt": sleep_prompt(0.0)}),
        ("/queue", {"move": {"prompt_id": "nope", "position": 0}}),
        ("/queue", {"delete": ["nope"]}),
        ("/queue", {"clear": True}),
        ("/queue", {"resume": True}),
        ("/queue", {"delete": 5}),
        ("/history", {"delete": [prompt_id]}),
        ("/interrupt", {}),
        ("/free", {"unload_models": True}),
    ]
    for path, body in posts:
        async with await server.post(path, body) as response:
            await _check(response, path, "POST")


@pytest.mark.slow
def test_fuzzing_the_api_from_its_spec_finds_no_server_errors(tmp_path):
    base = tmp_path / "base"
    (base / "custom_nodes" / "testnodes").mkdir(parents=True)
    (base / "custom_nodes" / "testnodes" / "__init__.py").write_text(
        "from tests.server.nodes_for_tests import TEST_NODES as LOOM_NODES\n")
    process = ServerProcess(base)
    try:
        st = Path(sys.executable).with_name("st")
        result = subprocess.run(
            [str(st), "run", process.url + "/openapi.json",
             "--checks", "not_a_server_error,response_schema_conformance,status_code_conformance,"
                         "content_type_conformance",
             "--max-time", os.environ.get("LOOM_FUZZ_SECONDS", "50"), "-w", "2",
             "--suppress-health-check", "all", "--seed", "1"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    finally:
        process.stop()
    summary = result.stdout[-3000:]
    assert result.returncode == 0, summary
    assert " passed" in summary
