// Unit tests of the editor's pure modules (no browser): types, graph edits,
// undo, hit-testing, widget rules, search, PNG text chunks.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { deflateSync } from "node:zlib";

import { typesCompatible, linkRefusal } from "../../web/lib/types.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { Graph } from "../../web/lib/graph.js";
import { UndoStack } from "../../web/lib/undo.js";
import { hitNode, hitTest } from "../../web/lib/hit.js";
import { imageRect, inputPos, outputPos, widgetRects, TITLE_H } from "../../web/lib/layout.js";
import { SpatialGrid } from "../../web/lib/spatial.js";
import { applyControl, clampNumber, cycleChoice, stepNumber } from "../../web/lib/widget_values.js";
import { searchNodes } from "../../web/lib/search.js";
import { pngTextChunks } from "../../web/lib/png.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";
import { apiToGraph, isApiPrompt } from "../../web/lib/api_to_graph.js";
import { defaultWorkflow } from "../../web/lib/default_workflow.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const lookup = (t) => schemas.get(t) ?? null;

// ---------------------------------------------------------------- types
test("wildcard type links to anything", () => {
  assert.ok(typesCompatible("*", "IMAGE"));
  assert.ok(typesCompatible("LATENT", "*"));
});
test("union types match when they share a member", () => {
  assert.ok(typesCompatible("IMAGE,MASK", "MASK"));
  assert.ok(!typesCompatible("IMAGE,MASK", "LATENT"));
});
test("a string output feeds a combo input", () => assert.ok(typesCompatible("STRING", "COMBO")));
test("refusal names both types", () => assert.equal(linkRefusal("IMAGE", "CLIP"), "a IMAGE output cannot feed a CLIP input"));

// ---------------------------------------------------------------- graph
function txt2img() {
  const g = defaultWorkflow(lookup);
  return g;
}
test("a new node gets its schema's sockets, outputs and widget defaults", () => {
  const g = new Graph(lookup);
  const n = g.addNode("KSampler", [0, 0]);
  assert.deepEqual(n.inputs.map((i) => i.name), ["model", "positive", "negative", "latent_image"]);
  assert.equal(n.values.steps, 20);
  assert.equal(n.controls.seed, "randomize");
});
test("connecting incompatible types throws the reason", () => {
  const g = new Graph(lookup);
  const a = g.addNode("EmptyLatentImage");
  const b = g.addNode("ImageInvert");
  assert.throws(() => g.connect(a.id, 0, b.id, "image"), /LATENT output cannot feed a IMAGE input/);
});
test("a link that would close a loop is refused", () => {
  const g = new Graph(lookup);
  const a = g.addNode("ImageInvert");
  const b = g.addNode("ImageInvert");
  g.connect(a.id, 0, b.id, "image");
  assert.match(g.canConnect(b.id, 0, a.id, "image"), /loop/);
});
test("linking onto a widget converts it to an input and unlinking converts it back", () => {
  const g = new Graph(lookup);
  const p = g.addNode("PrimitiveInt");
  const k = g.addNode("KSampler");
  const link = g.connect(p.id, 0, k.id, "seed");
  assert.deepEqual(k.inputs.at(-1), { name: "seed", type: "INT", link: link.id, widget: { name: "seed" } });
  g.removeLink(link.id);
  assert.ok(!k.inputs.some((i) => i.name === "seed"));
});
test("a second link into an input replaces the first", () => {
  const g = new Graph(lookup);
  const a = g.addNode("LoadImage");
  const b = g.addNode("LoadImage");
  const inv = g.addNode("ImageInvert");
  g.connect(a.id, 0, inv.id, "image");
  g.connect(b.id, 0, inv.id, "image");
  assert.equal(g.links.size, 1);
  assert.deepEqual(a.outputs[0].links, []);
});
test("removing a node removes its links from both ends", () => {
  const g = txt2img();
  const sampler = [...g.nodes.values()].find((n) => n.type === "KSampler");
  g.removeNode(sampler.id);
  assert.equal(g.links.size, 4);  // 9 minus the sampler's 4 inputs and 1 output
  for (const n of g.nodes.values()) for (const o of n.outputs) for (const l of o.links) assert.ok(g.links.has(l));
});
test("serialize writes positional widgets_values with the seed control, and named values", () => {
  const g = new Graph(lookup);
  const k = g.addNode("KSampler");
  const saved = g.serializeNode(k);
  assert.deepEqual(saved.widgets_values, [0, "randomize", 20, 8, "euler", "normal", 1]);
  assert.deepEqual(saved.widgets_values_named, { seed: 0, steps: 20, cfg: 8, sampler_name: "euler", scheduler: "normal", denoise: 1 });
});
test("serialize → load → serialize is identical, unknown keys included", () => {
  const g = txt2img();
  const first = g.serialize();
  first.extra.someone_elses = { kept: true };
  first.nodes[0].custom_field = [1, 2];
  const again = Graph.fromJSON(JSON.parse(JSON.stringify(first)), lookup).serialize();
  assert.deepEqual(again, first);
});
test("the default workflow converts to a runnable API prompt", () => {
  const prompt = workflowToApi(txt2img().serialize(), lookup);
  const sampler = Object.values(prompt).find((n) => n.class_type === "KSampler");
  assert.equal(Object.keys(prompt).length, 7);
  assert.ok(Array.isArray(sampler.inputs.model) && sampler.inputs.steps === 20);
});
test("an unknown node type loads as a placeholder keeping its values", () => {
  const g = Graph.fromJSON({ nodes: [{ id: 1, type: "Nope", pos: [0, 0], widgets_values: [1, "x"], inputs: [], outputs: [] }], links: [] }, lookup);
  assert.ok(g.nodes.get(1).missing);
  assert.deepEqual(g.serialize().nodes[0].widgets_values, [1, "x"]);
});
test("an API prompt is recognised and rebuilt with its links", () => {
  const prompt = { 1: { class_type: "LoadImage", inputs: { image: "a.png" } }, 2: { class_type: "ImageInvert", inputs: { image: ["1", 0] } } };
  assert.ok(isApiPrompt(prompt));
  const g = apiToGraph(prompt, lookup);
  assert.equal(g.links.size, 1);
  assert.equal(g.nodes.get(1).values.image, "a.png");
});

