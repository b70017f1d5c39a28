// The editor: owns the graph, the view, selection and undo; turns pointer and
// keyboard input into graph edits; talks to the server to run the graph.
import { Graph, MODE_ALWAYS, MODE_BYPASSED, MODE_MUTED } from "../lib/graph.js";
import { hitTest, numberPart } from "../lib/hit.js";
import { TITLE_H, inputPos, nodeBounds, outputPos, widgetRects } from "../lib/layout.js";
import { UndoStack } from "../lib/undo.js";
import { REROUTE_RADIUS, rerouteAt } from "../lib/reroutes.js";
import { typesCompatible } from "../lib/types.js";
import { applyControl, clampNumber, cycleChoice, numberStep, stepNumber } from "../lib/widget_values.js";
import { WorkflowConversionError, workflowToApi } from "../lib/workflow_to_api.js";
import { BOUNDARY_NOTE, isBoundary } from "../lib/subgraph_edit.js";
import { CHECKPOINT_HELP } from "../lib/default_workflow.js";
import { evaluateArithmetic } from "../lib/arithmetic.js";
import { GRID } from "./settings.js";
import { Renderer } from "./renderer.js";
import { SubgraphScopes } from "./subgraph_scopes.js";
import { boundarySlotEntries, dropOnEmptySlot } from "./subgraph_actions.js";
import { closePopup, comboList, contextMenu, inlineEntry, nodeSearch, toast } from "./popups.js";
import { cloneNodes, openContextMenu } from "./menus.js";

const STORAGE_KEY = "loom.workflow";
const CLIPBOARD_KEY = "loom.clipboard";
const CONTROL_MODES = ["fixed", "increment", "decrement", "randomize"];

export class Editor extends EventTarget {
  constructor(canvas, api) {
    super();
    this.canvas = canvas;
    this.api = api;
    this.schemas = new Map();
    this.graph = new Graph((t) => this.schemas.get(t) ?? null);
    this.rootGraph = this.graph;  // the workflow; this.graph is what is shown (it or an open subgraph)
    this.scopes = new SubgraphScopes(this);
    this.view = { offset: [0, 0], scale: 1 };
    this.selection = new Set();
    this.selectedGroup = null;
    this.drag = null;
    this.exec = { running: null, progress: null, cached: new Set(), promptId: null };
    this.errors = { nodes: new Map(), execution: null };
    this.undo = new UndoStack();
    /** The settings the canvas obeys (settings.js keeps them current). */
    this.prefs = { snapToGrid: false, clampCue: true };
    this.savedState = null;
    this.batchCount = 1;
    this.mouse = [0, 0];
    this.spaceDown = false;
    // Set by the extension app: called as nodes appear and finish running.
    this.hooks = { created: () => {}, executed: () => {} };
    this.renderer = new Renderer(canvas, this);
    this.bindInput();
    new ResizeObserver(() => this.renderer.resize()).observe(canvas);
  }

  // ---------------------------------------------------------------- schemas, state

  setSchemas(schemaMap) {
    this.schemas = schemaMap;
    this.graph.touch();
    this.redraw();
  }

  /** After a Refresh: a list widget left empty (no file existed) takes the first file now
   *  listed, and the default graph's "no checkpoint" note goes once there is one. */
  fillEmptyChoices() {
    let changed = false;
    for (const node of [...this.graph.nodes.values()]) {
      if (node.type === "Note" && node.values.text === CHECKPOINT_HELP) {
        const loader = this.schemas.get("CheckpointLoaderSimple");
        if (loader?.inputs.find((i) => i.name === "ckpt_name")?.choices?.length) { this.graph.removeNode(node.id); changed = true; }
        continue;
      }
      for (const input of this.graph.schemaOf(node)?.inputs ?? []) {
        if (input.type === "COMBO" && node.values[input.name] === "" && input.choices?.length) {
          node.values[input.name] = input.choices[0];
          changed = true;
        }
      }
    }
    if (changed) { this.graph.touch(); this.commit(); }
  }

  get schemaList() { return [...this.schemas.values()]; }

  titleOf(node) {
    if (node.title) return node.title;
    const schema = this.graph.schemaOf(node);
    return schema ? schema.displayName : `${node.type} (missing)`;
  }

  redraw() { this.renderer.requestDraw(); }

  serialize() {
    const workflow = this.rootGraph.serialize();
    workflow.extra = { ...workflow.extra, ds: { scale: this.view.scale, offset: [...this.view.offset] } };
    return workflow;
  }

