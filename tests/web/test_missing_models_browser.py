"""The editor offers to download the models a loaded workflow names in
``properties.models`` and the server lacks; a download fills the loader's combo."""

from __future__ import annotations

import json
import os

import pytest

from tests.server.test_model_downloads import ModelFileServer

from .conftest import ServerThread, editor_page
from .editor_driver import EditorDriver
from .test_editor_browser import drop_file

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHECKPOINT = "downloaded_sd.safetensors"
PRESENT = "already_here.safetensors"
WEIGHTS = os.urandom(300_000)


def loader_workflow(models: list[dict], ckpt_name: str = CHECKPOINT) -> dict:
    """One CheckpointLoaderSimple naming its model as ComfyUI's templates do."""
    return {
        "last_node_id": 1, "last_link_id": 0, "version": 0.4, "config": {}, "groups": [], "links": [],
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "nodes": [{
            "id": 1, "type": "CheckpointLoaderSimple", "pos": [80, 120], "size": [320, 100], "flags": {}, "order": 0,
            "mode": 0, "inputs": [],
            "outputs": [{"name": "MODEL", "type": "MODEL", "links": []}, {"name": "CLIP", "type": "CLIP", "links": []},
                        {"name": "VAE", "type": "VAE", "links": []}],
            "properties": {"Node name for S&R": "CheckpointLoaderSimple", "models": models},
            "widgets_values": [ckpt_name],
        }],
    }


@pytest.fixture(scope="module")
def files():
    with ModelFileServer() as server:
        yield server


@pytest.fixture(scope="module")
def own_server(tmp_path_factory):
    """A server of its own: downloading into the shared one would change other tests' combos."""
    base = tmp_path_factory.mktemp("missing_models")
    (base / "models" / "checkpoints").mkdir(parents=True)
    (base / "models" / "checkpoints" / PRESENT).write_bytes(b"x")
    server = ServerThread(base, allow_private_downloads=True).start()  # the model host is this machine
    yield server
    server.stop()


@pytest.fixture
def ed(browser, own_server, request):
    with editor_page(browser, own_server.url, request.node.name) as page:
        page.evaluate("""() => { window.downloadEvents = [];
            for (const t of ["download_progress", "download_done", "download_error", "download_cancelled"])
              window.loom.api.addEventListener(t, (e) => window.downloadEvents.push([t, e.detail])); }""")
        yield EditorDriver(page)


def ckpt_choices(ed: EditorDriver) -> list[str]:
    return ed.js("window.loom.editor.schemas.get('CheckpointLoaderSimple').inputs.find(i => i.name === 'ckpt_name').choices")


def drop_workflow(ed: EditorDriver, workflow: dict) -> None:
    drop_file(ed.page, "needs_models.json", "application/json", json.dumps(workflow).encode())
    ed.page.wait_for_function("window.loom.editor.graph.nodes.size === 1")


def test_a_workflow_naming_a_missing_checkpoint_lists_it_with_its_folder(ed, files):
    url = files.serve("/sd/listed.safetensors", body=WEIGHTS)
    drop_workflow(ed, loader_workflow([{"name": "listed.safetensors", "url": url, "directory": "checkpoints"}],
                                      ckpt_name="listed.safetensors"))
    row = ed.page.wait_for_selector("#missing-models li[data-name='listed.safetensors']")
    assert "models/checkpoints/" in row.text_content()
    assert ed.js("document.querySelectorAll('#missing-models li').length") == 1


def test_download_fetches_the_file_and_the_loader_combo_offers_it(ed, files, own_server):
    url = files.serve("/sd/downloaded_sd.safetensors", body=WEIGHTS)
    drop_workflow(ed, loader_workflow([{"name": CHECKPOINT, "url": url, "directory": "checkpoints"}]))
    assert CHECKPOINT not in ckpt_choices(ed)
    ed.page.click(f"#missing-models li[data-name='{CHECKPOINT}'] button.download")
    ed.page.wait_for_selector(f"#missing-models li[data-name='{CHECKPOINT}'] .model-done", timeout=20000)
    assert (own_server.base / "models" / "checkpoints" / CHECKPOINT).read_bytes() == WEIGHTS
    events = ed.js("window.downloadEvents.map(([t, d]) => t)")
    assert "download_progress" in events and events[-1] == "download_done"
    ed.page.wait_for_function(f"window.loom.editor.schemas.get('CheckpointLoaderSimple').inputs"
                              f".find(i => i.name === 'ckpt_name').choices.includes('{CHECKPOINT}')")
    # What the user sees: the loader's combo list now offers the file.
    node = ed.node_ids("CheckpointLoaderSimple")[0]
    ed.page.mouse.click(*ed.where(node, "widget", "ckpt_name"))
    labels = ed.page.locator(".combo-list li").all_text_contents()
    assert any(CHECKPOINT in label for label in labels), labels


def test_models_the_server_has_are_not_listed(ed, files):
    url = files.serve("/sd/already_here.safetensors", body=b"x")
    drop_workflow(ed, loader_workflow([{"name": PRESENT, "url": url, "directory": "checkpoints"}], ckpt_name=PRESENT))
    ed.page.wait_for_timeout(500)  # the check is a request away; give it time to (not) show
    assert ed.js("document.querySelector('#missing-models').hidden") is True


