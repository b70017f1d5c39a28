// Draws the graph on a Canvas 2D. Redraws only when asked (requestDraw),
// culls nodes and links to the viewport through a spatial grid, and drops to
// plain boxes when zoomed far out.
import { SpatialGrid } from "../lib/spatial.js";
import { TITLE_H, SLOT_H, WIDGET_H, TEXT_LINE_H, bodySize, imageRect, inputPos, isMultiline, linkMiddle, nodeBounds, outputPos, textLinesFitting, widgetRects } from "../lib/layout.js";
import { columnAt, textOffset, visibleLines, wrapLines } from "../lib/text_wrap.js";
import { MODE_BYPASSED, MODE_MUTED } from "../lib/graph.js";
import { REROUTE_RADIUS, reroutePath } from "../lib/reroutes.js";
import { isGroupNodeType } from "../lib/workflow_to_api.js";

export const TYPE_COLORS = {
  MODEL: "#b39ddb", CLIP: "#ffd500", VAE: "#ff6e6e", CONDITIONING: "#ffa931", LATENT: "#ff9cf9",
  IMAGE: "#64b5f6", MASK: "#81c784", INT: "#aaee88", FLOAT: "#aaee88", STRING: "#88ddaa", BOOLEAN: "#dd88aa",
  COMBO: "#aabbcc", CONTROL_NET: "#00d78d", CLIP_VISION: "#a8dadc", CLIP_VISION_OUTPUT: "#ad7452", UPSCALE_MODEL: "#ffb347",
};
export const typeColor = (t) => TYPE_COLORS[String(t).split(",")[0]] ?? "#9aa0a6";

const LOD_SCALE = 0.45;
const FONT = "ui-sans-serif, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

const DARK = { background: "#1b1d21", grid: "#23262b", minimap_bg: "rgba(13, 17, 23, 0.85)" };
const LIGHT = { background: "#e9ecef", grid: "#d5dae0", minimap_bg: "rgba(255, 255, 255, 0.85)" };

