"""The editor in Chromium against a real Loom server with the built-in nodes."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .conftest import CHECKPOINT
from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def image_workflow(image_name: str = "sample.png", prefix: str = "loom_test") -> dict:
    """LoadImage → ImageInvert → SaveImage in UI format 0.4."""
    return {
        "last_node_id": 3, "last_link_id": 2, "version": 0.4, "config": {}, "groups": [],
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}, "kept_by_loom": {"answer": 42}},
        "nodes": [
            {"id": 1, "type": "LoadImage", "pos": [40, 120], "size": [260, 320], "flags": {}, "order": 0, "mode": 0,
             "inputs": [], "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [1], "slot_index": 0},
                                       {"name": "MASK", "type": "MASK", "links": [], "slot_index": 1}],
             "properties": {}, "widgets_values": [image_name, "image"]},
            {"id": 2, "type": "ImageInvert", "pos": [360, 120], "size": [220, 60], "flags": {}, "order": 1, "mode": 0,
             "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
             "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2], "slot_index": 0}], "properties": {}},
            {"id": 3, "type": "SaveImage", "pos": [640, 120], "size": [300, 320], "flags": {}, "order": 2, "mode": 0,
             "inputs": [{"name": "images", "type": "IMAGE", "link": 2}], "outputs": [], "properties": {},
             "widgets_values": [prefix]},
        ],
        "links": [[1, 1, 0, 2, 0, "IMAGE"], [2, 2, 0, 3, 0, "IMAGE"]],
    }


def load(ed: EditorDriver, workflow: dict) -> None:
    ed.js("(w) => window.loom.editor.loadWorkflow(w, {undoable: true, fit: true})", workflow)


def drop_file(page, name: str, mime: str, data: bytes) -> None:
    page.evaluate(
        """([name, mime, b64]) => {
            const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
            const dt = new DataTransfer();
            dt.items.add(new File([bytes], name, {type: mime}));
            document.querySelector('#canvas').dispatchEvent(new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        [name, mime, base64.b64encode(data).decode()],
    )


def wait_for_output_image(page, node_id: int, timeout: float = 120_000) -> None:
    page.wait_for_function(
        """(id) => { const n = window.loom.editor.nodeById(id);
                     return n && n.images && n.images.length > 0 && n.images[0].complete && n.images[0].naturalWidth > 0; }""",
        arg=node_id, timeout=timeout)


def test_first_start_shows_txt2img_with_the_first_checkpoint(ed):
    types = sorted(n["type"] for n in ed.workflow()["nodes"])
    assert types == sorted(["CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage",
                            "KSampler", "VAEDecode", "SaveImage"])
    loader = ed.node_ids("CheckpointLoaderSimple")[0]
    assert ed.value(loader, "ckpt_name") == CHECKPOINT


def test_build_txt2img_from_empty_canvas_queue_and_see_the_image(ed, page):
    ed.clear_canvas()
    loader = ed.add_node_by_search("load checkpoint", (120, 300))
    pos = ed.add_node_by_search("clip text encode", (420, 160))
    neg = ed.add_node_by_search("clip text encode", (420, 470))
    latent = ed.add_node_by_search("empty latent", (420, 650))
    sampler = ed.add_node_by_search("ksampler", (760, 200))
    decode = ed.add_node_by_search("vae decode", (1020, 200))
    save = ed.add_node_by_search("save image", (1020, 380))
    ed.js("() => window.loom.editor.fitView()")
    ed.link(loader, "MODEL", sampler, "model")
    ed.link(loader, "CLIP", pos, "clip")
    ed.link(loader, "CLIP", neg, "clip")
    ed.link(pos, "CONDITIONING", sampler, "positive")
    ed.link(neg, "CONDITIONING", sampler, "negative")
    ed.link(latent, "LATENT", sampler, "latent_image")
    ed.link(sampler, "LATENT", decode, "samples")
    ed.link(loader, "VAE", decode, "vae")
    ed.link(decode, "IMAGE", save, "images")
    assert len(ed.links()) == 9
    ed.type_into_widget(pos, "text", "a red apple on a table")
    ed.type_into_widget(latent, "width", "64")
    ed.type_into_widget(latent, "height", "64")
    ed.type_into_widget(sampler, "steps", "2")
    assert ed.value(pos, "text") == "a red apple on a table"
    assert (ed.value(latent, "width"), ed.value(sampler, "steps")) == (64, 2)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    wait_for_output_image(page, save)
    src = ed.js("(id) => window.loom.editor.nodeById(id).images[0].src", save)
    assert "/view?" in src and "type=output" in src


def test_dropping_a_png_loads_the_workflow_it_carries(ed, page):
    info = PngInfo()
    info.add_text("workflow", json.dumps(image_workflow(prefix="from_png")))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    drop_file(page, "made_by_loom.png", "image/png", buffer.getvalue())
    page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert sorted(n["type"] for n in ed.workflow()["nodes"]) == ["ImageInvert", "LoadImage", "SaveImage"]
    assert ed.value(3, "filename_prefix") == "from_png"


def test_an_image_saved_by_loom_dropped_back_in_reproduces_the_exact_graph(ed, page):
    load(ed, image_workflow(prefix="png_round_trip"))
    queued = ed.workflow()  # what the queue embeds in the PNG (extra_pnginfo.workflow)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    wait_for_output_image(page, 3, timeout=60_000)
    png = base64.b64decode(ed.js("""async () => {
        const response = await fetch(window.loom.editor.nodeById(3).images[0].src);
        const bytes = new Uint8Array(await response.arrayBuffer());
        let text = ""; for (const b of bytes) text += String.fromCharCode(b);
        return btoa(text); }"""))
    assert png.startswith(b"\x89PNG")
    ed.clear_canvas()
    drop_file(page, "png_round_trip_00001_.png", "image/png", png)
    page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert ed.workflow() == queued


def test_dropping_a_png_with_only_a_prompt_rebuilds_the_graph(ed, page):
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "sample.png"}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}}
    info = PngInfo()
    info.add_text("prompt", json.dumps(prompt))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", pnginfo=info)
    drop_file(page, "api_only.png", "image/png", buffer.getvalue())
    page.wait_for_function("window.loom.editor.graph.nodes.size === 3")
    assert ed.links() == [(1, 0, 2, 0), (2, 0, 3, 0)]