def test_a_failed_download_shows_the_servers_reason_and_a_retry_button(ed, files):
    url = files.serve("/sd/broken.safetensors", body=WEIGHTS)
    drop_workflow(ed, loader_workflow([{"name": "broken.safetensors", "url": url, "directory": "checkpoints",
                                        "hash": "0" * 64, "hash_type": "SHA256"}], ckpt_name="broken.safetensors"))
    ed.page.click("#missing-models li[data-name='broken.safetensors'] button.download")
    error = ed.page.wait_for_selector("#missing-models li[data-name='broken.safetensors'] .model-error", timeout=20000)
    assert "sha256" in error.text_content()
    assert ed.page.text_content("#missing-models li[data-name='broken.safetensors'] button.download") == "Retry"


def test_a_model_without_a_url_says_where_to_put_it(ed):
    drop_workflow(ed, loader_workflow([{"name": "no_link.safetensors", "directory": "checkpoints"}], ckpt_name="no_link.safetensors"))
    row = ed.page.wait_for_selector("#missing-models li[data-name='no_link.safetensors']")
    assert "put the file in models/checkpoints/" in row.text_content()
    assert ed.js("document.querySelectorAll('#missing-models button.download').length") == 0


def test_a_running_download_shows_its_progress(ed, files):
    url = files.serve("/sd/slow.safetensors", body=WEIGHTS, hold_at=150_000)
    drop_workflow(ed, loader_workflow([{"name": "slow.safetensors", "url": url, "directory": "checkpoints"}],
                                      ckpt_name="slow.safetensors"))
    ed.page.click("#missing-models li[data-name='slow.safetensors'] button.download")
    row = "#missing-models li[data-name='slow.safetensors']"
    ed.page.wait_for_function(f"document.querySelector(\"{row} .model-progress\")?.textContent.endsWith('/ 293.0 KiB')")
    assert ed.js(f"document.querySelector(\"{row} progress\").max") == len(WEIGHTS)
    files.files["/sd/slow.safetensors"].release.set()
    ed.page.wait_for_selector(f"{row} .model-done", timeout=20000)


def test_download_all_fetches_every_missing_model(ed, files, own_server):
    models = [{"name": "all_ckpt.safetensors", "url": files.serve("/all/c.safetensors", body=WEIGHTS), "directory": "checkpoints"},
              {"name": "all_vae.safetensors", "url": files.serve("/all/v.safetensors", body=WEIGHTS[:1000]), "directory": "vae"}]
    drop_workflow(ed, loader_workflow(models, ckpt_name="all_ckpt.safetensors"))
    ed.page.click("#missing-models button.download-all")
    ed.page.wait_for_function("document.querySelectorAll('#missing-models .model-done').length === 2", timeout=20000)
    assert ed.page.text_content("#missing-models h3") == "All models are in place"
    assert (own_server.base / "models" / "vae" / "all_vae.safetensors").read_bytes() == WEIGHTS[:1000]
    assert "null" not in ed.page.text_content("#missing-models")


def start_held_download(ed: EditorDriver, files: ModelFileServer, name: str) -> str:
    """Drops a workflow naming ``name``, presses Download and waits until the server is
    midway (the file server holds after 150,000 bytes); the row's selector."""
    url = files.serve(f"/held/{name}", body=WEIGHTS, hold_at=150_000)
    drop_workflow(ed, loader_workflow([{"name": name, "url": url, "directory": "checkpoints"}], ckpt_name=name))
    row = f"#missing-models li[data-name='{name}']"
    ed.page.click(f"{row} button.download")
    assert files.files[f"/held/{name}"].held.wait(10)
    ed.page.wait_for_function(f"document.querySelector(\"{row} .model-progress\")?.textContent.endsWith('/ 293.0 KiB')")
    return row


def test_cancel_stops_a_running_download_and_the_row_offers_download_again(ed, files, own_server):
    row = start_held_download(ed, files, "cancelled.safetensors")
    ed.page.click(f"{row} button.cancel-download")
    ed.page.wait_for_selector(f"{row} button.download", timeout=10000)
    assert ed.page.text_content(f"{row} button.download") == "Download"
    assert ed.js(f"document.querySelector(\"{row} progress, {row} .cancel-download, {row} .model-error\")") is None
    folder = own_server.base / "models" / "checkpoints"
    assert not (folder / "cancelled.safetensors.part").exists() and not (folder / "cancelled.safetensors").exists()
    ed.page.wait_for_function("window.downloadEvents.some(([t]) => t === 'download_cancelled')")


def test_a_cancelled_download_can_be_started_again_and_finish(ed, files, own_server):
    row = start_held_download(ed, files, "again.safetensors")
    ed.page.click(f"{row} button.cancel-download")
    ed.page.wait_for_selector(f"{row} button.download", timeout=10000)
    files.files["/held/again.safetensors"].release.set()
    ed.page.click(f"{row} button.download")
    ed.page.wait_for_selector(f"{row} .model-done", timeout=20000)
    assert (own_server.base / "models" / "checkpoints" / "again.safetensors").read_bytes() == WEIGHTS
