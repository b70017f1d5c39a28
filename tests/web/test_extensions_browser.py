"""Plug-in web extensions in the editor: a pack in custom_nodes/ with a WEB_DIRECTORY
script that imports ComfyUI's `scripts/app.js` / `scripts/api.js`, registers hooks and
listens to a websocket event its Python node sends with PromptServer.send_sync."""

from __future__ import annotations

import sys

import pytest

from .conftest import ServerThread, editor_page
from .editor_driver import EditorDriver

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PACK = "loom_shout_pack"

PACK_PY = '''
from aiohttp import web
from server import PromptServer

WEB_DIRECTORY = "./web"


@PromptServer.instance.routes.get("/loom_shout_pack/ping")
async def ping(request):
    return web.json_response({"pong": True})


class ShoutNode:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "hello"})},
                "hidden": {"unique_id": "UNIQUE_ID"}}

    RETURN_TYPES = ("STRING",)
    FUNCTION = "shout"
    OUTPUT_NODE = True
    CATEGORY = "shout"

    def shout(self, text, unique_id):
        server = PromptServer.instance
        server.send_sync("loom_shout_pack.shout", {"text": text.upper(), "node": unique_id}, server.client_id)
        return {"ui": {"text": [text]}, "result": (text,)}


NODE_CLASS_MAPPINGS = {"ShoutNode": ShoutNode}
'''

PACK_JS = '''
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

window.shoutLog = [];
app.registerExtension({
  name: "loom_shout_pack.shout",
  async init(app) { window.shoutLog.push("init"); },
  async setup(app) {
    window.shoutLog.push("setup");
    const answer = await (await api.fetchApi("/loom_shout_pack/ping")).json();
    window.shoutPing = answer.pong;
    api.addEventListener("loom_shout_pack.shout", (event) => {
      window.shoutLog.push("event:" + event.detail.text);
      const node = app.graph.nodes.get(Number(event.detail.node));
      if (node) { node.title = "Shouted " + event.detail.text; app.redraw(); }
    });
  },
  async beforeRegisterNodeDef(nodeType, nodeData, app) {
    if (nodeData.name !== "ShoutNode") return;
    window.shoutLog.push("registered:" + nodeType.comfyClass);
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      this.properties.lastShout = output.text[0];
    };
  },
  nodeCreated(node, app) {
    if (node.type !== "ShoutNode") return;
    node.color = "#a0208a";
    node.bgcolor = "#4a1040";
    node.title = "Shout!";
  },
});
'''


class PackServer(ServerThread):
    """The server the way `loom serve` builds it: compat layer, plug-ins, PromptServer bound."""

    async def _start(self) -> None:
        from server.app import LoomServer
        from server.cli import parser
        from server.config import ServerOptions
        from server.host import build_host

        host = build_host(parser().parse_args(["serve", "--base-directory", str(self.base), "--cpu"]))
        assert host.registry.get("ShoutNode") is not None, host.plugin_report.summary()
        self.server = LoomServer(host.registry, ServerOptions(port=0, preview_interval=0.0), device="cpu")
        host.on_server(self.server)
        await self.server.start()


@pytest.fixture(scope="module")
def pack_server(tmp_path_factory):
    base = tmp_path_factory.mktemp("loom_ext")
    folder = base / "custom_nodes" / PACK
    (folder / "web").mkdir(parents=True)
    (folder / "__init__.py").write_text(PACK_PY)
    (folder / "web" / "shout.js").write_text(PACK_JS)
    server = PackServer(base).start()
    yield server
    server.stop()
    for name in [m for m in sys.modules if m.split(".")[0] == PACK]:
        del sys.modules[name]


@pytest.fixture
def ed(browser, pack_server, request):
    with editor_page(browser, pack_server.url, request.node.name) as page:
        yield EditorDriver(page)


def title_bar_colour(ed: EditorDriver, node_id: int) -> list[int]:
    """The canvas pixel just inside the node's title bar, left of the title text."""
    x, y = ed.where(node_id, "title")
    return ed.js("""([x, y]) => {
        const c = document.querySelector('#canvas'); const r = c.getBoundingClientRect();
        const d = devicePixelRatio; const p = c.getContext('2d').getImageData((x - r.left) * d, (y - r.top) * d, 1, 1).data;
        return [p[0], p[1], p[2]]; }""", [x - 60, y])


def test_extension_scripts_are_listed_and_imported_with_init_setup_and_node_defs(ed):
    assert "/extensions/loom_shout_pack/shout.js" in ed.js("fetch('/extensions').then(r => r.json())")
    assert ed.js("window.loom.app.extensions.map(e => e.name)") == ["loom_shout_pack.shout"]
    assert ed.js("window.shoutLog") == ["init", "registered:ShoutNode", "setup"]


def test_scripts_api_fetch_api_reaches_the_packs_own_route(ed):
    ed.page.wait_for_function("window.shoutPing === true", timeout=5000)


def test_node_created_hook_recolours_and_retitles_a_new_node(ed):
    ed.clear_canvas()
    node = ed.add_node_by_search("ShoutNode", (500, 300))
    state = ed.js("(id) => { const n = window.loom.editor.nodeById(id); return [n.title, n.color, n.bgcolor]; }", node)
    assert state == ["Shout!", "#a0208a", "#4a1040"]
    ed.page.wait_for_timeout(100)
    assert title_bar_colour(ed, node) == [0xa0, 0x20, 0x8a]


def test_a_saved_title_wins_over_the_hook_when_a_workflow_loads(ed):
    ed.clear_canvas()
    node = ed.add_node_by_search("ShoutNode", (500, 300))
    workflow = ed.workflow()
    workflow["nodes"][0]["title"] = "Renamed by the user"
    ed.js("(w) => window.loom.editor.loadWorkflow(w)", workflow)
    assert ed.js("(id) => window.loom.editor.nodeById(id).title", node) == "Renamed by the user"
    assert ed.js("(id) => window.loom.editor.nodeById(id).color", node) == "#a0208a"


def test_custom_websocket_event_from_the_packs_node_reaches_the_extension(ed):
    ed.clear_canvas()
    node = ed.add_node_by_search("ShoutNode", (500, 300))
    ed.type_into_widget(node, "text", "quiet words")
    ed.page.click("#queue")
    ed.page.wait_for_function("window.shoutLog.includes('event:QUIET WORDS')", timeout=30000)
    assert ed.js("(id) => window.loom.editor.nodeById(id).title", node) == "Shouted QUIET WORDS"


def test_on_executed_set_on_the_node_type_prototype_gets_the_nodes_output(ed):
    ed.clear_canvas()
    node = ed.add_node_by_search("ShoutNode", (500, 300))
    ed.page.click("#queue")
    ed.page.wait_for_function("(id) => window.loom.editor.nodeById(id).properties.lastShout === 'hello'", arg=node,
                              timeout=30000)
