"""Uploads and ``/view``: images in, images out, nothing outside the folders."""

from __future__ import annotations

import io
import os

import pytest
from PIL import Image

from server.config import ServerOptions

from .nodes_for_tests import png_bytes


BOUNDARY = "----loomtestboundary"


def _multipart(image: tuple[str, bytes] | None, **fields: str) -> bytes:
    """A form body written by hand, so file names go out exactly as given
    (aiohttp's client would percent-encode them; an attacker would not)."""
    out = b""
    for key, value in fields.items():
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{key}\"\r\n\r\n"
                f"{value}\r\n").encode()
    if image is not None:
        filename, data = image
        out += (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
                "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


async def _post_form(server, path: str, body: bytes):
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    async with await server.session.post(server.url + path, data=body, headers=headers) as response:
        return response.status, await response.json()


async def _upload(server, data: bytes, filename: str = "cat.png", path: str = "/upload/image", **fields):
    return await _post_form(server, path, _multipart((filename, data), **fields))


async def test_an_uploaded_image_lands_in_input(server):
    status, body = await _upload(server, png_bytes())
    assert status == 200
    assert body == {"name": "cat.png", "subfolder": "", "type": "input"}
    assert (server.base / "input" / "cat.png").read_bytes() == png_bytes()


async def test_an_upload_into_a_subfolder_of_temp(server):
    status, body = await _upload(server, png_bytes(), subfolder="masks", type="temp")
    assert (status, body) == (200, {"name": "cat.png", "subfolder": "masks", "type": "temp"})
    assert (server.base / "temp" / "masks" / "cat.png").is_file()


async def test_an_upload_never_overwrites_a_different_file_unless_asked(server):
    await _upload(server, png_bytes((1, 2, 3)))
    status, body = await _upload(server, png_bytes((9, 9, 9)))
    assert body["name"] == "cat (1).png"
    assert (server.base / "input" / "cat.png").read_bytes() == png_bytes((1, 2, 3))
    status, body = await _upload(server, png_bytes((7, 7, 7)), overwrite="true")
    assert body["name"] == "cat.png"
    assert (server.base / "input" / "cat.png").read_bytes() == png_bytes((7, 7, 7))


async def test_the_same_image_uploaded_twice_is_stored_once(server):
    await _upload(server, png_bytes())
    status, body = await _upload(server, png_bytes())
    assert body["name"] == "cat.png"
    assert [name for name in os.listdir(server.base / "input") if name.startswith("cat")] == ["cat.png"]


@pytest.mark.parametrize("name, stored", [
    ("../../evil.png", "evil.png"),
    ("..\\..\\evil.png", "evil.png"),
    ("/etc/evil.png", "evil.png"),
    (".hidden.png", "hidden.png"),
    ("a<b>:c|?*.png", "a_b__c___.png"),
])
async def test_upload_file_names_are_sanitized(server, name, stored):
    status, body = await _upload(server, png_bytes(), filename=name)
    assert (status, body["name"]) == (200, stored)
    assert (server.base / "input" / stored).is_file()


async def test_the_extension_follows_the_real_image_type(server):
    jpeg = io.BytesIO()
    Image.new("RGB", (4, 4)).save(jpeg, format="JPEG")
    status, body = await _upload(server, jpeg.getvalue(), filename="photo.png")
    assert body["name"] == "photo.jpg"


async def test_a_file_that_is_not_an_image_is_refused(server):
    status, body = await _upload(server, b"#!/bin/sh\nrm -rf /\n", filename="x.png")
    assert status == 415
    assert body["error"]["type"] == "not_an_image"
    assert not (server.base / "input" / "x.png").exists()


async def test_a_truncated_image_is_refused(server):
    status, body = await _upload(server, png_bytes()[:20], filename="x.png")
    assert status == 415


async def test_an_upload_over_the_size_limit_is_a_413(running, tmp_path):
    run = await running(ServerOptions(max_upload_size=0.01, web_root=tmp_path))  # ~10 KiB
    big = png_bytes(size=(512, 512)) + b"\0" * 20000
    status, body = await _upload(run, big)
    assert status == 413
    assert body["error"]["type"] == "upload_too_large"


@pytest.mark.parametrize("subfolder", ["../outside", "/tmp", "a/../../b", "x\x00y"])
async def test_an_upload_subfolder_outside_input_is_refused(server, subfolder):
    status, body = await _upload(server, png_bytes(), subfolder=subfolder)
    assert status in (400, 403)
    assert "error" in body


async def test_an_upload_without_an_image_field_is_a_400(server):
    status, body = await _post_form(server, "/upload/image", _multipart(None, subfolder="x"))
    assert status == 400
    assert body["error"]["type"] == "missing_image"


async def test_an_upload_that_is_not_multipart_is_a_415(server):
    async with await server.post("/upload/image", {"image": "nope"}) as response:
        assert response.status == 415


async def test_a_mask_upload_combines_the_original_with_the_mask_alpha(server):
    await _upload(server, png_bytes((10, 20, 30), size=(4, 4)), filename="orig.png")
    mask = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 77)).save(mask, format="PNG")
    status, body = await _upload(server, mask.getvalue(), filename="mask.png", path="/upload/mask",
                                 original_ref='{"filename": "orig.png", "type": "input", "subfolder": ""}')
    assert status == 200
    with Image.open(server.base / "input" / body["name"]) as result:
        assert result.mode == "RGBA"
        assert result.getpixel((0, 0)) == (10, 20, 30, 77)