def test_undo_and_redo_step_through_edits(ed, page):
    load(ed, image_workflow())
    ed.type_into_widget(3, "filename_prefix", "first")
    ed.type_into_widget(3, "filename_prefix", "second")
    page.locator("#canvas").focus()
    page.keyboard.press("Control+z")
    assert ed.value(3, "filename_prefix") == "first"
    page.keyboard.press("Control+z")
    assert ed.value(3, "filename_prefix") == "loom_test"
    page.keyboard.press("Control+y")
    assert ed.value(3, "filename_prefix") == "first"
    page.keyboard.press("Control+Shift+z")
    assert ed.value(3, "filename_prefix") == "second"


def test_moving_a_node_is_undoable(ed, page):
    load(ed, image_workflow())
    before = ed.js("() => [...window.loom.editor.nodeById(2).pos]")
    ed.move_node(2, 120, 80)
    moved = ed.js("() => [...window.loom.editor.nodeById(2).pos]")
    assert moved != before
    page.keyboard.press("Control+z")
    assert ed.js("() => [...window.loom.editor.nodeById(2).pos]") == before


def test_validation_error_highlights_the_node_and_names_the_widget(ed, page):
    workflow = image_workflow()
    workflow["nodes"][1] = {"id": 2, "type": "ImageScaleBy", "pos": [360, 120], "size": [240, 120], "flags": {},
                            "order": 1, "mode": 0, "inputs": [{"name": "image", "type": "IMAGE", "link": 1}],
                            "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [2], "slot_index": 0}],
                            "properties": {}, "widgets_values": ["nearest-exact", 0.0]}
    load(ed, workflow)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#errors:not([hidden])")
    errors = ed.js("() => Object.fromEntries(window.loom.editor.errors.nodes)")
    assert errors["2"]["inputs"] == ["scale_by"]
    assert "smaller than min" in page.locator("#errors").inner_text()