  /** Load a UI workflow, replacing the canvas (undoable when `undoable`). */
  loadWorkflow(data, { undoable = false, fit = false, resetHistory = true } = {}) {
    const graph = new Graph((t) => this.schemas.get(t) ?? null);
    graph.load(data);
    this.graph = graph;
    this.rootGraph = graph;
    const wasInside = this.scopes.depth > 0;
    this.scopes.reset();
    if (wasInside) this.emit("scope");
    for (const node of graph.nodes.values()) {
      this.refreshInputPreview(node);
      this.announceLoaded(node);
    }
    this.selection.clear();
    this.selectedGroup = null;
    this.errors = { nodes: new Map(), execution: null };
    this.exec.cached = new Set();
    const ds = data.extra?.ds;
    if (ds && Number.isFinite(ds.scale) && Array.isArray(ds.offset)) this.view = { scale: ds.scale, offset: [Number(ds.offset[0]) || 0, Number(ds.offset[1]) || 0] };
    if (fit || !ds) this.fitView();
    const missing = graph.missingTypes();
    if (missing.length) toast(`This workflow uses node types this server lacks: ${missing.join(", ")}. They are kept as placeholders.`, "warn", 8000);
    for (const warning of graph.warnings ?? []) console.warn(warning);
    if (graph.warnings?.length) toast(graph.warnings.length === 1 ? graph.warnings[0] : `${graph.warnings[0]} (and ${graph.warnings.length - 1} more)`, "warn", 8000);
    if (undoable) this.commit();
    else if (resetHistory) { this.undo.reset(this.rootGraph.serialize()); this.savedState = this.undo.current; }
    this.persist();
    this.emit("graph");
    this.redraw();
  }

  /** Record the current graph as one undoable edit. */
  commit() {
    this.scopes.sync();
    if (this.undo.commit(this.rootGraph.serialize())) {
      this.persist();
      this.emit("graph");
    }
    this.redraw();
  }

  get unsaved() { return this.savedState !== null && this.undo.current !== this.savedState; }

  markSaved() { this.savedState = this.undo.current; this.emit("graph"); }

  persist() {
    clearTimeout(this.persistTimer);
    this.persistTimer = setTimeout(() => {
      try { localStorage.setItem(STORAGE_KEY, JSON.stringify(this.serialize())); } catch { /* storage full: not fatal */ }
    }, 300);
  }

  restoreSaved() {
    try {
      const text = localStorage.getItem(STORAGE_KEY);
      return text ? JSON.parse(text) : null;
    } catch { return null; }
  }

  doUndo(redo = false) {
    const state = redo ? this.undo.redo() : this.undo.undo();
    if (!state) { toast(redo ? "Nothing to redo" : "Nothing to undo"); return; }
    const view = { ...this.view };
    const path = this.scopes.path();
    this.loadWorkflow(state, { resetHistory: false });
    this.view = view;
    this.scopes.reopen(path, view);  // an undo inside a subgraph stays inside it
    this.redraw();
  }

  // ---------------------------------------------------------------- subgraphs

  /** Show the inside of a subgraph instance (double-click it, or its menu). */
  openSubgraph(node) {
    closePopup();
    const refusal = this.scopes.enter(node);
    if (refusal) toast(`Cannot open: ${refusal}`, "error");
  }

  /** Back out to `depth` open subgraphs (0: the workflow itself). */
  closeSubgraph(depth = this.scopes.depth - 1) { this.scopes.exitTo(depth); }

  /** The id in the shown graph of the node an execution id ('5:3') names, or null. */
  localId(execId) { return this.scopes.localId(execId); }

  emit(name, detail) { this.dispatchEvent(new CustomEvent(name, { detail })); }

  // ---------------------------------------------------------------- view

  toWorld(clientX, clientY) {
    const r = this.canvas.getBoundingClientRect();
    return [(clientX - r.left) / this.view.scale - this.view.offset[0], (clientY - r.top) / this.view.scale - this.view.offset[1]];
  }

  toScreen(x, y) {
    const r = this.canvas.getBoundingClientRect();
    return [(x + this.view.offset[0]) * this.view.scale + r.left, (y + this.view.offset[1]) * this.view.scale + r.top];
  }

  zoomAt(clientX, clientY, factor) {
    const [wx, wy] = this.toWorld(clientX, clientY);
    const scale = Math.min(4, Math.max(0.05, this.view.scale * factor));
    const r = this.canvas.getBoundingClientRect();
    this.view.scale = scale;
    this.view.offset = [(clientX - r.left) / scale - wx, (clientY - r.top) / scale - wy];
    this.redraw();
  }

