// The editor: owns the graph, the view, selection and undo, and the edits on them;
// talks to the server to run the graph. Pointer and keyboard input: input.js.
import { Graph, MODE_ALWAYS } from "../lib/graph.js";
import { TITLE_H, inputPos, nodeBounds, outputPos, widgetRects } from "../lib/layout.js";
import { UndoStack } from "../lib/undo.js";
import { applyControl } from "../lib/widget_values.js";
import { WorkflowConversionError, workflowToApi } from "../lib/workflow_to_api.js";
import { BOUNDARY_NOTE, isBoundary } from "../lib/subgraph_edit.js";
import { CHECKPOINT_HELP } from "../lib/default_workflow.js";
import { Renderer } from "./renderer.js";
import { SubgraphScopes } from "./subgraph_scopes.js";
import { inputHandling } from "./input.js";
import { closePopup, inlineEntry, toast } from "./popups.js";

const STORAGE_KEY = "loom.workflow";
const CLIPBOARD_KEY = "loom.clipboard";

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

  // ---------------------------------------------------------------- input (input.js)

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

Object.assign(Editor.prototype, inputHandling);
