// Node geometry, shared by the renderer and hit-testing. World units; a
// node's pos is the top-left of its body, the title bar sits above it (as in
// litegraph, so positions in ComfyUI files mean the same here).
export const TITLE_H = 30;
export const SLOT_H = 22;
export const WIDGET_H = 24;
export const WIDGET_GAP = 4;
export const PAD = 8;
export const MIN_W = 230;
export const COLLAPSED_W = 160;
export const IMAGE_MIN_H = 200;

/** The widgets a node draws, in order: {name, spec, kind}. */
export function nodeWidgets(node, schema) {
  if (node.missing) return [];
  if (node.primitiveSpec) return [{ name: "value", spec: node.primitiveSpec, control: "value" in node.controls }];
  if (!schema) return [];
  const linked = new Set(node.inputs.filter((i) => i.widget).map((i) => i.name));
  const widgets = [];
  for (const spec of schema.inputs) {
    if (!spec.isWidget || linked.has(spec.name)) continue;
    widgets.push({ name: spec.name, spec, control: spec.name in node.controls });
    if (spec.options?.image_upload) widgets.push({ name: "upload", spec: { type: "UPLOAD", name: "upload", target: spec.name }, upload: true });
  }
  return widgets;
}

export const TEXT_LINE_H = 15;
/** A multiline text box is never shorter than this; it grows with its node (as ComfyUI's). */
export const MULTILINE_MIN_H = WIDGET_H * 3;

export function isMultiline(w) {
  return w.spec.type === "STRING" && Boolean(w.spec.options?.multiline);
}

function widgetHeight(w) {
  return isMultiline(w) ? MULTILINE_MIN_H : WIDGET_H;
}

/** How many wrapped lines of text a multiline box of height `h` shows. */
export function textLinesFitting(h) {
  // The first line's middle is 12 below the box top; a line needs ~6 below its middle.
  return Math.max(1, Math.floor((h - 3) / TEXT_LINE_H));
}

// Output images (and live previews) take the room below the widgets.
function showsImages(node, schema) {
  return Boolean(node.images?.length || node.preview || schema?.outputNode && /Image/.test(node.type));
}

// A legacy Reroute node is a small pass-through box, as ComfyUI draws it.
export const REROUTE_NODE_W = 100;

/** Minimum body size for a node's contents. */
export function contentSize(node, schema) {
  if (node.type === "Reroute" && !node.missing) return [REROUTE_NODE_W, SLOT_H + PAD];
  const rows = Math.max(node.inputs.length, node.outputs.length);
  let h = rows * SLOT_H + PAD;
  for (const w of nodeWidgets(node, schema)) h += widgetHeight(w) + (w.control ? WIDGET_H + WIDGET_GAP : 0) + WIDGET_GAP;
  // Room for output images, and for live previews on a sampler while (and after) it runs.
  if (showsImages(node, schema)) h += IMAGE_MIN_H;
  return [MIN_W, Math.max(h + PAD, SLOT_H + PAD)];
}

/** The body size drawn: the stored size, grown to fit the contents. */
export function bodySize(node, schema) {
  const [cw, ch] = contentSize(node, schema);
  const [w, h] = node.size ?? [cw, ch];
  return [Math.max(w, node.missing ? MIN_W : cw), Math.max(h, node.missing ? 60 : ch)];
}

/** Bounding box including the title: [x, y, w, h]. */
export function nodeBounds(node, schema) {
  if (node.flags?.collapsed) return [node.pos[0], node.pos[1] - TITLE_H, COLLAPSED_W, TITLE_H];
  const [w, h] = bodySize(node, schema);
  return [node.pos[0], node.pos[1] - TITLE_H, w, h + TITLE_H];
}

export function inputPos(node, index) {
  if (node.flags?.collapsed) return [node.pos[0], node.pos[1] - TITLE_H / 2];
  return [node.pos[0], node.pos[1] + PAD / 2 + SLOT_H * (index + 0.5)];
}

export function outputPos(node, index, schema) {
  if (node.flags?.collapsed) return [node.pos[0] + COLLAPSED_W, node.pos[1] - TITLE_H / 2];
  const [w] = bodySize(node, schema);
  return [node.pos[0] + w, node.pos[1] + PAD / 2 + SLOT_H * (index + 0.5)];
}

/** Widget rows: [{widget, x, y, w, h, controlRect?}] in world units. Multiline text
 * boxes share whatever height the node has beyond its minimum (unless output images
 * claim it), so resizing a node taller shows more of a long prompt or note. */
export function widgetRects(node, schema) {
  const [w, bodyH] = bodySize(node, schema);
  const widgets = nodeWidgets(node, schema);
  const tall = widgets.filter(isMultiline).length;
  const spare = tall && !showsImages(node, schema) ? Math.max(0, bodyH - contentSize(node, schema)[1]) : 0;
  const rows = Math.max(node.inputs.length, node.outputs.length);
  let y = node.pos[1] + PAD / 2 + rows * SLOT_H + WIDGET_GAP;
  const out = [];
  for (const widget of widgets) {
    const h = widgetHeight(widget) + (isMultiline(widget) ? spare / tall : 0);
    const rect = { widget, x: node.pos[0] + PAD + 4, y, w: w - 2 * PAD - 8, h };
    y += h + WIDGET_GAP;
    if (widget.control) {
      rect.control = { x: rect.x, y, w: rect.w, h: WIDGET_H };
      y += WIDGET_H + WIDGET_GAP;
    }
    out.push(rect);
  }
  return { rects: out, bottom: y };
}

/** Where output images are drawn: below the widgets, to the bottom of the body. */
export function imageRect(node, schema) {
  const [w, h] = bodySize(node, schema);
  const { bottom } = widgetRects(node, schema);
  return { x: node.pos[0] + PAD, y: bottom + PAD, w: w - 2 * PAD, h: node.pos[1] + h - bottom - 2 * PAD };
}

/** Where a link's midpoint dot is drawn: the middle of its middle segment (a bezier with
 * symmetric handles passes through its chord's middle). `points`: origin, reroutes, target. */
export function linkMiddle(points) {
  const k = Math.floor((points.length - 1) / 2);
  return [(points[k][0] + points[k + 1][0]) / 2, (points[k][1] + points[k + 1][1]) / 2];
}