  fitView(ids = null) {
    const nodes = [...this.graph.nodes.values()].filter((n) => !ids || ids.has(n.id));
    if (!nodes.length) { this.view = { offset: [0, 0], scale: 1 }; this.redraw(); return; }
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of nodes) {
      const [x, y, w, h] = nodeBounds(n, this.graph.schemaOf(n));
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
    }
    const W = this.canvas.clientWidth || 800;
    const H = this.canvas.clientHeight || 600;
    const scale = Math.min(1.5, Math.max(0.05, Math.min(W / (x1 - x0 + 80), H / (y1 - y0 + 80))));
    this.view = { scale, offset: [W / scale / 2 - (x0 + x1) / 2, H / scale / 2 - (y0 + y1) / 2] };
    this.redraw();
  }

  // ---------------------------------------------------------------- edits

  /** Extensions' nodeCreated for a node read from a file: as in ComfyUI (created,
   *  then configured), what the file says about title and colours wins. */
  announceLoaded(node) {
    const saved = { title: node.title, color: node.color, bgcolor: node.bgcolor };
    this.hooks.created(node, { loaded: true });
    for (const [key, value] of Object.entries(saved)) if (value !== undefined) node[key] = value;
  }

  addNode(type, pos) {
    const node = this.graph.addNode(type, pos);
    this.refreshInputPreview(node);
    this.hooks.created(node, { loaded: false });
    this.selection = new Set([node.id]);
    this.commit();
    return node;
  }

  deleteSelection() {
    if (this.selectedGroup) {
      this.graph.groups = this.graph.groups.filter((g) => g !== this.selectedGroup);
      this.selectedGroup = null;
      this.graph.touch();
    }
    const kept = [...this.selection].filter((id) => this.scopes.isBoundary(id));
    if (kept.length) toast(`The subgraph's input and output nodes stay: ${BOUNDARY_NOTE}`, "warn", 6000);
    for (const id of this.selection) if (!kept.includes(id)) this.graph.removeNode(id);
    this.selection.clear();
    this.commit();
  }

  setMode(mode) {
    const nodes = [...this.selection].map((id) => this.graph.nodes.get(id)).filter((n) => n && !isBoundary(n));
    if (!nodes.length) return;
    const all = nodes.every((n) => n.mode === mode);
    for (const n of nodes) n.mode = all ? MODE_ALWAYS : mode;
    this.graph.touch();
    this.commit();
  }

  toggleCollapse(node) {
    node.flags = { ...node.flags, collapsed: !node.flags?.collapsed };
    this.graph.touch();
    this.commit();
  }

  /** Nodes with an image_upload combo (LoadImage) show the chosen input image. */
  refreshInputPreview(node) {
    const spec = this.graph.schemaOf(node)?.inputs.find((s) => s.options?.image_upload);
    if (!spec) return;
    const name = String(node.values[spec.name] ?? "");
    if (!name) { node.images = []; return; }
    if (node.images?.[0]?.dataset.input === name) return;
    const cut = name.lastIndexOf("/");
    const img = new Image();
    img.dataset.input = name;
    img.onload = () => { this.graph.touch(); this.redraw(); };
    img.src = this.api.viewUrl({ filename: name.slice(cut + 1), subfolder: cut === -1 ? "" : name.slice(0, cut), type: "input" });
    node.images = [img];
  }

  setValue(node, name, value) {
    node.values[name] = value;
    this.refreshInputPreview(node);
    this.errors.nodes.delete(String(node.id));
    this.graph.touch();
    this.commit();
  }

  copySelection() {
    const ids = new Set([...this.selection].filter((id) => !this.scopes.isBoundary(id)));
    if (!ids.size) return;
    const nodes = [...ids].map((id) => this.graph.serializeNode(this.graph.nodes.get(id)));
    const links = [...this.graph.links.values()].filter((l) => ids.has(l.target_id)).map((l) => ({ ...l, external: !ids.has(l.origin_id) }));
    const clip = { nodes, links };
    this.clipboard = clip;
    try { localStorage.setItem(CLIPBOARD_KEY, JSON.stringify(clip)); } catch { /* ignore */ }
    toast(`Copied ${nodes.length} node${nodes.length === 1 ? "" : "s"}`);
  }

  /** Paste at the mouse; with keepInputs, links from outside the copied set are kept. */
  paste(keepInputs = false) {
    let clip = this.clipboard;
    try { clip = JSON.parse(localStorage.getItem(CLIPBOARD_KEY)) ?? clip; } catch { /* ignore */ }
    if (!clip?.nodes?.length) { toast("The clipboard has no nodes"); return; }
    const minX = Math.min(...clip.nodes.map((n) => n.pos[0]));
    const minY = Math.min(...clip.nodes.map((n) => n.pos[1]));
    const idMap = new Map();
    const added = [];
    for (const raw of clip.nodes) {
      const id = ++this.graph.lastNodeId;
      idMap.set(raw.id, id);
      const copy = structuredClone(raw);
      copy.id = id;
      copy.pos = [raw.pos[0] - minX + this.mouse[0], raw.pos[1] - minY + this.mouse[1]];
      for (const i of copy.inputs ?? []) i.link = null;
      for (const o of copy.outputs ?? []) o.links = [];
      added.push(this.graph.loadNode(copy));
    }
    this.graph.resolvePrimitives();
    for (const l of clip.links) {
      const target = idMap.get(l.target_id);
      const origin = l.external ? (keepInputs && this.graph.nodes.has(l.origin_id) ? l.origin_id : null) : idMap.get(l.origin_id);
      if (origin == null || target == null) continue;
      const inputs = clip.nodes.find((n) => n.id === l.target_id)?.inputs ?? [];
      const inputName = (inputs.find((i) => i.link === l.id) ?? inputs[l.target_slot])?.name;
      try { this.graph.connect(origin, l.origin_slot, target, inputName); } catch { /* type changed since copy */ }
    }
    // Widget slots that stayed unlinked go back to being widgets.
    for (const n of added) n.inputs = n.inputs.filter((i) => !(i.widget && i.link == null));
    for (const n of added) this.announceLoaded(n);
    this.selection = new Set(added.map((n) => n.id));
    this.graph.touch();
    this.commit();
  }

  groupSelection() {
    const nodes = [...this.selection].map((id) => this.graph.nodes.get(id));
    if (!nodes.length) return;
    let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
    for (const n of nodes) {
      const [x, y, w, h] = nodeBounds(n, this.graph.schemaOf(n));
      x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
    }
    const group = { title: "Group", bounding: [x0 - 20, y0 - 60, x1 - x0 + 40, y1 - y0 + 80], color: "#3f789e", font_size: 24, flags: {}, rest: {} };
    this.graph.groups.push(group);
    this.selectedGroup = group;
    this.graph.touch();
    this.commit();
  }

  nodesInGroup(group) {
    const [gx, gy, gw, gh] = group.bounding;
    return [...this.graph.nodes.values()].filter((n) => {
      const [x, y, w, h] = nodeBounds(n, this.graph.schemaOf(n));
      return x >= gx && y >= gy && x + w <= gx + gw && y + h <= gy + gh;
    });
  }

  bringToFront(ids) {
    for (const id of ids) {
      const node = this.graph.nodes.get(id);
      if (!node) continue;
      this.graph.nodes.delete(id);
      this.graph.nodes.set(id, node);
    }
    this.graph.touch();
  }

  // ---------------------------------------------------------------- input

  bindInput() {
    const c = this.canvas;
    c.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    addEventListener("pointermove", (e) => this.onPointerMove(e));
    addEventListener("pointerup", (e) => this.onPointerUp(e));
    c.addEventListener("dblclick", (e) => this.onDoubleClick(e));
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      if (e.ctrlKey || !e.shiftKey) this.zoomAt(e.clientX, e.clientY, Math.exp(-e.deltaY * (e.ctrlKey ? 0.01 : 0.0015)));
      else { this.view.offset[0] -= e.deltaY / this.view.scale; this.redraw(); }
    }, { passive: false });
    c.addEventListener("contextmenu", (e) => { e.preventDefault(); this.onContextMenu(e); });
    addEventListener("keydown", (e) => this.onKeyDown(e));
    addEventListener("keyup", (e) => { if (e.code === "Space") this.spaceDown = false; });
  }

  hitAt(wx, wy) {
    const ids = this.renderer.nodesIn([wx - 30, wy - 30, 60, 60]);
    return hitTest(this.graph, ids, wx, wy);
  }

  onPointerDown(e) {
    closePopup();
    this.canvas.focus();
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    this.mouse = [wx, wy];
    if (e.button === 1 || (e.button === 0 && this.spaceDown)) {
      this.drag = { kind: "pan", last: [e.clientX, e.clientY] };
      return;
    }
    if (e.button !== 0) return;
    const hit = this.hitAt(wx, wy);
    const g = this.graph;
    if (!hit || hit.group) {  // links (and their reroutes) are drawn over groups, under nodes
      const reroute = rerouteAt(g.reroutes, wx, wy, Math.max(REROUTE_RADIUS, 6 / this.view.scale));
      if (reroute) {
        this.drag = { kind: "reroute", reroute, start: [wx, wy], origin: [...reroute.pos], moved: false };
        this.redraw();
        return;
      }
    }
    if (!hit) {
      if (e.ctrlKey || e.shiftKey || e.metaKey) this.drag = { kind: "box", start: [wx, wy], to: [wx, wy], add: e.shiftKey };
      else this.drag = { kind: "pan", last: [e.clientX, e.clientY], moved: false, clearOnClick: true };
      return;
    }
    const node = hit.node;
    switch (hit.kind) {
      case "output": {
        const from = outputPos(node, hit.index, g.schemaOf(node));
        this.drag = { kind: "link", origin: node.id, slot: hit.index, type: node.outputs[hit.index].type, from, to: [wx, wy] };
        return;
      }
      case "input": {
        const link = g.linkInto(node, hit.name);
        if (link) {  // pick the link up from its input and re-drag it
          const origin = g.nodes.get(link.origin_id);
          g.removeLink(link.id);
          this.drag = { kind: "link", origin: origin.id, slot: link.origin_slot, type: origin.outputs[link.origin_slot].type, from: outputPos(origin, link.origin_slot, g.schemaOf(origin)), to: [wx, wy], detached: true };
        } else {
          this.drag = { kind: "link-back", target: node.id, input: hit.name, type: node.inputs[hit.index].type, from: inputPos(node, hit.index), to: [wx, wy] };
        }
        this.redraw();
        return;
      }
      case "collapse": this.toggleCollapse(node); return;
      case "resize": {
        const [x, y, w, h] = nodeBounds(node, g.schemaOf(node));
        this.drag = { kind: "resize", node, start: [wx, wy], size: [w, h - TITLE_H] };
        void x; void y;
        return;
      }
      case "widget": this.drag = { kind: "widget", hit, start: [e.clientX, e.clientY], startValue: node.values[hit.widget.name], moved: false }; return;
      case "control": this.pickControl(node, hit, e); return;
      case "image": this.openImage(node, e); return;
      case "group-title":
      case "group": {
        if (hit.kind === "group") { this.drag = { kind: "box", start: [wx, wy], to: [wx, wy] }; return; }
        this.selectedGroup = hit.group;
        this.selection.clear();
        const inside = this.nodesInGroup(hit.group);
        this.drag = { kind: "move", start: [wx, wy], group: hit.group, groupStart: [...hit.group.bounding], origins: new Map(inside.map((n) => [n.id, [...n.pos]])) };
        this.redraw();
        return;
      }
      default: {  // title or body: select and move
        this.selectedGroup = null;
        if (e.shiftKey || e.ctrlKey || e.metaKey) {
          if (this.selection.has(node.id) && (e.ctrlKey || e.metaKey)) this.selection.delete(node.id);
          else this.selection.add(node.id);
        } else if (!this.selection.has(node.id)) this.selection = new Set([node.id]);
        // Alt+drag drags a clone and leaves the original in place, as in ComfyUI.
        if (e.altKey && cloneNodes(this, [...this.selection], [0, 0]).length) this.drag = { kind: "move", cloned: true };
        this.bringToFront(this.selection);
        this.drag = { kind: "move", cloned: Boolean(this.drag?.cloned), start: [wx, wy], origins: new Map([...this.selection].map((id) => [id, [...g.nodes.get(id).pos]])) };
        this.emit("selection");
        this.redraw();
      }
    }
  }

  onPointerMove(e) {
    const d = this.drag;
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    this.mouse = [wx, wy];
    if (!d) return;
    switch (d.kind) {
      case "pan": {
        const dx = e.clientX - d.last[0];
        const dy = e.clientY - d.last[1];
        if (Math.abs(dx) + Math.abs(dy) > 0) d.moved = true;
        this.view.offset[0] += dx / this.view.scale;
        this.view.offset[1] += dy / this.view.scale;
        d.last = [e.clientX, e.clientY];
        break;
      }
      case "move": {
        const dx = wx - d.start[0];
        const dy = wy - d.start[1];
        for (const [id, [x, y]] of d.origins) {
          const n = this.graph.nodes.get(id);
          // Shift snaps to the grid; with the snap setting on, Shift moves freely instead.
          if (n) n.pos = e.shiftKey !== this.prefs.snapToGrid ? [Math.round((x + dx) / GRID) * GRID, Math.round((y + dy) / GRID) * GRID] : [x + dx, y + dy];
        }
        if (d.group) d.group.bounding = [d.groupStart[0] + dx, d.groupStart[1] + dy, d.groupStart[2], d.groupStart[3]];
        d.moved ||= dx !== 0 || dy !== 0;  // a click fires pointermove too: only a real move is an edit
        this.graph.touch();
        break;
      }
      case "reroute":
        d.reroute.pos = [d.origin[0] + wx - d.start[0], d.origin[1] + wy - d.start[1]];
        d.moved = true;
        this.graph.touch();
        break;
      case "resize":
        d.node.size = [Math.max(120, d.size[0] + wx - d.start[0]), Math.max(40, d.size[1] + wy - d.start[1])];
        d.moved ||= wx !== d.start[0] || wy !== d.start[1];
        this.graph.touch();
        break;
      case "link":
      case "link-back":
        d.to = [wx, wy];
        d.refused = Boolean(this.linkTargetRefusal(d, wx, wy));
        break;
      case "box": d.to = [wx, wy]; break;
      case "widget": {
        const { hit } = d;
        const spec = hit.widget.spec;
        if ((spec.type === "INT" || spec.type === "FLOAT") && Math.abs(e.clientX - d.start[0]) > 3) {
          d.moved = true;
          const steps = Math.round((e.clientX - d.start[0]) / 6);
          hit.node.values[hit.widget.name] = clampNumber(spec, Number(d.startValue) + steps * numberStep(spec));
          this.graph.touch();
        }
        break;
      }
      default: return;
    }
    this.redraw();
  }

  /** Where a dragged link would land and why it would be refused, if it would. */
  linkTarget(d, wx, wy) {
    const hit = this.hitAt(wx, wy);
    if (!hit) return null;
    const g = this.graph;
    if (d.kind === "link") {
      if (hit.kind === "input") return { target: hit.node.id, input: hit.name };
      if (hit.kind === "widget" && !hit.widget.upload && hit.node.id !== d.origin) return { target: hit.node.id, input: hit.widget.name };
      if (["title", "body", "widget"].includes(hit.kind) && hit.node.id !== d.origin) {
        const slot = hit.node.inputs.find((i) => i.link == null && typesCompatible(d.type, i.type)) ?? hit.node.inputs.find((i) => typesCompatible(d.type, i.type));
        if (slot) return { target: hit.node.id, input: slot.name };
        return { refusal: `${this.titleOf(hit.node)} has no input that takes ${d.type}${isBoundary(hit.node) ? ` (${BOUNDARY_NOTE})` : ""}` };
      }
    } else if (hit.kind === "output") {
      return { origin: hit.node.id, slot: hit.index };
    } else if (["title", "body"].includes(hit.kind)) {
      const index = hit.node.outputs.findIndex((o) => typesCompatible(o.type, d.type));
      if (index >= 0) return { origin: hit.node.id, slot: index };
      return { refusal: `${this.titleOf(hit.node)} has no output of type ${d.type}${isBoundary(hit.node) ? ` (${BOUNDARY_NOTE})` : ""}` };
    }
    void g;
    return null;
  }

  linkTargetRefusal(d, wx, wy) {
    const t = this.linkTarget(d, wx, wy);
    if (!t) return null;
    if (t.refusal) return t.refusal;
    return d.kind === "link" ? this.graph.canConnect(d.origin, d.slot, t.target, t.input) : this.graph.canConnect(t.origin, t.slot, d.target, d.input);
  }

  onPointerUp(e) {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    switch (d.kind) {
      case "pan":
        if (d.clearOnClick && !d.moved) { this.selection.clear(); this.selectedGroup = null; this.emit("selection"); }
        break;
      case "move":
      case "resize":
        // Selecting (and raising) a node by clicking it is not an edit: no undo step, not "modified".
        if (d.moved || d.cloned) this.commit();
        break;
      case "reroute":
        if (d.moved) this.commit();
        break;
      case "box": {
        const [x1, y1] = d.start;
        const rect = [Math.min(x1, wx), Math.min(y1, wy), Math.abs(wx - x1), Math.abs(wy - y1)];
        if (!d.add) this.selection.clear();
        for (const id of this.renderer.nodesIn(rect)) {
          const [x, y, w, h] = nodeBounds(this.graph.nodes.get(id), this.graph.schemaOf(this.graph.nodes.get(id)));
          if (x < rect[0] + rect[2] && x + w > rect[0] && y < rect[1] + rect[3] && y + h > rect[1]) this.selection.add(id);
        }
        this.emit("selection");
        break;
      }
      case "link":
      case "link-back":
        this.finishLink(d, wx, wy, e);
        break;
      case "widget":
        if (!d.moved) this.clickWidget(d.hit, wx, e);
        else this.commit();
        break;
      default: break;
    }
    this.redraw();
  }

  finishLink(d, wx, wy, e) {
    const t = this.linkTarget(d, wx, wy);
    if (dropOnEmptySlot(this, d, t)) return;  // a new subgraph input/output
    if (!t) {
      if (d.detached) { this.commit(); return; }  // dropped a picked-up link on nothing: it is deleted
      // Dropped on empty canvas: offer the nodes that fit, and connect the chosen one.
      const filter = d.kind === "link" ? { outputType: d.type } : { inputType: d.type };
      nodeSearch({
        x: e.clientX, y: e.clientY, schemas: this.schemaList, filter,
        onPick: (schema) => {
          const node = this.graph.addNode(schema.classType, [wx, wy]);
          try {
            if (d.kind === "link") {
              const spec = schema.inputs.find((s) => s.section !== "hidden" && !s.isWidget && typesCompatible(d.type, s.type)) ?? schema.inputs.find((s) => typesCompatible(d.type, s.type));
              this.graph.connect(d.origin, d.slot, node.id, spec.name);
            } else {
              node.pos = [wx - 240, wy];
              this.graph.connect(node.id, schema.outputs.findIndex((o) => typesCompatible(o.type, d.type)), d.target, d.input);
            }
          } catch (err) { toast(`Link refused: ${err.message}`, "error"); }
          this.selection = new Set([node.id]);
          this.commit();
        },
      });
      return;
    }
    if (t.refusal) { toast(`Link refused: ${t.refusal}`, "error"); if (d.detached) this.commit(); return; }
    try {
      if (d.kind === "link") this.graph.connect(d.origin, d.slot, t.target, t.input);
      else this.graph.connect(t.origin, t.slot, d.target, d.input);
      this.errors.nodes.delete(String(d.kind === "link" ? t.target : d.target));
    } catch (err) {
      toast(`Link refused: ${err.message}`, "error");
    }
    this.commit();
  }

  async clickWidget(hit, wx, e) {
    const { node, widget, rect } = hit;
    const spec = widget.spec;
    const name = widget.name;
    const value = node.values[name];
    if (widget.upload) { this.chooseUpload(node, spec.target); return; }
    const [sx, sy] = this.toScreen(rect.x, rect.y);
    const sw = rect.w * this.view.scale;
    const sh = rect.h * this.view.scale;
    switch (spec.type) {
      case "INT":
      case "FLOAT": {
        const part = numberPart(rect, wx);
        if (part !== "value") { this.setValue(node, name, stepNumber(spec, value, part === "inc" ? 1 : -1)); return; }
        const text = await inlineEntry({ x: sx, y: sy, w: sw, h: sh, value: String(value), numeric: true });
        if (text === null || text.trim() === "") return;
        const parsed = evaluateArithmetic(text.trim());  // "2*3" works as in ComfyUI
        if (parsed === null) { toast(`'${text}' is not a number`, "error"); return; }
        const clamped = clampNumber(spec, parsed);
        if (this.prefs.clampCue && Math.abs(clamped - parsed) > 1e-9 && (parsed < (spec.options?.min ?? -Infinity) || parsed > (spec.options?.max ?? Infinity))) {
          toast(`${spec.label || name}: ${parsed} is outside ${spec.options?.min ?? "−∞"}…${spec.options?.max ?? "∞"}; set to ${clamped}`, "warn");
        }
        this.setValue(node, name, clamped);
        return;
      }
      case "COMBO": {
        const part = numberPart(rect, wx);
        if (part !== "value") { this.setValue(node, name, cycleChoice(spec, value, part === "inc" ? 1 : -1)); return; }
        comboList({ x: sx, y: sy + sh, choices: spec.choices ?? [], value, onPick: (v) => this.setValue(node, name, v) });
        return;
      }
      case "BOOLEAN": this.setValue(node, name, !value); return;
      case "STRING": {
        const multiline = Boolean(spec.options?.multiline);
        // A prompt opens with the caret where it was clicked, and Ctrl+Enter queues it, as in ComfyUI.
        const caret = multiline ? this.renderer.caretAt(node, name, wx, this.toWorld(e.clientX, e.clientY)[1]) : null;
        let queueAfter = false;
        const text = await inlineEntry({ x: sx, y: sy, w: sw, h: sh, value: String(value ?? ""), multiline, caret,
          onCtrlEnter: multiline ? () => { queueAfter = true; } : null });
        if (text !== null && text !== value) this.setValue(node, name, text);
        if (queueAfter) this.emit("queue-request", { front: false });
        return;
      }
      default: break;
    }
  }

  pickControl(node, hit, e) {
    comboList({
      x: e.clientX, y: e.clientY, choices: CONTROL_MODES, value: node.controls[hit.widget.name],
      onPick: (mode) => { node.controls[hit.widget.name] = mode; this.graph.touch(); this.commit(); },
    });
  }

  chooseUpload(node, inputName) {
    const input = document.createElement("input");
    input.type = "file";
    input.accept = "image/*";
    input.addEventListener("change", () => { if (input.files?.[0]) this.uploadInto(node, inputName, input.files[0]); });
    input.click();
  }

  /** Uploads an image file into input/ and makes it the node's chosen image. */
  async uploadInto(node, inputName, file) {
    try {
      const result = await this.api.uploadImage(file);
      const name = result.subfolder ? `${result.subfolder}/${result.name}` : result.name;
      const spec = this.graph.schemaOf(node)?.inputs.find((s) => s.name === inputName);
      if (spec?.choices && !spec.choices.includes(name)) spec.choices.push(name);
      this.setValue(node, inputName, name);
      toast(`Uploaded ${name}`);
    } catch (err) { toast(`Upload failed: ${err.message}`, "error"); }
  }

  imageInputOf(node) {
    return node ? this.graph.schemaOf(node)?.inputs.find((s) => s.options?.image_upload) ?? null : null;
  }

  /** An image dropped or pasted at a screen point: into the Load Image node there (or the
   *  selected one, for a paste), else into a new Load Image node, as ComfyUI does. */
  async placeImage(file, clientX, clientY, { preferSelected = false } = {}) {
    const [wx, wy] = clientX == null ? this.mouse : this.toWorld(clientX, clientY);
    let node = this.hitAt(wx, wy)?.node ?? null;
    if (!this.imageInputOf(node) && preferSelected && this.selection.size === 1) node = this.graph.nodes.get([...this.selection][0]);
    if (!this.imageInputOf(node)) {
      if (!this.schemas.get("LoadImage")) { toast("This server has no Load Image node", "error"); return null; }
      node = this.addNode("LoadImage", [wx, wy]);
    }
    await this.uploadInto(node, this.imageInputOf(node).name, file);
    return node;
  }

  openImage(node, e) {
    const images = node.images ?? [];
    if (!images.length) return;
    if (e.shiftKey && images.length > 1) {  // browse the batch
      node.imageIndex = ((node.imageIndex ?? 0) + 1) % images.length;
      this.redraw();
      return;
    }
    this.emit("lightbox", { images, index: node.imageIndex ?? 0 });
  }

  onDoubleClick(e) {
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    const hit = this.hitAt(wx, wy);
    if (!hit || hit.kind === "group") {
      nodeSearch({ x: e.clientX, y: e.clientY, schemas: this.schemaList, onPick: (schema) => this.addNode(schema.classType, [wx, wy]) });
      return;
    }
    if (hit.node?.subgraph && hit.kind === "body") { this.openSubgraph(hit.node); return; }
    if (hit.kind === "title" && !isBoundary(hit.node)) this.rename(hit.node);
    if (hit.kind === "group-title") this.renameGroup(hit.group);
  }

  async rename(node) {
    const [sx, sy] = this.toScreen(node.pos[0], node.pos[1] - TITLE_H);
    const text = await inlineEntry({ x: sx, y: sy, w: 220, h: 28, value: this.titleOf(node) });
    if (text === null) return;
    node.title = text.trim() || undefined;
    this.graph.touch();
    this.commit();
  }

  async renameGroup(group) {
    const [sx, sy] = this.toScreen(group.bounding[0], group.bounding[1]);
    const text = await inlineEntry({ x: sx, y: sy, w: 220, h: 28, value: group.title });
    if (text === null) return;
    group.title = text;
    this.graph.touch();
    this.commit();
  }

  onContextMenu(e) {
    const [wx, wy] = this.toWorld(e.clientX, e.clientY);
    const hit = this.hitAt(wx, wy);
    const node = hit?.node;
    if (node && isBoundary(node)) {
      const slotEntries = boundarySlotEntries(this, hit);
      contextMenu({ x: e.clientX, y: e.clientY, entries: [
        ...slotEntries,
        ...(slotEntries.length ? [null] : []),
        { label: "Back to the parent graph (Esc)", action: () => this.closeSubgraph() },
        ...(slotEntries.length ? [] : [{ label: "Add, rename or remove inputs/outputs…", action: () => toast(`To change them: ${BOUNDARY_NOTE}`, "info", 6000) }]),
      ] });
      return;
    }
    openContextMenu(this, e, wx, wy, hit);
  }

  onKeyDown(e) {
    const tag = document.activeElement?.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    const mod = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    const handled = () => { e.preventDefault(); e.stopPropagation(); };
    if (e.code === "Space") { this.spaceDown = true; return; }
    if (mod && key === "enter") { handled(); this.emit("queue-request", { front: e.shiftKey }); return; }
    if (mod && key === "z") { handled(); this.doUndo(e.shiftKey); return; }
    if (mod && key === "y") { handled(); this.doUndo(true); return; }
    if (mod && key === "c") { handled(); this.copySelection(); return; }
    if (mod && key === "v") {
      // Not prevented: the browser's paste event must still come, and when it carries an
      // image (main.js) it cancels this node paste, which runs after it otherwise.
      e.stopPropagation();
      clearTimeout(this.pendingPaste);
      this.pendingPaste = setTimeout(() => { this.pendingPaste = null; this.paste(e.shiftKey); }, 0);
      return;
    }
    if (mod && key === "b") { handled(); this.setMode(MODE_BYPASSED); return; }
    if (mod && key === "m") { handled(); this.setMode(MODE_MUTED); return; }
    if (mod && key === "g") { handled(); this.groupSelection(); return; }
    if (mod && key === "a") { handled(); this.selection = new Set(this.graph.nodes.keys()); this.redraw(); return; }
    if (mod && key === "s") { handled(); this.emit(e.shiftKey ? "save-as-request" : "save-request"); return; }
    if (mod && key === "o") { handled(); this.emit("open-request"); return; }
    if (!mod && (key === "delete" || key === "backspace")) { handled(); this.deleteSelection(); return; }
    if (!mod && key === ".") { handled(); this.fitView(this.selection.size ? this.selection : null); return; }
    if (key === "escape") {
      const popup = document.querySelector(".popup");
      closePopup();
      this.selection.clear();
      if (!popup && this.scopes.depth) { handled(); this.closeSubgraph(); }
      this.redraw();
    }
  }

  // ---------------------------------------------------------------- running

  /** The API prompt for the current graph; throws WorkflowConversionError. */
  toApi() {
    return workflowToApi(this.serialize(), (t) => this.schemas.get(t) ?? null);
  }

  /** Apply each seed's control_after_generate once (after a queue). */
  applyControls() {
    let changed = false;
    const graph = this.rootGraph;  // the workflow's own seeds, wherever the view is
    for (const node of graph.nodes.values()) {
      if (node.mode !== MODE_ALWAYS) continue;
      const schema = graph.schemaOf(node);
      for (const [name, mode] of Object.entries(node.controls)) {
        if (mode === "fixed") continue;
        const spec = node.primitiveSpec ?? schema?.inputs.find((s) => s.name === name);
        if (!spec || node.inputs.some((i) => i.widget && i.name === name && i.link != null)) continue;
        node.values[name] = spec.type === "COMBO" ? cycleChoice(spec, node.values[name], mode === "decrement" ? -1 : 1) : applyControl(spec, node.values[name], mode);
        changed = true;
      }
    }
    if (changed) { graph.touch(); this.graph.touch(); this.commit(); }
  }

  /** Show ComfyUI-shaped validation errors on the nodes and widgets they name. */
  showValidationErrors(body) {
    this.errors.nodes = new Map();
    for (const [id, info] of Object.entries(body?.node_errors ?? {})) {
      const outer = this.localId(id) ?? String(id);
      const errors = info.errors ?? [];
      this.errors.nodes.set(outer, {
        messages: errors.map((err) => `${err.message}${err.details ? `: ${err.details}` : ""}`),
        inputs: errors.map((err) => err.extra_info?.input_name).filter(Boolean),
        classType: info.class_type,
      });
    }
    this.graph.touch();
    this.redraw();
    this.emit("errors");
  }

  showConversionError(err) {
    if (err instanceof WorkflowConversionError && err.nodeId) {
      this.errors.nodes = new Map([[this.localId(err.nodeId) ?? String(err.nodeId), { messages: [err.message], inputs: [] }]]);
      this.emit("errors");
      this.redraw();
    }
  }

  centerOn(id) {
    const node = this.graph.nodes.get(isNaN(Number(id)) ? id : Number(id)) ?? this.graph.nodes.get(id);
    if (!node) return;
    this.selection = new Set([node.id]);
    const [x, y, w, h] = nodeBounds(node, this.graph.schemaOf(node));
    const W = this.canvas.clientWidth;
    const H = this.canvas.clientHeight;
    this.view.offset = [W / this.view.scale / 2 - (x + w / 2), H / this.view.scale / 2 - (y + h / 2)];
    this.redraw();
  }

  /** Client (screen) coordinates of a node part: "title", "body", "output"/"input" (name or index), "widget"/"control" (name). */
  locate(id, kind, key) {
    const node = this.nodeById(id);
    if (!node) return null;
    const schema = this.graph.schemaOf(node);
    let point;
    if (kind === "title") point = [node.pos[0] + 60, node.pos[1] - TITLE_H / 2];
    else if (kind === "body") point = [nodeBounds(node, schema)[0] + nodeBounds(node, schema)[2] / 2, node.pos[1] + 4 + 11];  // mid first slot row
    else if (kind === "output") {
      const i = typeof key === "number" ? key : node.outputs.findIndex((o) => o.name === key);
      point = outputPos(node, i, schema);
    } else if (kind === "input") point = inputPos(node, node.inputs.findIndex((i) => i.name === key));
    else {
      const rect = widgetRects(node, schema).rects.find((r) => r.widget.name === key);
      if (!rect) return null;
      const r = kind === "control" ? rect.control : rect;
      point = [r.x + r.w / 2, r.y + r.h / 2];
    }
    return this.toScreen(point[0], point[1]);
  }

  nodeById(id) {
    return this.graph.nodes.get(Number(id)) ?? this.graph.nodes.get(String(id)) ?? null;
  }
}