// ---------------------------------------------------------------- undo
test("undo returns the previous state and redo the undone one", () => {
  const u = new UndoStack();
  u.reset({ v: 0 });
  u.commit({ v: 1 });
  u.commit({ v: 2 });
  assert.deepEqual(u.undo(), { v: 1 });
  assert.deepEqual(u.undo(), { v: 0 });
  assert.equal(u.undo(), null);
  assert.deepEqual(u.redo(), { v: 1 });
});
test("an unchanged state is not an undo step", () => {
  const u = new UndoStack();
  u.reset({ v: 0 });
  assert.equal(u.commit({ v: 0 }), false);
  assert.ok(!u.canUndo);
});
test("a new edit after undo drops the redo branch", () => {
  const u = new UndoStack();
  u.reset({ v: 0 });
  u.commit({ v: 1 });
  u.undo();
  u.commit({ v: 5 });
  assert.ok(!u.canRedo);
});
test("history is bounded", () => {
  const u = new UndoStack(3);
  u.reset({ v: 0 });
  for (let i = 1; i <= 10; i++) u.commit({ v: i });
  let n = 0;
  while (u.undo()) n++;
  assert.equal(n, 3);
});

// ---------------------------------------------------------------- hit-testing and layout
test("hit-testing finds output and input slots, title, widgets and the resize corner", () => {
  const g = new Graph(lookup);
  const k = g.addNode("KSampler", [100, 100]);
  const s = g.schemaOf(k);
  const [ox, oy] = outputPos(k, 0, s);
  assert.equal(hitNode(g, k, ox, oy).kind, "output");
  const [ix, iy] = inputPos(k, 2);
  assert.deepEqual([hitNode(g, k, ix + 2, iy).kind, hitNode(g, k, ix + 2, iy).name], ["input", "negative"]);
  assert.equal(hitNode(g, k, 160, 100 - TITLE_H / 2).kind, "title");
  const steps = widgetRects(k, s).rects.find((r) => r.widget.name === "steps");
  const hit = hitNode(g, k, steps.x + steps.w / 2, steps.y + steps.h / 2);
  assert.deepEqual([hit.kind, hit.widget.name], ["widget", "steps"]);
  const seed = widgetRects(k, s).rects.find((r) => r.widget.name === "seed");
  assert.equal(hitNode(g, k, seed.control.x + 5, seed.control.y + 5).kind, "control");
  assert.equal(hitNode(g, k, 5000, 5000), null);
});
test("the topmost node wins where nodes overlap", () => {
  const g = new Graph(lookup);
  const a = g.addNode("ImageInvert", [0, 0]);
  const b = g.addNode("ImageInvert", [20, 0]);
  assert.equal(hitTest(g, [a.id, b.id], 100, 20).node.id, b.id);
});
test("a widget converted to an input is drawn as a slot, not a widget", () => {
  const g = new Graph(lookup);
  const p = g.addNode("PrimitiveInt");
  const k = g.addNode("KSampler");
  g.connect(p.id, 0, k.id, "steps");
  assert.ok(!widgetRects(k, g.schemaOf(k)).rects.some((r) => r.widget.name === "steps"));
});
test("the spatial grid returns only boxes in the rectangle", () => {
  const grid = new SpatialGrid(100);
  grid.insert(1, [0, 0, 50, 50]);
  grid.insert(2, [1000, 1000, 50, 50]);
  grid.insert(3, [90, 90, 300, 300]);
  assert.deepEqual([...grid.query([0, 0, 120, 120])].sort(), [1, 3]);
  assert.deepEqual([...grid.at(1020, 1020)], [2]);
});

