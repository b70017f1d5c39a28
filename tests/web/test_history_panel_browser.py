"""The History panel as a daily tool: per run its status (interrupted apart from
error), time, duration, prompt snippet and thumbnails; delete one run; a gallery of
every output with the lightbox; load a run's workflow."""

from __future__ import annotations

import json
import urllib.request

import pytest

from .editor_driver import EditorDriver
from .test_editor_browser import image_workflow, load, wait_for_output_image

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def ed(page) -> EditorDriver:
    return EditorDriver(page)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def describe(ed: EditorDriver, entry: dict) -> dict:
    return ed.js("""async (entry) => { const { describeRun } = await import('/ui/panels.js');
        const run = describeRun('abc', entry); delete run.entry; return run; }""", entry)


def test_a_run_is_described_by_status_duration_images_and_prompt_text(ed):
    entry = {"prompt": [1, "abc", {"6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lighthouse at dusk"}}}, {}, []],
             "outputs": {"9": {"images": [{"filename": "a.png", "subfolder": "", "type": "output"}]}},
             "status": {"status_str": "success", "completed": True,
                        "messages": [["execution_start", {"timestamp": 1000}], ["execution_success", {"timestamp": 3500}]]}}
    run = describe(ed, entry)
    assert run["status"] == "success" and run["seconds"] == 2.5 and run["finishedAt"] == 3500
    assert run["snippet"] == "a lighthouse at dusk" and len(run["images"]) == 1


def test_an_interrupted_run_is_not_called_an_error(ed):
    entry = {"prompt": [1, "abc", {}, {}, []], "outputs": {},
             "status": {"status_str": "error", "completed": False,
                        "messages": [["execution_start", {"timestamp": 1}], ["execution_interrupted", {"timestamp": 2}]]}}
    assert describe(ed, entry)["status"] == "interrupted"


def test_history_cards_show_thumbnail_time_and_actions_and_delete_removes_one(ed, page, loom_server):
    post(loom_server.url + "/history", {"clear": True})
    load(ed, image_workflow(prefix="history_card"))
    page.click("#queue")
    wait_for_output_image(page, 3)
    page.click("[data-tab=history]")
    page.wait_for_selector(".history-item img")
    card = page.locator(".history-item").first
    assert card.locator(".run-status").text_content() == "success"
    assert " s" in card.locator(".run-info small").first.text_content()  # its duration
    prompt_id = card.get_attribute("data-prompt-id")
    card.locator(".delete-run").click()
    page.wait_for_function("(id) => !document.querySelector(`.history-item[data-prompt-id='${id}']`)", arg=prompt_id)
    with urllib.request.urlopen(f"{loom_server.url}/history/{prompt_id}", timeout=10) as response:
        assert json.loads(response.read()) == {}


def test_the_gallery_shows_every_output_and_opens_the_lightbox(ed, page, loom_server):
    post(loom_server.url + "/history", {"clear": True})
    for prefix in ("gallery_one", "gallery_two"):
        load(ed, image_workflow(prefix=prefix))
        page.click("#queue")
        wait_for_output_image(page, 3)
    page.click("[data-tab=history]")
    page.wait_for_selector(".open-gallery")
    page.click(".open-gallery")
    page.wait_for_function("document.querySelectorAll('.gallery-grid img').length === 2")
    page.locator(".gallery-grid img").nth(1).click()
    page.wait_for_selector(".lightbox img")
    assert page.text_content(".lightbox figcaption span") == "2 / 2"


def test_a_queued_prompt_shows_a_snippet_of_its_text(ed, page, loom_server):
    post(loom_server.url + "/queue", {"pause": True})
    try:
        page.click("#queue")  # the default txt2img graph
        page.click("[data-tab=queue]")
        page.wait_for_selector(".queue-list li .run-snippet")
        assert "a photograph of a lighthouse" in page.text_content(".queue-list li .run-snippet")
    finally:
        post(loom_server.url + "/queue", {"clear": True, "resume": True})
