"""The settings dialog: kept on the server in user/loom.settings.json through the
userdata API, each setting taking effect at once — theme, link style, minimap, snap
to grid, the clamped-value cue — and arithmetic in number fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def settings_file(loom_server) -> Path:
    path = Path(loom_server.server.folders.user) / "loom.settings.json"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def ed(page, settings_file) -> EditorDriver:
    return EditorDriver(page)


def saved(path: Path, key: str, page) -> object:
    for _ in range(100):
        if path.exists():
            value = json.loads(path.read_text()).get(key)
            if value is not None:
                return value
        page.wait_for_timeout(50)
    raise AssertionError(f"{path} never got {key}")


def test_the_light_theme_is_saved_on_the_server_and_comes_back_after_a_reload(ed, page, settings_file):
    page.click("#settings")
    page.select_option("#setting-theme", "light")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert saved(settings_file, "theme", page) == "light"
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.evaluate("document.documentElement.dataset.theme") == "light"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 248, 250)"


def test_links_can_be_drawn_straight_or_hidden(ed, page, settings_file):
    page.click("#settings")
    page.select_option("#setting-linkMode", "hidden")
    assert page.evaluate("window.loom.editor.renderer.style.linkMode") == "hidden"
    assert saved(settings_file, "linkMode", page) == "hidden"
    page.select_option("#setting-linkMode", "straight")
    assert page.evaluate("window.loom.editor.renderer.style.linkMode") == "straight"


def pixel(page, x: int, y: int) -> list[int]:
    return page.evaluate("""([x, y]) => { const c = document.querySelector('#canvas');
        const d = window.devicePixelRatio || 1;
        return [...c.getContext('2d').getImageData(x * d, y * d, 1, 1).data]; }""", [x, y])


def test_the_minimap_draws_in_the_corner(ed, page, settings_file):
    width, height = page.evaluate("[document.querySelector('#canvas').clientWidth, document.querySelector('#canvas').clientHeight]")
    corner = (width - 20, height - 20)
    before = pixel(page, *corner)
    page.click("#settings")
    page.check("#setting-minimap")
    page.wait_for_timeout(200)
    assert pixel(page, *corner) != before
    assert saved(settings_file, "minimap", page) is True


def test_snap_to_grid_puts_moved_nodes_on_the_grid(ed, page, settings_file):
    page.click("#settings")
    page.check("#setting-snapToGrid")
    page.keyboard.press("Escape")
    node = ed.node_ids("KSampler")[0]
    ed.move_node(node, 37, 23)
    x, y = ed.js("(id) => window.loom.editor.nodeById(id).pos", node)
    assert x % 10 == 0 and y % 10 == 0


def test_a_number_field_takes_arithmetic(ed, page):
    node = ed.node_ids("KSampler")[0]
    ed.type_into_widget(node, "steps", "2*3+1")
    assert ed.value(node, "steps") == 7


def test_a_clamped_number_is_said(ed, page):
    node = ed.node_ids("KSampler")[0]
    ed.type_into_widget(node, "steps", "999999")
    assert ed.value(node, "steps") == 10000
    toast = page.locator(".toast.warn", has_text="outside")
    assert toast.count() == 1 and "10000" in toast.text_content()
