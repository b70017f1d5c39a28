"""GET /workflows and /workflows/{name}: the editor's Open list, shipped and user files,
never a file outside their folders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import http.client

import pytest

import server.routes_editor as routes_editor

from .conftest import ServerThread

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


class Client:
    """Plain HTTP against a server thread (sync: the browser tests' Playwright owns an event
    loop in this thread for the session, so async tests cannot run beside them)."""

    def __init__(self, thread: ServerThread):
        self.thread = thread
        self.server = thread.server

    def get(self, path: str) -> tuple[int, str, bytes]:
        """GET with the path sent exactly as written (no client-side normalising of '..')."""
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            conn.close()

    def get_json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, body
        return json.loads(body)


def start(base: Path):
    thread = ServerThread(base).start()
    return Client(thread)


@pytest.fixture
def server(shipped, tmp_path):
    run = start(tmp_path / "base")
    user = Path(run.server.folders.user) / "workflows"
    (user / "portraits").mkdir(parents=True)
    (user / "mine.json").write_text(json.dumps({**WORKFLOW, "extra": {"which": "user mine"}}))
    (user / "portraits" / "face.json").write_text("{\"nodes\": [], \"extra\": {\"cfg\": NaN}}")
    (user / "txt2img.json").write_text(json.dumps({**WORKFLOW, "extra": {"which": "user txt2img"}}))
    yield run
    run.thread.stop()


def test_lists_shipped_and_user_workflows_with_user_names_under_user(server):
    listed = server.get_json("/workflows")
    assert listed == [
        {"name": "Area composition.json", "source": "shipped"},
        {"name": "txt2img.json", "source": "shipped"},
        {"name": "user/mine.json", "source": "user"},
        {"name": "user/portraits/face.json", "source": "user"},
        {"name": "user/txt2img.json", "source": "user"},
    ]


def test_a_shipped_and_a_user_workflow_of_the_same_name_are_both_reachable(server):
    assert (server.get_json("/workflows/txt2img.json"))["extra"]["which"] == "shipped txt2img"
    assert (server.get_json("/workflows/user/txt2img.json"))["extra"]["which"] == "user txt2img"


def test_user_workflow_in_a_subfolder_is_sent_as_stored(server):
    status, content_type, body = server.get("/workflows/user/portraits/face.json")
    assert (status, content_type) == (200, "application/json")
    assert b"NaN" in body


def test_routes_are_also_under_api(server):
    assert len(server.get_json("/api/workflows")) == 5
    assert (server.get_json("/api/workflows/user/mine.json"))["extra"]["which"] == "user mine"


@pytest.mark.parametrize("name", ["nope.json", "README.md", "user/../../etc/passwd", "user/%2e%2e/secret.json",
                                  "..%2Fsecret.json", "portraits/face.json", "user/portraits", "user/"])
def test_unknown_or_escaping_names_are_404_naming_the_workflow(server, name, tmp_path):
    (tmp_path / "base" / "secret.json").write_text(json.dumps(WORKFLOW))
    status, _, raw = server.get("/workflows/" + name)
    assert status == 404
    body = json.loads(raw)
    assert body["error"]["type"] == "workflow_not_found"
    assert "GET /workflows" in body["error"]["message"]


def test_a_symlink_out_of_the_user_folder_is_neither_listed_nor_served(server, tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(WORKFLOW))
    os.symlink(outside, Path(server.server.folders.user) / "workflows" / "escape.json")
    assert "user/escape.json" not in [e["name"] for e in server.get_json("/workflows")]
    assert server.get("/workflows/user/escape.json")[0] == 404


def test_no_user_folder_yet_lists_only_the_shipped_ones(shipped, tmp_path):
    run = start(tmp_path / "fresh")
    try:
        assert [e["source"] for e in run.get_json("/workflows")] == ["shipped", "shipped"]
    finally:
        run.thread.stop()


def test_the_list_gives_each_workflows_title_and_description_from_its_note(shipped, tmp_path):
    note = {"id": 9, "type": "Note", "widgets_values": ["Upscale a photo\nEnlarges 4x with an ESRGAN model.\nNeeds RealESRGAN."]}
    (shipped / "upscale.json").write_text(json.dumps({**WORKFLOW, "nodes": [note]}))
    (shipped / "titled.json").write_text(json.dumps({**WORKFLOW, "nodes": [note], "extra": {"title": "A chosen title"}}))
    run = start(tmp_path / "base")
    try:
        listed = {e["name"]: e for e in run.get_json("/workflows")}
    finally:
        run.thread.stop()
    assert listed["upscale.json"]["title"] == "Upscale a photo"
    assert listed["upscale.json"]["description"] == "Enlarges 4x with an ESRGAN model.\nNeeds RealESRGAN."
    assert listed["titled.json"]["title"] == "A chosen title"
    assert listed["titled.json"]["description"].startswith("Upscale a photo")
    assert "title" not in listed["txt2img.json"]  # no note, no title: listed by name
