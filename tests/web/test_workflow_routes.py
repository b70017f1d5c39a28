"""GET /workflows and /workflows/{name}: the editor's Open list, shipped and user files,
never a file outside their folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yarl

import server.routes_editor as routes_editor
from tests.server.conftest import running  # noqa: F401  (fixture)

WORKFLOW = {"last_node_id": 0, "last_link_id": 0, "nodes": [], "links": [], "groups": [], "version": 0.4}


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "repo_workflows"
    folder.mkdir()
    (folder / "txt2img.json").write_text(json.dumps({**WORKFLOW, "extra": {"which": "shipped txt2img"}}))
    (folder / "Area composition.json").write_text(json.dumps(WORKFLOW))
    (folder / "README.md").write_text("not a workflow")
    monkeypatch.setattr(routes_editor, "SHIPPED_WORKFLOWS", folder)
    return folder


@pytest.fixture
async def server(running, shipped, tmp_path):  # noqa: F811
    run = await running(base=tmp_path / "base")
    user = Path(run.server.folders.user) / "workflows"
    (user / "portraits").mkdir(parents=True)
    (user / "mine.json").write_text(json.dumps({**WORKFLOW, "extra": {"which": "user mine"}}))
    (user / "portraits" / "face.json").write_text("{\"nodes\": [], \"extra\": {\"cfg\": NaN}}")
    (user / "txt2img.json").write_text(json.dumps({**WORKFLOW, "extra": {"which": "user txt2img"}}))
    return run


async def test_lists_shipped_and_user_workflows_with_user_names_under_user(server):
    listed = await server.get_json("/workflows")
    assert listed == [
        {"name": "Area composition.json", "source": "shipped"},
        {"name": "txt2img.json", "source": "shipped"},
        {"name": "user/mine.json", "source": "user"},
        {"name": "user/portraits/face.json", "source": "user"},
        {"name": "user/txt2img.json", "source": "user"},
    ]


async def test_a_shipped_and_a_user_workflow_of_the_same_name_are_both_reachable(server):
    assert (await server.get_json("/workflows/txt2img.json"))["extra"]["which"] == "shipped txt2img"
    assert (await server.get_json("/workflows/user/txt2img.json"))["extra"]["which"] == "user txt2img"


async def test_user_workflow_in_a_subfolder_is_sent_as_stored(server):
    async with await server.get("/workflows/user/portraits/face.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert "NaN" in await response.text()


async def test_routes_are_also_under_api(server):
    assert len(await server.get_json("/api/workflows")) == 5
    assert (await server.get_json("/api/workflows/user/mine.json"))["extra"]["which"] == "user mine"


@pytest.mark.parametrize("name", ["nope.json", "README.md", "user/../../etc/passwd", "user/%2e%2e/secret.json",
                                  "..%2Fsecret.json", "portraits/face.json", "user/portraits", "user/"])
async def test_unknown_or_escaping_names_are_404_naming_the_workflow(server, name, tmp_path):
    (tmp_path / "base" / "secret.json").write_text(json.dumps(WORKFLOW))
    raw = yarl.URL(server.url + "/workflows/" + name, encoded=True)  # sent as written, not normalised
    async with await server.session.get(raw) as response:
        assert response.status == 404
        body = await response.json()
        assert body["error"]["type"] == "workflow_not_found"
        assert "GET /workflows" in body["error"]["message"]


async def test_a_symlink_out_of_the_user_folder_is_neither_listed_nor_served(server, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(WORKFLOW))
    os.symlink(outside, Path(server.server.folders.user) / "workflows" / "escape.json")
    assert "user/escape.json" not in [e["name"] for e in await server.get_json("/workflows")]
    async with await server.get("/workflows/user/escape.json") as response:
        assert response.status == 404


async def test_no_user_folder_yet_lists_only_the_shipped_ones(running, shipped, tmp_path):  # noqa: F811
    run = await running(base=tmp_path / "fresh")
    assert [e["source"] for e in await run.get_json("/workflows")] == ["shipped", "shipped"]
