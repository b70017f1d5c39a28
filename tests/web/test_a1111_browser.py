"""A PNG from A1111 (only a tEXt "parameters" chunk) dropped on the editor becomes
an equivalent txt2img graph that runs."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .conftest import CHECKPOINT
from .editor_driver import EditorDriver
from .test_editor_browser import drop_file, wait_for_output_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PARAMETERS = ("a red fox in the snow\nNegative prompt: blurry\n"
              "Steps: 2, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 1234, Size: 64x64, "
              "Model hash: 0123abcd, Model: tiny_sd1, Version: v1.7.0")


def a1111_png(parameters: str) -> bytes:
    info = PngInfo()
    info.add_text("parameters", parameters)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def test_dropped_a1111_png_becomes_the_equivalent_txt2img_graph(ed, page):
    ed.clear_canvas()
    drop_file(page, "fox.png", "image/png", a1111_png(PARAMETERS))
    page.wait_for_function("window.loom.editor.graph.nodes.size === 7")
    loader, sampler = ed.node_ids("CheckpointLoaderSimple")[0], ed.node_ids("KSampler")[0]
    assert ed.value(loader, "ckpt_name") == CHECKPOINT
    assert [ed.value(sampler, k) for k in ("seed", "steps", "cfg", "sampler_name", "scheduler")] == \
        [1234, 2, 6.5, "dpmpp_2m", "karras"]
    texts = sorted(ed.value(n, "text") for n in ed.node_ids("CLIPTextEncode"))
    assert texts == ["a red fox in the snow", "blurry"]
    latent = ed.node_ids("EmptyLatentImage")[0]
    assert (ed.value(latent, "width"), ed.value(latent, "height")) == (64, 64)


def test_the_imported_a1111_graph_runs_and_shows_its_image(ed, page):
    ed.clear_canvas()
    drop_file(page, "fox.png", "image/png", a1111_png(PARAMETERS))
    page.wait_for_function("window.loom.editor.graph.nodes.size === 7")
    ed.js("(id) => { window.loom.editor.nodeById(id).controls.seed = 'fixed'; }", ed.node_ids("KSampler")[0])
    page.click("#queue")
    wait_for_output_image(page, ed.node_ids("SaveImage")[0])


def test_a_png_with_unusable_parameters_says_why(ed, page):
    drop_file(page, "odd.png", "image/png", a1111_png("x\nSteps: 20, Sampler: PLMS, Size: 512x512"))
    toast = page.wait_for_selector(".toast.error")
    assert "PLMS" in toast.text_content() and "odd.png" in toast.text_content()
