"""Bad input gets a 4xx with a JSON error that names the problem; nothing crashes."""

from __future__ import annotations

import pytest

from server.config import ServerOptions

from .conftest import text_prompt


async def _raw_post(server, path: str, data: bytes | str, content_type: str = "application/json"):
    async with await server.session.post(server.url + path, data=data,
                                         headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


@pytest.mark.parametrize("path", ["/prompt", "/queue", "/history", "/free", "/interrupt"])
async def test_malformed_json_is_a_400_naming_json(server, path):
    status, body = await _raw_post(server, path, "{not json")
    assert status == 400
    assert body["error"]["type"] == "invalid_json"


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null"])
async def test_a_body_that_is_not_an_object_is_a_400(server, body):
    status, answer = await _raw_post(server, "/prompt", body)
    assert status == 400
    assert "expected a JSON object" in answer["error"]["message"]


async def test_a_body_without_prompt_is_comfyuis_no_prompt_error(server):
    status, body = await _raw_post(server, "/prompt", "{}")
    assert status == 400
    assert body["error"]["type"] == "no_prompt"
    assert body["node_errors"] == {}


@pytest.mark.parametrize("field, value, named", [
    ("client_id", 5, "client_id"),
    ("extra_data", [1], "extra_data"),
    ("number", "first", "number"),
    ("prompt_id", 7, "prompt_id"),
    ("partial_execution_targets", "3", "partial_execution_targets"),
])
async def test_wrong_field_types_are_a_400_naming_the_field(server, field, value, named):
    async with await server.post("/prompt", {"prompt": text_prompt(), field: value}) as response:
        body = await response.json()
    assert response.status == 400
    assert named in body["error"]["message"]


async def test_an_invalid_prompt_is_a_400_with_node_errors(server):
    prompt = text_prompt()
    prompt["2"]["inputs"]["text"] = ["99", 0]
    async with await server.post("/prompt", {"prompt": prompt}) as response:
        body = await response.json()
    assert response.status == 400
    assert set(body) == {"error", "node_errors"}
    assert body["error"]["type"]


async def test_an_unknown_node_class_is_a_400(server):
    prompt = {"1": {"class_type": "NoSuchNode", "inputs": {}}}
    async with await server.post("/prompt", {"prompt": prompt}) as response:
        assert response.status == 400
        assert "NoSuchNode" in (await response.text())


async def test_a_body_over_the_json_limit_is_a_413(running, tmp_path):
    run = await running(ServerOptions(max_json_size=1000, web_root=tmp_path))
    status, body = await _raw_post(run, "/prompt", '{"prompt": "' + "x" * 5000 + '"}')
    assert status == 413
    assert body["error"]["type"] == "body_too_large"


async def test_the_upload_limit_caps_json_bodies_too(running, tmp_path):
    run = await running(ServerOptions(max_upload_size=0.001, web_root=tmp_path))
    status, body = await _raw_post(run, "/queue", "[" + "1," * 5000 + "1]")
    assert status == 413


@pytest.mark.parametrize("method, path", [("GET", "/no/such/route"), ("GET", "/api/nothing")])
async def test_unknown_routes_are_a_json_404(server, method, path):
    async with await server.session.request(method, server.url + path) as response:
        assert response.status == 404
        assert (await response.json())["error"]["type"] in ("not_found",)


async def test_a_wrong_method_is_a_json_405(server):
    async with await server.session.delete(server.url + "/prompt") as response:
        assert response.status == 405
        assert (await response.json())["error"]["type"] == "method_not_allowed"


@pytest.mark.parametrize("query", ["max_items=abc", "max_items=-1", "offset=x"])
async def test_a_bad_history_query_is_a_400(server, query):
    async with await server.get(f"/history?{query}") as response:
        assert response.status == 400


@pytest.mark.parametrize("body", [
    {}, {"delete": "abc"}, {"delete": [1]}, {"clear": "yes"}, {"move": {"prompt_id": "x"}},
    {"move": {"prompt_id": "x", "position": "first"}}, {"pause": 1},
])
async def test_bad_queue_operations_are_a_400(server, body):
    async with await server.post("/queue", body) as response:
        assert response.status == 400
        assert "error" in await response.json()


async def test_a_websocket_route_hit_by_plain_http_is_a_400(server):
    async with await server.get("/ws") as response:
        assert response.status == 400


async def test_a_too_long_client_id_is_refused(server):
    async with await server.get("/ws?clientId=" + "x" * 500) as response:
        assert response.status == 400


async def test_unknown_model_folder_is_a_404(server):
    async with await server.get("/models/nope") as response:
        assert response.status == 404


async def test_a_ui_workflow_that_cannot_convert_is_a_400(server):
    async with await server.post("/prompt", {"workflow": {"nodes": "broken", "links": []}}) as response:
        body = await response.json()
    assert response.status == 400
    assert body["error"]["type"] in ("invalid_workflow", "no_prompt")
