"""``--users``: every request is some user's; a user sees, waits for and
cancels only their own jobs and history (another's id answers as unknown:
404 / {} / cancelled false), saves under ``output/<user>/``, and shares the
queue round-robin; admins see everything."""

from __future__ import annotations

import asyncio
import time

import pytest

from nodes.io import LoadImage, SaveImage
from server.config import ServerOptions
from server.records import QueueItem
from server.users import RoundRobin, add_user, hash_token, read_users

from .conftest import make_registry, sleep_prompt, text_prompt


@pytest.fixture
async def team(running, tmp_path):
    users_file = tmp_path / "users.json"
    tokens = {name: add_user(users_file, name, role) for name, role in
              [("alice", "user"), ("bob", "user"), ("root", "admin")]}
    base = tmp_path / "base"
    registry = make_registry(base)
    registry.add_all([LoadImage, SaveImage], origin="tests")
    server = await running(ServerOptions(port=0, web_root=tmp_path / "web", preview_interval=0.0,
                                         users_file=users_file), registry=registry, base=base)
    server.tokens = tokens
    server.users_file = users_file
    return server


def _as(server, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.tokens[name]}"}


async def _get(server, path: str, name: str, status: int = 200):
    async with server.session.get(server.url + path, headers=_as(server, name)) as response:
        body = await response.json()
        assert response.status == status, (path, name, body)
        return body


async def _post(server, path: str, name: str, body=None, status: int = 200):
    async with server.session.post(server.url + path, json=body, headers=_as(server, name)) as response:
        data = await response.json()
        assert response.status == status, (path, name, data)
        return data


async def _queue(server, name: str, prompt, **extra) -> str:
    return (await _post(server, "/prompt", name, {"prompt": prompt, **extra}))["prompt_id"]


async def _wait(server, name: str, prompt_id: str) -> dict:
    return await _get(server, f"/api/jobs/{prompt_id}?wait=20", name)


def test_tokens_are_stored_hashed(tmp_path):
    path = tmp_path / "users.json"
    token = add_user(path, "carol", "admin")
    text = path.read_text()
    assert token not in text and hash_token(token) in text
    assert read_users(path)["carol"].role == "admin"
    assert (path.stat().st_mode & 0o777) == 0o600


async def test_every_request_needs_a_user_token(team):
    for method, path in [("GET", "/api/jobs"), ("GET", "/queue"), ("GET", "/history"), ("POST", "/prompt"),
                         ("GET", "/object_info"), ("GET", "/")]:
        async with team.session.request(method, team.url + path, json={}) as response:
            assert response.status == 401, path
        async with team.session.request(method, team.url + path, json={},
                                        headers={"Authorization": "Bearer not-a-token"}) as response:
            assert response.status == 401, path
    assert isinstance(await _get(team, "/object_info", "alice"), dict)


async def test_a_user_sees_and_cancels_only_their_own_jobs(team):
    await _post(team, "/queue", "root", {"pause": True})
    mine = await _queue(team, "alice", sleep_prompt(0.0, tag="alice"))
    theirs = await _queue(team, "bob", text_prompt("bob"))

    assert [j["id"] for j in (await _get(team, "/api/jobs", "alice"))["jobs"]] == [mine]
    assert {j["id"] for j in (await _get(team, "/api/jobs", "root"))["jobs"]} == {mine, theirs}
    queue = await _get(team, "/queue", "alice")
    assert [item[1] for item in queue["queue_pending"]] == [mine]
    # Bob's id is unknown to Alice: 404 / cancelled false, exactly as a made-up id.
    missing = await _get(team, f"/api/jobs/{theirs}", "alice", status=404)
    assert missing == await _get(team, "/api/jobs/made-up", "alice", status=404) | {
        "error": {**missing["error"], "message": missing["error"]["message"]}}
    assert missing["error"]["type"] == "job_not_found"
    assert await _post(team, f"/api/jobs/{theirs}/cancel", "alice") == {"cancelled": False}
    assert await _post(team, "/api/jobs/cancel", "alice", {"job_ids": [theirs]}) == {"cancelled": False}
    deleted = await _post(team, "/queue", "alice", {"delete": [theirs]})
    assert deleted["deleted"] == []
    assert await _post(team, "/queue", "alice", {"move": {"prompt_id": theirs, "position": 0}}, status=404)
    assert theirs in team.server.queue
    # Queue-wide switches are an admin's.
    refused = await _post(team, "/queue", "alice", {"resume": True}, status=403)
    assert refused["error"]["type"] == "admin_only"
    await _post(team, "/free", "alice", {"unload_models": True}, status=403)

    await _post(team, "/queue", "root", {"resume": True})
    assert (await _wait(team, "alice", mine))["status"] == "completed"
    assert (await _wait(team, "bob", theirs))["status"] == "completed"
    assert await _get(team, f"/history/{theirs}", "alice") == {}
    assert list(await _get(team, "/history", "alice")) == [mine]
    assert list(await _get(team, "/history?max_items=5", "bob")) == [theirs]
    assert set(await _get(team, "/history", "root")) == {mine, theirs}
    await _post(team, "/history", "alice", {"clear": True})
    assert set(await _get(team, "/history", "root")) == {theirs}  # only Alice's went