// ---------------------------------------------------------------- widget rules
const INT = { type: "INT", options: { min: 0, max: 100, step: 5 } };
const FLOAT = { type: "FLOAT", options: { min: 0, max: 1, step: 0.1, round: 0.01 } };
test("numbers are clamped to min/max and INTs rounded", () => {
  assert.equal(clampNumber(INT, 120), 100);
  assert.equal(clampNumber(INT, -3), 0);
  assert.equal(clampNumber(INT, 7.6), 8);
  assert.equal(clampNumber(FLOAT, 0.123), 0.12);
});
test("arrows step by the widget's step", () => {
  assert.equal(stepNumber(INT, 10, 1), 15);
  assert.equal(stepNumber(FLOAT, 0.5, -1), 0.4);
});
test("combo arrows wrap around", () => {
  const spec = { type: "COMBO", choices: ["a", "b", "c"] };
  assert.equal(cycleChoice(spec, "c", 1), "a");
  assert.equal(cycleChoice(spec, "a", -1), "c");
});
test("control_after_generate changes the seed as asked", () => {
  const seed = { type: "INT", options: { min: 0, max: 1000 } };
  assert.equal(applyControl(seed, 5, "fixed"), 5);
  assert.equal(applyControl(seed, 5, "increment"), 6);
  assert.equal(applyControl(seed, 0, "decrement"), 0);
  assert.equal(applyControl(seed, 5, "randomize", () => 0.5), 500);
});

// ---------------------------------------------------------------- search
test("search ranks a prefix match of the display name first", () => {
  const found = searchNodes([...schemas.values()], "ksam", {}, typesCompatible);
  assert.equal(found[0].classType, "KSampler");
});
test("search after dragging a LATENT output lists only nodes taking LATENT", () => {
  const found = searchNodes([...schemas.values()], "", { outputType: "LATENT" }, typesCompatible);
  assert.ok(found.length > 0);
  for (const s of found) assert.ok(s.inputs.some((i) => typesCompatible("LATENT", i.type)), s.classType);
});
test("fuzzy search finds letters in order", () => {
  assert.equal(searchNodes([...schemas.values()], "vdec", {}, typesCompatible)[0].classType, "VAEDecode");
});

// ---------------------------------------------------------------- png
function chunk(type, data) {
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, "latin1");
  data.copy(out, 8);
  return out;
}
test("PNG text chunks are read (tEXt workflow and prompt)", () => {
  const png = Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", Buffer.alloc(13)),
    chunk("tEXt", Buffer.from("workflow\0{\"nodes\":[]}", "utf8")),
    chunk("tEXt", Buffer.from("prompt\0{}", "utf8")),
    chunk("IDAT", deflateSync(Buffer.alloc(4))),
    chunk("IEND", Buffer.alloc(0)),
  ]);
  assert.deepEqual(pngTextChunks(png), { workflow: "{\"nodes\":[]}", prompt: "{}" });
});
test("a file that is not a PNG is refused with a clear error", () => {
  assert.throws(() => pngTextChunks(Buffer.from("hello")), /not a PNG/);
});

test("a sampler with a live preview grows an image area to show it", () => {
  const g = new Graph(lookup);
  const sampler = g.addNode("KSampler", [0, 0]);
  assert.ok(imageRect(sampler, lookup("KSampler")).h < 20);
  sampler.preview = { complete: true, naturalWidth: 64, naturalHeight: 64 };
  assert.ok(imageRect(sampler, lookup("KSampler")).h >= 150);
});
