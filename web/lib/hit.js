// What is under a world-space point: a slot, a widget, a node part, a group.
import { COLLAPSED_W, TITLE_H, SLOT_H, bodySize, imageRect, inputPos, nodeBounds, outputPos, widgetRects } from "./layout.js";

const SLOT_RADIUS = 11;
const RESIZE = 14;

/** The topmost hit among `candidates` (node ids, back-to-front order). */
export function hitTest(graph, candidates, x, y) {
  const ids = [...candidates];
  for (let k = ids.length - 1; k >= 0; k--) {
    const node = graph.nodes.get(ids[k]);
    if (!node) continue;
    const hit = hitNode(graph, node, x, y);
    if (hit) return hit;
  }
  for (let k = graph.groups.length - 1; k >= 0; k--) {
    const g = graph.groups[k];
    const [gx, gy, gw, gh] = g.bounding;
    if (x >= gx && x <= gx + gw && y >= gy && y <= gy + gh) {
      return { kind: y <= gy + 34 ? "group-title" : "group", group: g, index: k };
    }
  }
  return null;
}

export function hitNode(graph, node, x, y) {
  const schema = graph.schemaOf(node);
  const [bx, by, bw, bh] = nodeBounds(node, schema);
  // Slots stick out of the box a little, so check them first.
  if (x >= bx - SLOT_RADIUS && x <= bx + bw + SLOT_RADIUS && y >= by && y <= by + bh) {
    if (!node.flags?.collapsed) {
      for (let i = 0; i < node.outputs.length; i++) {
        const [ox, oy] = outputPos(node, i, schema);
        if (Math.abs(y - oy) <= SLOT_H / 2 && x >= ox - 40 && x <= ox + SLOT_RADIUS) return { kind: "output", node, index: i };
      }
      for (let i = 0; i < node.inputs.length; i++) {
        const [ix, iy] = inputPos(node, i);
        if (Math.abs(y - iy) <= SLOT_H / 2 && x >= ix - SLOT_RADIUS && x <= ix + 40) return { kind: "input", node, index: i, name: node.inputs[i].name };
      }
    }
  }
  if (x < bx || x > bx + bw || y < by || y > by + bh) return null;
  if (y <= by + TITLE_H) {
    if (x <= bx + 24) return { kind: "collapse", node };
    return { kind: "title", node };
  }
  const [w, h] = bodySize(node, schema);
  if (x >= node.pos[0] + w - RESIZE && y >= node.pos[1] + h - RESIZE) return { kind: "resize", node };
  for (const rect of widgetRects(node, schema).rects) {
    if (x >= rect.x && x <= rect.x + rect.w && y >= rect.y && y <= rect.y + rect.h) return { kind: "widget", node, widget: rect.widget, rect };
    const c = rect.control;
    if (c && x >= c.x && x <= c.x + c.w && y >= c.y && y <= c.y + c.h) return { kind: "control", node, widget: rect.widget, rect: c };
  }
  if (node.images?.length) {
    const r = imageRect(node, schema);
    if (x >= r.x && x <= r.x + r.w && y >= r.y && y <= r.y + r.h) return { kind: "image", node };
  }
  return { kind: "body", node };
}

/** Which part of a number widget a click lands on: "dec", "inc" or "value". */
export function numberPart(rect, x) {
  if (x <= rect.x + 18) return "dec";
  if (x >= rect.x + rect.w - 18) return "inc";
  return "value";
}

export { COLLAPSED_W };
