"""Editor speed in headless Chromium: load + first draw of a 1000-node workflow,
and frames per second while panning it (zoomed to fit, and at 100 %).

    .venv/bin/python bench/editor.py [--nodes 1000] [--seconds 3]

Targets: load ≤ 500 ms, ≥ 50 fps.  Starts a real Loom server with the
built-in nodes on an ephemeral port; needs Debian's chromium at /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_session import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.server_thread import ServerThread  # noqa: E402

CHAIN = ["LoadImage", "ImageScaleBy", "ImageInvert", "ImageBlend", "SaveImage"]


def big_workflow(count: int) -> dict:
    """`count` nodes in rows of LoadImage → ScaleBy → Invert → Blend → Save chains, all linked."""
    nodes, links = [], []
    per_row = 40
    for i in range(count):
        kind = CHAIN[i % len(CHAIN)]
        nid = i + 1
        node = {"id": nid, "type": kind, "pos": [(i % per_row) * 300, (i // per_row) * 360], "size": None,
                "flags": {}, "order": i, "mode": 0, "inputs": [], "outputs": [], "properties": {}}
        if kind == "LoadImage":
            node["widgets_values"] = ["sample.png", "image"]
        elif kind == "ImageScaleBy":
            node["widgets_values"] = ["bilinear", 0.5]
        elif kind == "ImageBlend":
            node["widgets_values"] = [0.5, "normal"]
        elif kind == "SaveImage":
            node["widgets_values"] = ["bench"]
        del node["size"]
        if kind != "LoadImage" and i > 0:
            lid = len(links) + 1
            input_name = {"ImageScaleBy": "image", "ImageInvert": "image", "ImageBlend": "image1", "SaveImage": "images"}[kind]
            links.append([lid, nid - 1, 0, nid, 0, "IMAGE"])
            node["inputs"].append({"name": input_name, "type": "IMAGE", "link": lid})
            if kind == "ImageBlend":
                node["inputs"].append({"name": "image2", "type": "IMAGE", "link": None})
        nodes.append(node)
    for link in links:  # outputs list their links
        origin = nodes[link[1] - 1]
        if not origin["outputs"]:
            origin["outputs"] = [{"name": "IMAGE", "type": "IMAGE", "links": [], "slot_index": 0}]
        origin["outputs"][0]["links"].append(link[0])
    return {"last_node_id": count, "last_link_id": len(links), "nodes": nodes, "links": links, "groups": [],
            "config": {}, "extra": {}, "version": 0.4}


MEASURE = """
async ([workflow, seconds]) => {
  const ed = window.loom.editor;
  const frame = () => new Promise((r) => requestAnimationFrame(r));
  await frame();
  const t0 = performance.now();
  ed.loadWorkflow(workflow, {fit: true});
  ed.renderer.draw();
  const loadMs = performance.now() - t0;
  await frame();

  async function pan(scale) {
    if (scale) { ed.view.scale = scale; }
    const frames = [];
    const start = performance.now();
    const base = [...ed.view.offset];
    let last = start;
    let i = 0;
    let visible = 0;
    while (performance.now() - start < seconds * 1000) {
      // Sweep back and forth (300 screen px) so the view stays over the graph.
      i += 1;
      ed.view.offset = [base[0] + 300 * Math.sin(i / 40) / ed.view.scale, base[1] + 150 * Math.cos(i / 55) / ed.view.scale];
      ed.redraw();
      await frame();
      const now = performance.now();
      frames.push(now - last);
      last = now;
      visible = Math.max(visible, ed.renderer.nodesIn(ed.renderer.visibleRect()).length);
    }
    const elapsed = (performance.now() - start) / 1000;
    const drawMs = ed.renderer.lastDrawMs;
    frames.sort((a, b) => a - b);
    return {fps: frames.length / elapsed, p95FrameMs: frames[Math.floor(frames.length * 0.95)], lastDrawMs: drawMs,
            visible, scale: ed.view.scale};
  }
  const fitted = await pan(null);
  ed.view.offset = [-1500, -1500];
  const crowded = await pan(0.5);
  ed.view.offset = [-3000, -3000];
  const full = await pan(1.0);
  return {loadMs, nodes: ed.graph.nodes.size, links: ed.graph.links.size, fitted, crowded, full};
}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as base:
        server = ServerThread(Path(base)).start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 820})
                page.goto(server.url + "/")
                page.wait_for_selector("body[data-ready=true]", timeout=20000)
                result = page.evaluate(MEASURE, [big_workflow(args.nodes), args.seconds])
                out = ROOT / "test-output" / "screenshots"
                out.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out / "bench_editor_1000_nodes.png"))
                browser.close()
        finally:
            server.stop()
    print(json.dumps(result, indent=1))
    fit, crowded, full = result["fitted"], result["crowded"], result["full"]
    print(f"\n{result['nodes']} nodes, {result['links']} links (headless Chromium, software rendering)")
    print(f"load + first draw:        {result['loadMs']:7.1f} ms   (target ≤ 500 ms)  {'OK' if result['loadMs'] <= 500 else 'MISSED'}")
    print(f"pan, zoomed to fit:       {fit['fps']:7.1f} fps  (p95 frame {fit['p95FrameMs']:.1f} ms, {fit['visible']} nodes visible, scale {fit['scale']:.2f})")
    print(f"pan, 50 % zoom (detail):  {crowded['fps']:7.1f} fps  (p95 frame {crowded['p95FrameMs']:.1f} ms, up to {crowded['visible']} nodes visible)")
    print(f"pan, 100 % zoom:          {full['fps']:7.1f} fps  (p95 frame {full['p95FrameMs']:.1f} ms, up to {full['visible']} nodes visible)")
    print(f"target ≥ 50 fps: {'OK' if min(fit['fps'], crowded['fps'], full['fps']) >= 50 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
