"""Safe by default: token, cross-origin and DNS-rebinding checks, CORS only when asked."""

from __future__ import annotations

import aiohttp
import pytest

from server.config import ServerOptions

from .conftest import text_prompt

TOKEN = "s3cret-token"


@pytest.fixture
async def guarded(running, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (web / "index.html").write_text("<!doctype html><title>Loom</title>")
    return await running(ServerOptions(auth_token=TOKEN, web_root=web))


# ------------------------------------------------------------------- token
@pytest.mark.parametrize("method, path", [
    ("GET", "/queue"), ("GET", "/history"), ("GET", "/object_info"), ("POST", "/prompt"),
    ("GET", "/view?filename=x.png"), ("GET", "/"), ("GET", "/index.html"), ("GET", "/api/queue"),
    ("GET", "/nonexistent"),
])
async def test_with_a_token_every_route_needs_it(guarded, method, path):
    async with await guarded.session.request(method, guarded.url + path) as response:
        assert response.status == 401
        assert (await response.json())["error"]["type"] == "unauthorized"


async def test_a_wrong_token_is_refused(guarded):
    headers = {"Authorization": "Bearer wrong"}
    async with await guarded.get("/queue", headers=headers) as response:
        assert response.status == 401


async def test_the_token_works_as_a_bearer_header(guarded):
    async with await guarded.get("/queue", headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status == 200


async def test_opening_the_page_with_the_token_sets_a_cookie_for_later_requests(guarded):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:  # IP-host cookies
        async with browser.get(f"{guarded.url}/?token={TOKEN}") as response:
            assert response.status == 200
            assert "Loom" in await response.text()
            cookie = response.cookies["loom_token"]
            assert cookie["httponly"] and cookie["samesite"] == "Strict"
        async with browser.get(f"{guarded.url}/queue") as response:
            assert response.status == 200


async def test_the_websocket_needs_the_token(guarded):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await guarded.session.ws_connect(f"{guarded.ws_url('c')}")
    assert refused.value.status == 401
    ws = await guarded.session.ws_connect(f"{guarded.ws_url('c')}&token={TOKEN}")
    assert (await ws.receive_json(timeout=5))["type"] == "status"
    await ws.close()


# ------------------------------------------------------- cross-origin / CSRF
async def test_a_cross_origin_post_is_refused(server):
    headers = {"Origin": "http://evil.example"}
    async with await server.post("/prompt", {"prompt": text_prompt()}, headers=headers) as response:
        assert response.status == 403
        assert (await response.json())["error"]["type"] == "cross_origin"
    assert (await server.get_json("/queue"))["queue_pending"] == []


async def test_a_same_origin_post_is_accepted(server):
    headers = {"Origin": server.url}
    async with await server.post("/prompt", {"prompt": text_prompt()}, headers=headers) as response:
        assert response.status == 200


async def test_a_cross_origin_websocket_is_refused(server):
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await server.session.ws_connect(server.ws_url("x"), headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403


async def test_a_null_origin_post_is_refused(server):
    async with await server.post("/interrupt", {}, headers={"Origin": "null"}) as response:
        assert response.status == 403


async def test_a_rebound_host_name_is_refused(server):
    headers = {"Host": f"evil.example:{server.server.port}", "Origin": f"http://evil.example:{server.server.port}"}
    async with await server.get("/history", headers=headers) as response:
        assert response.status == 403
        assert (await response.json())["error"]["type"] == "forbidden_host"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
async def test_loopback_host_names_are_accepted(server, host):
    async with await server.get("/queue", headers={"Host": f"{host}:{server.server.port}"}) as response:
        assert response.status == 200


async def test_no_cors_headers_unless_enabled(server):
    async with await server.get("/queue", headers={"Origin": "http://other.example"}) as response:
        assert "Access-Control-Allow-Origin" not in response.headers
    async with server.session.options(server.url + "/prompt", headers={
            "Origin": "http://other.example", "Access-Control-Request-Method": "POST"}) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers


async def test_cors_allows_exactly_the_named_origin(running, tmp_path):
    run = await running(ServerOptions(cors_origin="http://app.example", web_root=tmp_path))
    allowed = {"Origin": "http://app.example"}
    async with run.session.options(run.url + "/prompt", headers={
            **allowed, "Access-Control-Request-Method": "POST"}) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
    async with await run.post("/prompt", {"prompt": text_prompt()}, headers=allowed) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
    async with await run.post("/prompt", {"prompt": text_prompt()},
                              headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403


# ------------------------------------------------------------------ static
async def test_the_editor_is_served_with_correct_content_types(running, tmp_path):
    web = tmp_path / "web"
    (web / "lib").mkdir(parents=True)
    (web / "index.html").write_text("<!doctype html>")
    (web / "lib" / "app.js").write_text("export const x = 1;")
    (web / "style.css").write_text("body{}")
    run = await running(ServerOptions(web_root=web))
    for path, ctype in [("/", "text/html"), ("/lib/app.js", "application/javascript"),
                        ("/style.css", "text/css")]:
        async with await run.get(path) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith(ctype)


async def test_static_files_never_leave_the_web_root(running, tmp_path):
    web = tmp_path / "web"
    web.mkdir()
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    run = await running(ServerOptions(web_root=web))
    for raw in ["/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/extensions/x/..%2f..%2fsecret.txt"]:
        async with await run.session.get(run.url + raw) as response:
            body = await response.read()
            assert response.status in (400, 403, 404)
            assert b"TOP SECRET" not in body


async def test_plugin_web_directories_are_served_under_extensions(running, tmp_path):
    from .conftest import make_registry

    pack = tmp_path / "pack_web"
    pack.mkdir()
    (pack / "widget.js").write_text("console.log('hi')")
    registry = make_registry(tmp_path / "b")
    registry.web_directories["mypack"] = str(pack)
    run = await running(ServerOptions(web_root=tmp_path / "web"), registry=registry)
    async with await run.get("/extensions/mypack/widget.js") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/javascript")
    assert "/extensions/mypack/widget.js" in await run.get_json("/extensions")