async def test_a_user_cannot_interrupt_another_users_running_job(team):
    running = await _queue(team, "bob", sleep_prompt(1.5))
    while not team.server.queue.is_running(running):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    assert await _post(team, "/interrupt", "alice", {}) == {"interrupted": False}
    assert await _post(team, "/interrupt", "alice", {"prompt_id": running}) == {"interrupted": False}
    assert await _post(team, f"/api/jobs/{running}/cancel", "alice") == {"cancelled": False}
    assert (await _wait(team, "bob", running))["status"] == "completed"


async def test_admins_cancel_anyones_job(team):
    running = await _queue(team, "bob", sleep_prompt(5.0))
    while not team.server.queue.is_running(running):
        await asyncio.sleep(0.01)
    assert await _post(team, f"/api/jobs/{running}/cancel", "root") == {"cancelled": True}
    assert (await _wait(team, "bob", running))["status"] == "cancelled"


async def test_a_users_outputs_go_to_their_folder(team):
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "loom_pattern.png"}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "mine/pic"}}}
    job = await _wait(team, "alice", await _queue(team, "alice", prompt))
    assert job["status"] == "completed", job
    image = job["outputs"]["2"]["images"][0]
    assert image["subfolder"] == "alice/mine"
    assert (team.base / "output" / "alice" / "mine" / image["filename"]).is_file()
    view = f"/view?filename={image['filename']}&subfolder={image['subfolder']}&type=output"
    async with team.session.get(team.url + view, headers=_as(team, "alice")) as response:
        assert response.status == 200
    for name in ("bob",):
        async with team.session.get(team.url + view, headers=_as(team, name)) as response:
            assert response.status == 404  # not there for Bob
    async with team.session.get(team.url + view, headers=_as(team, "root")) as response:
        assert response.status == 200
    escape = dict(prompt)
    escape["2"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "../bob/x"}}
    refused = await _post(team, "/prompt", "alice", {"prompt": escape}, status=400)
    assert "leave" in refused["error"]["message"]


async def test_one_users_batch_of_500_does_not_starve_another(team):
    await _post(team, "/queue", "root", {"pause": True})
    batch = []
    for n in range(500):
        batch.append(await _queue(team, "alice", text_prompt(f"a{n}")))
    bobs = await _queue(team, "bob", text_prompt("bob"))
    await _post(team, "/queue", "root", {"resume": True})
    await _wait(team, "bob", bobs)
    finished = (await _get(team, "/api/jobs?status=completed", "root"))["jobs"]
    bob_started = next(j["execution_start_time"] for j in finished if j["id"] == bobs)
    before = [j["id"] for j in finished if j["id"] != bobs and j["execution_start_time"] < bob_started]
    # Bob's job ran second (Alice's first was already chosen), not 501st.
    assert len(before) <= 1, len(before)
    await _post(team, "/queue", "root", {"clear": True})


def test_round_robin_serves_each_user_in_turn():
    def item(owner, n, number=None):
        return QueueItem(number=n if number is None else number, prompt_id=f"{owner}{n}", prompt={},
                         extra_data={"loom_user": owner}, outputs=[])

    pending = [item("a", n) for n in range(5)] + [item("b", 5), item("b", 6), item("c", 7)]
    pick = RoundRobin()
    order = []
    while pending:
        order.append(pending.pop(pick(pending)).prompt_id)
    assert order == ["a0", "b5", "c7", "a1", "b6", "a2", "a3", "a4"]
    front = [item("a", 1), item("b", 2)]
    pick = RoundRobin()
    pick(front[:1])
    assert pick([item("a", 1, number=-5), item("b", 2)]) == 0  # 'front' still first


async def test_users_added_while_running_can_log_in(team):
    token = add_user(team.users_file, "dave", "user")
    deadline = time.monotonic() + 5
    while True:
        async with team.session.get(team.url + "/api/jobs", headers={"Authorization": f"Bearer {token}"}) as r:
            if r.status == 200:
                break
        assert time.monotonic() < deadline, "the new user was never accepted"
        await asyncio.sleep(0.2)


async def test_the_token_in_the_query_sets_a_cookie(team):
    async with team.session.get(team.url + f"/api/jobs?token={team.tokens['bob']}") as response:
        assert response.status == 200
        assert "loom_token" in response.cookies


async def test_a_users_events_reach_only_their_own_websocket(team):
    from .conftest import Listener

    async def connect(name: str, client_id: str) -> Listener:
        ws = await team.session.ws_connect(team.ws_url(client_id), headers=_as(team, name))
        listener = Listener(ws)
        first = await listener.next_json()
        assert first["type"] == "status"
        return listener

    alice = await connect("alice", "same-id")
    bob = await connect("bob", "same-id")  # the same clientId: still not Alice's socket
    prompt_id = await _queue(team, "bob", sleep_prompt(0.2), client_id="same-id")
    messages = await bob.until_done(prompt_id)
    assert any(m["type"] == "progress" for m in messages)
    quiet = await _queue(team, "alice", sleep_prompt(0.2))  # no client_id: its progress goes to no one
    await _wait(team, "alice", quiet)
    await asyncio.sleep(0.2)
    while True:
        try:
            message = await alice.next_json(timeout=0.3)
        except asyncio.TimeoutError:
            break
        assert message["type"] == "status", message  # only queue sizes, none of Bob's or her own events
    while True:
        try:
            message = await bob.next_json(timeout=0.3)
        except asyncio.TimeoutError:
            break
        assert (message.get("data") or {}).get("prompt_id") != quiet, message
    await alice.ws.close()
    await bob.ws.close()