def test_missing_required_input_is_reported_on_its_node(ed, page):
    workflow = image_workflow()
    workflow["nodes"][1]["inputs"][0]["link"] = None
    workflow["links"] = [workflow["links"][1]]
    load(ed, workflow)
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    page.wait_for_selector("#errors:not([hidden])")
    assert "image" in ed.js("() => window.loom.editor.errors.nodes.get('2').inputs")


def test_incompatible_link_is_refused_with_the_reason(ed, page):
    load(ed, image_workflow())
    extra = ed.add_node_by_search("empty latent", (470, 420))
    ed.drag(ed.where(extra, "output", "LATENT"), ed.where(2, "input", "image"))
    assert "cannot feed" in page.locator(".toast.error").last.inner_text()
    assert ed.links() == [(1, 0, 2, 0), (2, 0, 3, 0)]


def test_copy_and_paste_duplicates_nodes_and_shift_paste_keeps_input_links(ed, page):
    load(ed, image_workflow())
    page.mouse.click(*ed.where(2, "title"))
    page.keyboard.press("Control+c")
    page.mouse.move(500, 600)
    page.keyboard.press("Control+v")
    assert len(ed.wait_for_nodes("ImageInvert", 2)) == 2
    assert len(ed.links()) == 2  # plain paste: no links from outside the copy
    page.mouse.move(700, 650)
    page.keyboard.press("Control+Shift+v")
    newest = max(ed.wait_for_nodes("ImageInvert", 3))
    assert (1, 0, newest, 0) in ed.links()


def test_bypass_and_mute_shortcuts_toggle_the_node_mode(ed, page):
    load(ed, image_workflow())
    page.mouse.click(*ed.where(2, "title"))
    page.keyboard.press("Control+b")
    assert ed.js("() => window.loom.editor.nodeById(2).mode") == 4
    page.keyboard.press("Control+m")
    assert ed.js("() => window.loom.editor.nodeById(2).mode") == 2
    page.keyboard.press("Control+m")
    assert ed.js("() => window.loom.editor.nodeById(2).mode") == 0


def test_save_then_reload_gives_identical_json(ed, page):
    load(ed, image_workflow())
    ed.type_into_widget(3, "filename_prefix", "roundtrip")
    with page.expect_download() as download:
        page.click("#export")
    saved = json.loads(open(download.value.path()).read())
    assert saved["extra"]["kept_by_loom"] == {"answer": 42}  # unknown keys survive
    assert saved["nodes"][2]["widgets_values_named"] == {"filename_prefix": "roundtrip"}
    page.wait_for_timeout(400)  # local storage is written shortly after an edit
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert ed.workflow() == saved
    drop_file(page, "saved.json", "application/json", json.dumps(saved).encode())
    page.wait_for_timeout(200)
    assert ed.workflow() == saved


def test_workflow_with_unknown_node_type_opens_with_a_placeholder_and_queue_names_it(ed, page):
    workflow = image_workflow()
    workflow["nodes"].append({"id": 4, "type": "FancyUpscaler", "pos": [360, 300], "size": [240, 80], "flags": {},
                              "order": 3, "mode": 0, "inputs": [], "outputs": [], "properties": {},
                              "widgets_values": [2, "lanczos"]})
    load(ed, workflow)
    assert ed.js("() => window.loom.editor.nodeById(4).missing") is True
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    assert "FancyUpscaler" in page.locator(".toast.error").last.inner_text()
    saved = next(n for n in ed.workflow()["nodes"] if n["id"] == 4)
    assert saved["widgets_values"] == [2, "lanczos"]


def test_model_free_workflow_runs_and_shows_its_output(ed, page):
    load(ed, image_workflow(prefix="inverted"))
    page.locator("#canvas").focus()
    page.keyboard.press("Control+Enter")
    wait_for_output_image(page, 3, timeout=60_000)
    assert ed.js("() => window.loom.editor.nodeById(3).images[0].naturalWidth") == 48