# ------------------------------------------------------------------- /view
def _write_output(server, name: str = "out.png", subfolder: str = "", data: bytes | None = None):
    folder = server.base / "output" / subfolder
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if data is not None else png_bytes((0, 255, 0)))
    return folder / name


async def test_view_returns_an_output_file_with_its_content_type(server):
    path = _write_output(server, subfolder="sub")
    async with await server.get("/view?filename=out.png&subfolder=sub&type=output") as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "image/png"
        assert await response.read() == path.read_bytes()


async def test_view_reads_input_and_annotated_names(server):
    (server.base / "input").mkdir(parents=True, exist_ok=True)
    (server.base / "input" / "in.png").write_bytes(png_bytes())
    async with await server.get("/view", params={"filename": "in.png", "type": "input"}) as response:
        assert response.status == 200
    async with await server.get("/view", params={"filename": "in.png [input]"}) as response:
        assert response.status == 200


async def test_view_converts_a_preview_to_webp(server):
    _write_output(server)
    async with await server.get("/view?filename=out.png&preview=webp;50") as response:
        assert response.headers["Content-Type"] == "image/webp"
        data = await response.read()
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"


async def test_view_channel_rgb_drops_alpha(server):
    rgba = io.BytesIO()
    Image.new("RGBA", (2, 2), (1, 2, 3, 4)).save(rgba, format="PNG")
    _write_output(server, data=rgba.getvalue())
    async with await server.get("/view?filename=out.png&channel=rgb") as response:
        with Image.open(io.BytesIO(await response.read())) as image:
            assert image.mode == "RGB"


async def test_view_of_a_missing_file_is_a_404(server):
    async with await server.get("/view?filename=missing.png") as response:
        assert response.status == 404
        assert (await response.json())["error"]["type"] == "not_found"


@pytest.mark.parametrize("query", [
    {"filename": "../secret.txt"},
    {"filename": "secret.txt", "subfolder": ".."},
    {"filename": "secret.txt", "subfolder": "../"},
    {"filename": "secret.txt", "subfolder": "sub/../.."},
    {"filename": "/etc/passwd"},
    {"filename": "passwd", "subfolder": "/etc"},
    {"filename": "..\\secret.txt"},
    {"filename": "secret.txt\x00.png"},
    {"filename": "secret.txt", "type": "../"},
    {"filename": "secret.txt", "type": "models"},
])
async def test_view_never_serves_a_file_outside_its_folder(server, query):
    (server.base / "secret.txt").write_text("TOP SECRET")
    (server.base / "output").mkdir(parents=True, exist_ok=True)
    async with await server.get("/view", params=query) as response:
        body = await response.read()
        assert response.status in (400, 403, 404)
    assert b"TOP SECRET" not in body


@pytest.mark.parametrize("raw", [
    "/view?filename=%2e%2e%2fsecret.txt",
    "/view?filename=secret.txt&subfolder=%2e%2e",
    "/view?filename=%2e%2e%5csecret.txt",
    "/view?filename=secret.txt&subfolder=%252e%252e",
])
async def test_view_refuses_encoded_traversal(server, raw):
    (server.base / "secret.txt").write_text("TOP SECRET")
    (server.base / "output").mkdir(parents=True, exist_ok=True)
    async with await server.session.get(server.url + raw) as response:
        body = await response.read()
        assert response.status in (400, 403, 404)
    assert b"TOP SECRET" not in body


async def test_view_refuses_a_symlink_pointing_out_of_output(server):
    (server.base / "secret.txt").write_text("TOP SECRET")
    (server.base / "output").mkdir(parents=True, exist_ok=True)
    os.symlink(server.base / "secret.txt", server.base / "output" / "link.png")
    async with await server.get("/view?filename=link.png") as response:
        body = await response.read()
        assert response.status == 403
    assert b"TOP SECRET" not in body
