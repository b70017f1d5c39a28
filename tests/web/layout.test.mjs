// Unit tests of multiline text boxes: their height follows the node's (as in ComfyUI),
// several share it, clicks land on the right one, and long text wraps into lines.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { Graph } from "../../web/lib/graph.js";
import { hitNode } from "../../web/lib/hit.js";
import { MULTILINE_MIN_H, WIDGET_H, bodySize, contentSize, textLinesFitting, widgetRects } from "../../web/lib/layout.js";
import { visibleLines, wrapLines } from "../../web/lib/text_wrap.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const graph = () => new Graph((t) => schemas.get(t) ?? null);
const rectOf = (g, node, name) => widgetRects(node, g.schemaOf(node)).rects.find((r) => r.widget.name === name);

test("a note at its minimum size has the minimum text box", () => {
  const g = graph();
  const note = g.addNode("Note", [0, 0]);
  assert.equal(rectOf(g, note, "text").h, MULTILINE_MIN_H);
});

test("a taller note gets a taller text box, by the height it grew", () => {
  const g = graph();
  const note = g.addNode("Note", [0, 0]);
  const [w, h] = contentSize(note, g.schemaOf(note));
  note.size = [w, h + 300];
  assert.equal(rectOf(g, note, "text").h, MULTILINE_MIN_H + 300);
});

test("a grown text box still ends inside the node's body", () => {
  const g = graph();
  const note = g.addNode("Note", [50, 70]);
  note.size = [400, 600];
  const r = rectOf(g, note, "text");
  const [, h] = bodySize(note, g.schemaOf(note));
  assert.ok(r.y + r.h <= note.pos[1] + h - 4, `box bottom ${r.y + r.h} is past the body bottom ${note.pos[1] + h}`);
  assert.ok(r.y + r.h >= note.pos[1] + h - 16, "the box does not reach near the body bottom");
});

test("a node shorter than its contents keeps the minimum text box", () => {
  const g = graph();
  const note = g.addNode("Note", [0, 0]);
  note.size = [300, 20];
  assert.equal(rectOf(g, note, "text").h, MULTILINE_MIN_H);
});

test("a prompt node's text box grows with the node", () => {
  const g = graph();
  const clip = g.addNode("CLIPTextEncode", [0, 0]);
  const before = rectOf(g, clip, "text").h;
  clip.size = [400, contentSize(clip, g.schemaOf(clip))[1] + 120];
  assert.equal(rectOf(g, clip, "text").h, before + 120);
});

test("several multiline widgets share the extra height equally; single-line ones keep theirs", () => {
  const g = graph();
  const cat = g.addNode("StringConcatenate", [0, 0]);
  const schema = g.schemaOf(cat);
  cat.size = [400, contentSize(cat, schema)[1] + 200];
  const a = rectOf(g, cat, "string_a");
  const b = rectOf(g, cat, "string_b");
  assert.equal(a.h, MULTILINE_MIN_H + 100);
  assert.equal(b.h, MULTILINE_MIN_H + 100);
  assert.ok(b.y >= a.y + a.h, "the second box starts below the first");
  assert.equal(rectOf(g, cat, "delimiter").h, WIDGET_H);
});

test("a click near the bottom of a tall note edits its text", () => {
  const g = graph();
  const note = g.addNode("Note", [0, 0]);
  note.size = [400, 500];
  const hit = hitNode(g, note, 200, 500 - 20);
  assert.deepEqual([hit.kind, hit.widget?.name], ["widget", "text"]);
});

test("clicks in a tall node's two text boxes edit the first in the upper half and the second in the lower", () => {
  const g = graph();
  const cat = g.addNode("StringConcatenate", [0, 0]);
  cat.size = [400, 600];
  assert.equal(hitNode(g, cat, 200, 600 * 0.25).widget?.name, "string_a");
  assert.equal(hitNode(g, cat, 200, 600 * 0.7).widget?.name, "string_b");
});

test("a taller box fits more lines of text; the minimum box fits four", () => {
  assert.equal(textLinesFitting(MULTILINE_MIN_H), 4);
  assert.ok(textLinesFitting(MULTILINE_MIN_H + 150) >= 4 + 10);
});

const charWidth = (t) => t.length * 6;

test("text wraps at word boundaries within the width and keeps its newlines", () => {
  assert.deepEqual(wrapLines("aaa bbb ccc\nddd", 7 * 6, charWidth), ["aaa bbb", "ccc", "ddd"]);
});

test("wrapping stops at the line limit", () => {
  assert.deepEqual(wrapLines("a\nb\nc\nd", 100, charWidth, 2), ["a", "b"]);
});

test("text that does not fit shows its first lines and ends the last with an ellipsis", () => {
  assert.deepEqual(visibleLines(["a", "b", "c"], 2), { shown: ["a", "b…"], truncated: true });
  assert.deepEqual(visibleLines(["a", "b"], 2), { shown: ["a", "b"], truncated: false });
});
