"""ComfyUI's userdata API (``app/user_manager.py``): saved workflows and other user
files under ``user/``, with ComfyUI's routes, query flags and status codes."""

from __future__ import annotations

import json

WORKFLOW = {"last_node_id": 1, "nodes": [{"id": 1, "type": "Text"}], "links": [], "version": 0.4}


async def put(server, name: str, body: bytes | str, **query: str):
    query_string = "&".join(f"{k}={v}" for k, v in query.items())
    return await server.session.post(f"{server.url}/userdata/{name}" + (f"?{query_string}" if query_string else ""),
                                     data=body)


async def test_a_saved_workflow_lands_in_user_workflows_and_reads_back(server):
    async with await put(server, "workflows%2Fmy%20flow.json", json.dumps(WORKFLOW)) as response:
        assert response.status == 200
        assert await response.json() == "workflows/my flow.json"
    assert json.loads((server.base / "user" / "workflows" / "my flow.json").read_text()) == WORKFLOW
    async with await server.get("/userdata/workflows%2Fmy%20flow.json") as response:
        assert response.status == 200
        assert response.headers["Content-Disposition"] == "attachment"
        assert json.loads(await response.read()) == WORKFLOW


async def test_a_saved_workflow_appears_in_the_editors_open_list(server):
    async with await put(server, "workflows%2Fsub%2Fnested.json", json.dumps(WORKFLOW)):
        pass
    entries = await server.get_json("/workflows")
    assert {"name": "user/sub/nested.json", "source": "user"} in entries


async def test_overwrite_false_refuses_an_existing_file_with_409(server):
    async with await put(server, "workflows%2Fa.json", "{}"):
        pass
    async with await put(server, "workflows%2Fa.json", json.dumps(WORKFLOW), overwrite="false") as response:
        assert response.status == 409
    assert (server.base / "user" / "workflows" / "a.json").read_text() == "{}"
    async with await put(server, "workflows%2Fa.json", json.dumps(WORKFLOW), overwrite="true") as response:
        assert response.status == 200
    assert json.loads((server.base / "user" / "workflows" / "a.json").read_text()) == WORKFLOW


async def test_full_info_answers_path_size_and_millisecond_times(server):
    async with await put(server, "workflows%2Fb.json", "12345", full_info="true") as response:
        info = await response.json()
    assert info["path"] == "workflows/b.json" and info["size"] == 5
    assert info["modified"] > 10**12 and info["created"] > 10**12  # milliseconds, as ComfyUI


async def test_listing_a_folder_names_its_files_relative_to_it(server):
    for name in ("workflows%2Fa.json", "workflows%2Fb.json", "workflows%2Fdeep%2Fc.json"):
        async with await put(server, name, "{}"):
            pass
    assert await server.get_json("/userdata?dir=workflows") == ["a.json", "b.json"]
    assert await server.get_json("/userdata?dir=workflows&recurse=true") == ["a.json", "b.json", "deep/c.json"]
    assert await server.get_json("/userdata?dir=workflows&recurse=true&split=true") == [
        ["a.json", "a.json"], ["b.json", "b.json"], ["deep/c.json", "deep", "c.json"]]
    full = await server.get_json("/userdata?dir=workflows&full_info=true")
    assert [entry["path"] for entry in full] == ["a.json", "b.json"]


async def test_listing_needs_a_dir_and_a_missing_one_is_404(server):
    async with await server.get("/userdata") as response:
        assert response.status == 400
    async with await server.get("/userdata?dir=nothing-here") as response:
        assert response.status == 404


async def test_v2_listing_gives_folders_first_then_files_with_sizes(server):
    for name in ("workflows%2Fz.json", "workflows%2Fsub%2Fy.json", "settings.json"):
        async with await put(server, name, "{}"):
            pass
    entries = await server.get_json("/v2/userdata")
    # ComfyUI's order: folders first, then files, each by name (not by path)
    assert [(e["type"], e["path"]) for e in entries] == [
        ("directory", "workflows/sub"), ("directory", "workflows"), ("file", "settings.json"),
        ("file", "workflows/sub/y.json"), ("file", "workflows/z.json")]
    files = {e["path"]: e for e in entries if e["type"] == "file"}
    assert files["workflows/z.json"]["size"] == 2
    assert "loom-queue.sqlite3" not in files  # the server's own state is not a user file
    only = await server.get_json("/v2/userdata?path=workflows%2Fsub")
    assert [e["path"] for e in only] == ["workflows/sub/y.json"]


async def test_a_file_can_be_renamed_and_deleted(server):
    async with await put(server, "workflows%2Fold.json", "{}"):
        pass
    async with await server.post("/userdata/workflows%2Fold.json/move/workflows%2Fnew.json") as response:
        assert response.status == 200
        assert await response.json() == "workflows/new.json"
    assert not (server.base / "user" / "workflows" / "old.json").exists()
    async with await server.session.delete(f"{server.url}/userdata/workflows%2Fnew.json") as response:
        assert response.status == 204
    assert not (server.base / "user" / "workflows" / "new.json").exists()
    async with await server.session.delete(f"{server.url}/userdata/workflows%2Fnew.json") as response:
        assert response.status == 404


async def test_a_rename_onto_an_existing_file_without_overwrite_is_409(server):
    for name in ("workflows%2Fone.json", "workflows%2Ftwo.json"):
        async with await put(server, name, name):
            pass
    async with await server.post("/userdata/workflows%2Fone.json/move/workflows%2Ftwo.json?overwrite=false") as r:
        assert r.status == 409
    assert (server.base / "user" / "workflows" / "one.json").exists()


async def test_names_never_leave_the_user_folder(server):
    (server.base / "secret.txt").write_text("no")
    for name in ("..%2Fsecret.txt", "workflows%2F..%2F..%2Fsecret.txt", "%2E%2E%2Fsecret.txt"):
        async with await server.get(f"/userdata/{name}") as response:
            assert response.status in (400, 403), name
        async with await put(server, name, "x") as response:
            assert response.status in (400, 403), name
    assert (server.base / "secret.txt").read_text() == "no"


async def test_the_queue_database_is_not_a_user_file(server):
    db = server.server.db_path
    assert db.exists()
    async with await server.get(f"/userdata/{db.name}") as response:
        assert response.status == 403
        assert "error" in await response.json()
    before = db.read_bytes()
    async with await put(server, db.name, "overwritten") as response:
        assert response.status == 403
    assert db.read_bytes()[:16] == before[:16]


async def test_a_cross_origin_browser_cannot_write_user_files(server):
    async with await put(server, "workflows%2Fx.json", "{}") as response:
        assert response.status == 200
    async with await server.session.post(f"{server.url}/userdata/workflows%2Fx.json", data="evil",
                                         headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
    async with await server.session.delete(f"{server.url}/userdata/workflows%2Fx.json",
                                           headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
    assert (server.base / "user" / "workflows" / "x.json").read_text() == "{}"


async def test_a_name_too_long_for_the_file_system_is_a_400_not_a_500(server):
    async with await put(server, "workflows%2F" + "a" * 300 + ".json", "{}") as response:
        assert response.status == 400
        assert "too long" in (await response.json())["error"]["message"]