export class Renderer {
  constructor(canvas, editor) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.editor = editor;
    this.index = new SpatialGrid(400);
    this.indexVersion = -1;
    this.geom = new Map();
    this.order = new Map();
    this.pending = false;
    this.frames = 0;
    this.lastDrawMs = 0;
    /** What the settings change (settings.js): canvas colours, how links are drawn, the minimap. */
    this.style = { ...DARK, linkMode: "spline", minimap: false };
    this.resize();
  }

  setStyle({ theme = "dark", linkMode = "spline", minimap = false } = {}) {
    this.style = { ...(theme === "light" ? LIGHT : DARK), linkMode, minimap };
    this.requestDraw();
  }

  resize() {
    const dpr = window.devicePixelRatio || 1;
    const { clientWidth: w, clientHeight: h } = this.canvas;
    this.canvas.width = Math.max(1, Math.round(w * dpr));
    this.canvas.height = Math.max(1, Math.round(h * dpr));
    this.dpr = dpr;
    this.requestDraw();
  }

  requestDraw() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  /** Rebuild node geometry and the spatial grid when the graph changed. */
  refreshIndex() {
    const graph = this.editor.graph;
    if (this.indexVersion === graph.version && this.indexGraph === graph) return;
    this.index.clear();
    this.geom.clear();
    this.order.clear();
    let i = 0;
    for (const node of graph.nodes.values()) {
      const schema = graph.schemaOf(node);
      const bounds = nodeBounds(node, schema);
      const [w, h] = node.flags?.collapsed ? [bounds[2], 0] : bodySize(node, schema);
      this.geom.set(node.id, { bounds, w, h, schema });
      this.index.insert(node.id, [bounds[0] - 12, bounds[1], bounds[2] + 24, bounds[3]]);
      this.order.set(node.id, i++);
    }
    this.indexVersion = graph.version;
    this.indexGraph = graph;
  }

  /** Node ids in a world rectangle, back to front. */
  nodesIn(rect) {
    this.refreshIndex();
    return [...this.index.query(rect)].sort((a, b) => this.order.get(a) - this.order.get(b));
  }

  visibleRect() {
    const { offset, scale } = this.editor.view;
    return [-offset[0], -offset[1], this.canvas.width / this.dpr / scale, this.canvas.height / this.dpr / scale];
  }

  draw() {
    const t0 = performance.now();
    const { ctx, editor } = this;
    const { offset, scale } = editor.view;
    const W = this.canvas.width / this.dpr;
    const H = this.canvas.height / this.dpr;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = this.style.background;
    ctx.fillRect(0, 0, W, H);
    this.drawGrid(W, H, offset, scale);
    ctx.setTransform(this.dpr * scale, 0, 0, this.dpr * scale, this.dpr * offset[0] * scale, this.dpr * offset[1] * scale);
    const view = this.visibleRect();
    const lod = scale < LOD_SCALE;
    const ids = this.nodesIn(view);
    const visible = new Set(ids);
    for (const g of editor.graph.groups) this.drawGroup(g, view, lod);
    this.drawLinks(visible, view, lod);
    this.drawReroutes(view);
    for (const id of ids) {
      const node = editor.graph.nodes.get(id);
      if (lod) this.drawNodeBox(node);
      else this.drawNode(node);
    }
    this.drawOverlays(lod);
    if (this.style.minimap) this.drawMinimap(W, H);
    this.frames += 1;
    this.lastDrawMs = performance.now() - t0;
  }

  drawGrid(W, H, offset, scale) {
    if (scale < 0.5) return;
    const { ctx } = this;
    const step = 50 * scale;
    ctx.strokeStyle = this.style.grid;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let x = ((offset[0] * scale) % step + step) % step; x < W; x += step) { ctx.moveTo(x, 0); ctx.lineTo(x, H); }
    for (let y = ((offset[1] * scale) % step + step) % step; y < H; y += step) { ctx.moveTo(0, y); ctx.lineTo(W, y); }
    ctx.stroke();
  }

  drawGroup(g, view, lod) {
    const [x, y, w, h] = g.bounding;
    if (x > view[0] + view[2] || y > view[1] + view[3] || x + w < view[0] || y + h < view[1]) return;
    const { ctx } = this;
    ctx.globalAlpha = 0.18;
    ctx.fillStyle = g.color || "#3f789e";
    ctx.fillRect(x, y, w, h);
    ctx.globalAlpha = 1;
    ctx.strokeStyle = this.editor.selectedGroup === g ? "#fff" : (g.color || "#3f789e");
    ctx.lineWidth = 2;
    ctx.strokeRect(x, y, w, h);
    if (!lod) {
      ctx.fillStyle = "#e8e8e8";
      ctx.font = `${g.font_size ?? 24}px ${FONT}`;
      ctx.textBaseline = "top";
      ctx.fillText(g.title, x + 10, y + 6);
    }
  }

  /** The points a link is drawn through: its output, its native reroutes (origin side first), its input. */
  linkPoints(link) {
    const graph = this.editor.graph;
    const a = graph.nodes.get(link.origin_id);
    const b = graph.nodes.get(link.target_id);
    if (!a || !b) return null;
    const ga = this.geom.get(a.id);
    const start = a.flags?.collapsed ? [ga.bounds[0] + ga.bounds[2], ga.bounds[1] + TITLE_H / 2] : [a.pos[0] + ga.w, a.pos[1] + 4 + SLOT_H * (link.origin_slot + 0.5)];
    const ti = b.inputs.findIndex((i) => i.link === link.id);
    const end = inputPos(b, ti === -1 ? link.target_slot : ti);
    if (link.parentId == null || !graph.reroutes.size) return [start, end];
    return [start, ...reroutePath(graph.reroutes, link.parentId).map((r) => r.pos), end];
  }

  drawLinks(visible, view, lod) {
    const { ctx, editor } = this;
    const mode = this.style.linkMode;
    if (mode === "hidden") return;
    const [vx, vy, vw, vh] = view;
    ctx.lineWidth = lod ? 2 / editor.view.scale : 3;
    const byColor = new Map();
    for (const link of editor.graph.links.values()) {
      const points = this.linkPoints(link);
      if (!points) continue;
      if (!visible.has(link.origin_id) && !visible.has(link.target_id)) {
        const xs = points.map((p) => p[0]);
        const ys = points.map((p) => p[1]);
        if (Math.max(...xs) < vx || Math.min(...xs) > vx + vw || Math.max(...ys) < vy || Math.min(...ys) > vy + vh) continue;
      }
      const color = typeColor(link.type);
      if (!byColor.has(color)) byColor.set(color, []);
      byColor.get(color).push(points);
    }
    // One path per colour: far fewer canvas state changes with many links.
    for (const [color, list] of byColor) {
      ctx.strokeStyle = color;
      ctx.beginPath();
      for (const points of list) {
        ctx.moveTo(points[0][0], points[0][1]);
        for (let k = 1; k < points.length; k++) {
          const [x1, y1] = points[k - 1];
          const [x2, y2] = points[k];
          if (lod || mode === "linear") ctx.lineTo(x2, y2);
          else if (mode === "straight") {  // right angles, turning halfway across
            const xm = (x1 + x2) / 2;
            ctx.lineTo(xm, y1);
            ctx.lineTo(xm, y2);
            ctx.lineTo(x2, y2);
          } else {
            const d = Math.max(40, Math.abs(x2 - x1) * 0.5);
            ctx.bezierCurveTo(x1 + d, y1, x2 - d, y2, x2, y2);
          }
        }
      }
      ctx.stroke();
      if (!lod) {  // the midpoint dot: right-click it for the link's menu (menus.js)
        ctx.fillStyle = color;
        ctx.beginPath();
        for (const points of list) {
          const [mx, my] = linkMiddle(points);
          ctx.moveTo(mx + 5, my);
          ctx.arc(mx, my, 5, 0, Math.PI * 2);
        }
        ctx.fill();
      }
    }
  }

  /** Native reroutes: a dot in the colour of the links through it. */
  drawReroutes(view) {
    const { ctx, editor } = this;
    const graph = editor.graph;
    const [vx, vy, vw, vh] = view;
    for (const r of graph.reroutes.values()) {
      const [x, y] = r.pos;
      if (x < vx - 20 || y < vy - 20 || x > vx + vw + 20 || y > vy + vh + 20) continue;
      const link = graph.links.get(r.linkIds[0]);
      ctx.fillStyle = link ? typeColor(link.type) : "#9aa0a6";
      ctx.strokeStyle = editor.drag?.reroute === r ? "#fff" : "#1b1d21";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(x, y, REROUTE_RADIUS - 2, 0, Math.PI * 2);
      ctx.fill();
      ctx.stroke();
    }
  }

  drawNodeBox(node) {
    const { ctx, editor } = this;
    const g = this.geom.get(node.id);
    const [x, y, w, h] = g.bounds;
    ctx.fillStyle = node.mode === MODE_BYPASSED ? "#6a3d7a" : node.missing ? "#5a2626" : (node.color || "#3a3f47");
    ctx.globalAlpha = node.mode === MODE_MUTED ? 0.4 : 1;
    ctx.fillRect(x, y, w, h);
    ctx.globalAlpha = 1;
    if (editor.selection.has(node.id) || editor.exec.running === String(node.id)) {
      ctx.strokeStyle = editor.exec.running === String(node.id) ? "#4ade80" : "#fff";
      ctx.lineWidth = 3 / editor.view.scale;
      ctx.strokeRect(x, y, w, h);
    }
  }

  drawNode(node) {
    const { ctx, editor } = this;
    const g = this.geom.get(node.id);
    const schema = g.schema;
    const [x, y, w] = g.bounds;
    const collapsed = node.flags?.collapsed;
    const h = collapsed ? 0 : g.h;
    const selected = editor.selection.has(node.id);
    const error = editor.errors.nodes.get(String(node.id));
    ctx.globalAlpha = node.mode === MODE_MUTED ? 0.45 : 1;
    // body + title
    ctx.fillStyle = node.bgcolor || (node.missing ? "#3b2424" : "#2b2f35");
    roundRect(ctx, x, y, w, TITLE_H + h, 8);
    ctx.fill();
    ctx.fillStyle = node.color || (node.missing ? "#7a2e2e" : "#3a3f47");
    roundRect(ctx, x, y, w, TITLE_H, collapsed ? 8 : [8, 8, 0, 0]);
    ctx.fill();
    if (node.mode === MODE_BYPASSED) {
      ctx.fillStyle = "rgba(190, 70, 230, 0.28)";
      roundRect(ctx, x, y, w, TITLE_H + h, 8);
      ctx.fill();
    }
    // title
    ctx.fillStyle = collapsed ? "#888" : "#ddd";
    ctx.beginPath();
    ctx.arc(x + 13, y + TITLE_H / 2, 5, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = "#eef";
    ctx.font = `600 14px ${FONT}`;
    ctx.textBaseline = "middle";
    const title = this.editor.titleOf(node);
    ctx.fillText(fit(ctx, title, w - 40), x + 26, y + TITLE_H / 2);
    const tag = titleTag(node, editor.exec.cached.has(String(node.id)));
    if (tag) {
      ctx.fillStyle = tag.color;
      ctx.font = `11px ${FONT}`;
      ctx.textAlign = "right";
      ctx.fillText(tag.text, x + w - 8, y + TITLE_H / 2);
      ctx.textAlign = "left";
    }
    // outline: running > error > selected
    const running = editor.exec.running === String(node.id);
    if (running || error || selected || node.missing) {
      ctx.lineWidth = running || error ? 3 : 2;
      ctx.strokeStyle = running ? "#4ade80" : error ? "#f85149" : node.missing ? "#f85149" : "#f0f0f0";
      if (node.missing && !running && !error && !selected) ctx.setLineDash([6, 4]);
      roundRect(ctx, x - 1, y - 1, w + 2, TITLE_H + h + 2, 9);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (collapsed) { ctx.globalAlpha = 1; return; }
    this.drawSlots(node, schema, w, error);
    if (node.missing) {
      ctx.fillStyle = "#ffb4b4";
      ctx.font = `12px ${FONT}`;
      const group = isGroupNodeType(node.type);
      ctx.fillText(group ? "ComfyUI group node: ungroup it" : "Missing node type: this server", x + 10, node.pos[1] + h - 34);
      ctx.fillText(group ? "in ComfyUI to run it. Data is kept." : "does not have it. Data is kept.", x + 10, node.pos[1] + h - 18);
    } else {
      this.drawWidgets(node, schema, error);
      if (node.images?.length || node.preview) this.drawImages(node, schema);
    }
    const progress = editor.exec.progress;
    if (running && progress && progress.max > 0) {
      ctx.fillStyle = "#4ade80";
      ctx.fillRect(x, node.pos[1] + h - 4, (w * progress.value) / progress.max, 4);
    }
    if (selected) {  // resize grip
      ctx.strokeStyle = "#888";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(x + w - 4, node.pos[1] + h - 12);
      ctx.lineTo(x + w - 12, node.pos[1] + h - 4);
      ctx.moveTo(x + w - 4, node.pos[1] + h - 7);
      ctx.lineTo(x + w - 7, node.pos[1] + h - 4);
      ctx.stroke();
    }
    ctx.globalAlpha = 1;
  }

  drawSlots(node, schema, w, error) {
    const { ctx } = this;
    ctx.font = `12px ${FONT}`;
    ctx.textBaseline = "middle";
    const bad = new Set(error?.inputs ?? []);
    node.inputs.forEach((slot, i) => {
      const [sx, sy] = inputPos(node, i);
      ctx.fillStyle = typeColor(slot.type);
      ctx.beginPath();
      ctx.arc(sx, sy, 5, 0, Math.PI * 2);
      if (slot.link != null) ctx.fill();
      else { ctx.lineWidth = 2; ctx.strokeStyle = ctx.fillStyle; ctx.stroke(); }
      ctx.fillStyle = bad.has(slot.name) ? "#ff7b72" : "#b8bec6";
      ctx.fillText(slot.label || slot.name, sx + 12, sy);
    });
    ctx.textAlign = "right";
    node.outputs.forEach((slot, i) => {
      const [sx, sy] = [node.pos[0] + w, node.pos[1] + 4 + SLOT_H * (i + 0.5)];
      ctx.fillStyle = typeColor(slot.type);
      ctx.beginPath();
      ctx.arc(sx, sy, 5, 0, Math.PI * 2);
      if (slot.links?.length) ctx.fill();
      else { ctx.lineWidth = 2; ctx.strokeStyle = ctx.fillStyle; ctx.stroke(); }
      ctx.fillStyle = "#b8bec6";
      ctx.fillText(slot.label || slot.name, sx - 12, sy);
    });
    ctx.textAlign = "left";
  }

  drawWidgets(node, schema, error) {
    const { ctx } = this;
    const bad = new Set(error?.inputs ?? []);
    for (const rect of widgetRects(node, schema).rects) {
      const { widget } = rect;
      const spec = widget.spec;
      const value = node.values[widget.name];
      const isBad = bad.has(widget.name);
      ctx.fillStyle = "#1f2226";
      roundRect(ctx, rect.x, rect.y, rect.w, rect.h, 6);
      ctx.fill();
      ctx.lineWidth = isBad ? 2 : 1;
      ctx.strokeStyle = isBad ? "#f85149" : "#3d434b";
      ctx.stroke();
      ctx.font = `12px ${FONT}`;
      ctx.textBaseline = "middle";
      const mid = rect.y + WIDGET_H / 2;
      if (widget.upload) {
        ctx.fillStyle = "#c9d1d9";
        ctx.textAlign = "center";
        ctx.fillText("choose file to upload…", rect.x + rect.w / 2, mid);
        ctx.textAlign = "left";
        continue;
      }
      if (isMultiline(widget)) {
        ctx.fillStyle = "#c9d1d9";
        const width = rect.w - 16;
        this.textBoxLines(String(value ?? ""), rect).shown
          .forEach((line, i) => ctx.fillText(fit(ctx, line, width), rect.x + 8, rect.y + 12 + i * TEXT_LINE_H));
        if (!value) { ctx.fillStyle = "#6e7681"; ctx.fillText(widget.name, rect.x + 8, rect.y + 12); }
        continue;
      }
      const shown = spec.type === "BOOLEAN" ? (value ? "true" : "false")
        : spec.type === "FLOAT" ? formatFloat(value, spec)
          : spec.type === "COMBO" && !spec.choices?.length && !value ? "(none available)" : String(value ?? "");
      const valueText = fit(ctx, shown, rect.w * 0.6);
      const labelRoom = rect.w - ctx.measureText(valueText).width - (spec.type === "BOOLEAN" ? 46 : 50);
      ctx.fillStyle = isBad ? "#ff7b72" : "#8b949e";
      ctx.fillText(fit(ctx, spec.label || widget.name, Math.max(16, labelRoom)), rect.x + (spec.type === "BOOLEAN" ? 8 : 20), mid);
      ctx.fillStyle = "#e6edf3";
      ctx.textAlign = "right";
      if (spec.type === "BOOLEAN") {
        ctx.fillText(valueText, rect.x + rect.w - 30, mid);
        ctx.fillStyle = value ? "#3fb950" : "#484f58";
        ctx.beginPath();
        ctx.arc(rect.x + rect.w - 14, mid, 6, 0, Math.PI * 2);
        ctx.fill();
      } else {
        ctx.fillText(valueText, rect.x + rect.w - 20, mid);
        if (spec.type !== "STRING") {  // arrows
          ctx.fillStyle = "#8b949e";
          ctx.beginPath();
          ctx.moveTo(rect.x + 6, mid); ctx.lineTo(rect.x + 12, mid - 5); ctx.lineTo(rect.x + 12, mid + 5);
          ctx.moveTo(rect.x + rect.w - 6, mid); ctx.lineTo(rect.x + rect.w - 12, mid - 5); ctx.lineTo(rect.x + rect.w - 12, mid + 5);
          ctx.fill();
        }
      }
      ctx.textAlign = "left";
      if (rect.control) {
        const c = rect.control;
        ctx.fillStyle = "#1f2226";
        roundRect(ctx, c.x, c.y, c.w, c.h, 6);
        ctx.fill();
        ctx.strokeStyle = "#3d434b";
        ctx.lineWidth = 1;
        ctx.stroke();
        ctx.fillStyle = "#8b949e";
        ctx.fillText(fit(ctx, "control after generate", c.w * 0.55), c.x + 20, c.y + WIDGET_H / 2);
        ctx.fillStyle = "#e6edf3";
        ctx.textAlign = "right";
        ctx.fillText(node.controls[widget.name], c.x + c.w - 20, c.y + WIDGET_H / 2);
        ctx.textAlign = "left";
      }
    }
  }

  /** What a multiline text box draws: {lines (wrapped, up to `limit`), shown, truncated}. */
  textBoxLines(text, rect, limit = textLinesFitting(rect.h) + 1) {
    const { ctx } = this;
    ctx.font = `12px ${FONT}`;
    const lines = wrapLines(text, rect.w - 16, (t) => ctx.measureText(t).width, limit);
    return { lines, ...visibleLines(lines, textLinesFitting(rect.h)) };
  }

  /** The caret offset in a multiline widget's text for a click at world (wx, wy). */
  caretAt(node, name, wx, wy) {
    const rect = widgetRects(node, this.editor.graph.schemaOf(node)).rects.find((r) => r.widget.name === name);
    if (!rect || !isMultiline(rect.widget)) return null;
    const { lines, shown } = this.textBoxLines(String(node.values[name] ?? ""), rect, Infinity);
    const line = Math.max(0, Math.min(shown.length - 1, Math.round((wy - rect.y - 12) / TEXT_LINE_H)));
    const column = columnAt(lines[line] ?? "", wx - rect.x - 8, (t) => this.ctx.measureText(t).width);
    return textOffset(lines, line, column);
  }

  /** The text box of a node's multiline widget as drawn: {total, shown, truncated, rect}
   * (rect in world units), or null when the node draws no such widget. */
  multilineState(node, name) {
    const rect = widgetRects(node, this.editor.graph.schemaOf(node)).rects.find((r) => r.widget.name === name);
    if (!rect || !isMultiline(rect.widget)) return null;
    const { lines, shown, truncated } = this.textBoxLines(String(node.values[name] ?? ""), rect, Infinity);
    return { total: lines.length, shown: shown.length, truncated, rect: { x: rect.x, y: rect.y, w: rect.w, h: rect.h } };
  }

  drawImages(node, schema) {
    const { ctx } = this;
    const r = imageRect(node, schema);
    if (r.h < 20) return;
    const img = node.preview ?? node.images?.[node.imageIndex ?? 0];
    if (!img || !img.complete || !img.naturalWidth) return;
    const k = Math.min(r.w / img.naturalWidth, r.h / img.naturalHeight);
    const iw = img.naturalWidth * k;
    const ih = img.naturalHeight * k;
    ctx.drawImage(img, r.x + (r.w - iw) / 2, r.y + (r.h - ih) / 2, iw, ih);
    if ((node.images?.length ?? 0) > 1) {
      ctx.fillStyle = "rgba(0,0,0,0.6)";
      ctx.fillRect(r.x, r.y, 54, 20);
      ctx.fillStyle = "#fff";
      ctx.font = `12px ${FONT}`;
      ctx.fillText(`${(node.imageIndex ?? 0) + 1} / ${node.images.length}`, r.x + 6, r.y + 10);
    }
  }

  /** The whole graph in a corner, with the part on screen outlined. */
  drawMinimap(W, H) {
    const { ctx, editor } = this;
    const nodes = [...editor.graph.nodes.values()];
    if (!nodes.length) return;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of nodes) {
      const [x, y, w, h] = this.geom.get(n.id)?.bounds ?? [n.pos[0], n.pos[1], 200, 100];
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
    }
    const view = this.visibleRect();
    x0 = Math.min(x0, view[0]); y0 = Math.min(y0, view[1]);
    x1 = Math.max(x1, view[0] + view[2]); y1 = Math.max(y1, view[1] + view[3]);
    const box = { w: 200, h: 140 };
    const k = Math.min(box.w / (x1 - x0), box.h / (y1 - y0));
    const left = W - box.w - 12;
    const top = H - box.h - 12;
    ctx.setTransform(this.dpr, 0, 0, this.dpr, 0, 0);
    ctx.fillStyle = this.style.minimap_bg;
    ctx.fillRect(left, top, box.w, box.h);
    ctx.fillStyle = "#5b6470";
    for (const n of nodes) {
      const [x, y, w, h] = this.geom.get(n.id)?.bounds ?? [n.pos[0], n.pos[1], 200, 100];
      ctx.fillRect(left + (x - x0) * k, top + (y - y0) * k, Math.max(2, w * k), Math.max(2, h * k));
    }
    ctx.strokeStyle = "#2f81f7";
    ctx.lineWidth = 1.5;
    ctx.strokeRect(left + (view[0] - x0) * k, top + (view[1] - y0) * k, view[2] * k, view[3] * k);
  }

  drawOverlays() {
    const { ctx, editor } = this;
    const d = editor.drag;
    if (d?.kind === "link") {
      ctx.strokeStyle = d.refused ? "#f85149" : typeColor(d.type);
      ctx.lineWidth = 3;
      ctx.setLineDash([8, 6]);
      ctx.beginPath();
      const [x1, y1] = d.from;
      const [x2, y2] = d.to;
      const k = Math.max(40, Math.abs(x2 - x1) * 0.5);
      ctx.moveTo(x1, y1);
      ctx.bezierCurveTo(x1 + k, y1, x2 - k, y2, x2, y2);
      ctx.stroke();
      ctx.setLineDash([]);
    }
    if (d?.kind === "box") {
      const [x1, y1] = d.start;
      const [x2, y2] = d.to;
      ctx.fillStyle = "rgba(88, 166, 255, 0.12)";
      ctx.strokeStyle = "#58a6ff";
      ctx.lineWidth = 1 / editor.view.scale;
      ctx.fillRect(Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1));
      ctx.strokeRect(Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1));
    }
  }
}

/** The word at the right of a title bar: what is special about the node. */
export function titleTag(node, cached) {
  if (node.mode === MODE_BYPASSED) return { text: "bypassed", color: "#d7a4ef" };
  if (node.mode === MODE_MUTED) return { text: "muted", color: "#c9d1d9" };
  if (cached) return { text: "cached", color: "#8b949e" };
  if (node.subgraph) return { text: "subgraph", color: "#79c0ff" };
  return null;
}

function roundRect(ctx, x, y, w, h, r) {
  ctx.beginPath();
  ctx.roundRect(x, y, w, h, r);
}

function fit(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let lo = 0;
  let hi = text.length;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (ctx.measureText(text.slice(0, mid) + "…").width <= width) lo = mid;
    else hi = mid - 1;
  }
  return text.slice(0, lo) + "…";
}

export function formatFloat(value, spec) {
  const step = spec.options?.round || spec.options?.step || 0.01;
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step) - 1e-9)));
  return Number(value ?? 0).toFixed(decimals);
}
