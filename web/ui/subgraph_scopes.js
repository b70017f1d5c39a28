// Which graph the editor shows: the workflow (the root) or the inside of a
// subgraph instance, opened from the root or from another subgraph. Each
// open subgraph is a scope on a stack; an edit inside is written into the
// shared definition (sync) before the workflow is recorded for undo, saved
// or queued, so the root's serialisation is always the whole truth.
import { isBoundary, openDefinition, setInnerWidget, writeDefinition } from "../lib/subgraph_edit.js";
import { proxyWidgetSpecs } from "../lib/subgraphs.js";

export class SubgraphScopes {
  constructor(editor) {
    this.editor = editor;
    this.stack = [];  // [{graph, definition, instanceId, title, parentView}]
  }

  get depth() { return this.stack.length; }
  get root() { return this.editor.rootGraph; }

  reset() { this.stack = []; }

  /** Breadcrumb entries, root first: [{title, depth}]. */
  trail() {
    return [{ title: "Root", depth: 0 }, ...this.stack.map((s, i) => ({ title: s.title, depth: i + 1 }))];
  }

  /** Open a subgraph instance of the shown graph; returns why not, or null. */
  enter(node, { fit = true } = {}) {
    const editor = this.editor;
    const definition = editor.graph.subgraphs.get(String(node?.type));
    if (!node?.subgraph || !definition) return "that node is not a subgraph";
    if (this.stack.some((s) => s.definition === definition)) return `subgraph '${definition.name ?? definition.id}' contains itself`;
    const root = this.root;
    const graph = openDefinition(definition, {
      subgraphs: root.subgraphs, schemaLookup: root.innerLookup,
      ids: { lastNodeId: root.lastNodeId, lastLinkId: root.lastLinkId },
    });
    this.stack.push({ graph, definition, instanceId: node.id, title: String(definition.name || editor.titleOf(node)), parentView: { scale: editor.view.scale, offset: [...editor.view.offset] } });
    editor.graph = graph;
    for (const inner of graph.nodes.values()) editor.refreshInputPreview(inner);
    editor.selection = new Set();
    editor.selectedGroup = null;
    if (fit) editor.fitView();
    editor.emit("scope");
    editor.redraw();
    return null;
  }

  /** Go back out to `depth` (0 = the root). */
  exitTo(depth) {
    const editor = this.editor;
    if (depth < 0 || depth >= this.stack.length) return;
    const left = this.stack[depth];
    this.stack = this.stack.slice(0, depth);
    editor.graph = depth ? this.stack[depth - 1].graph : this.root;
    editor.view = left.parentView;
    editor.selection = new Set(editor.graph.nodes.has(left.instanceId) ? [left.instanceId] : []);
    editor.selectedGroup = null;
    editor.graph.touch();
    editor.emit("scope");
    editor.redraw();
  }

  /** The instance ids leading to the shown graph, to open it again after an undo. */
  path() { return this.stack.map((s) => s.instanceId); }

  reopen(path, view) {
    for (const id of path) {
      const node = this.editor.graph.nodes.get(id);
      if (!node?.subgraph || this.enter(node, { fit: false })) break;
    }
    if (this.stack.length && view) this.editor.view = view;
  }

  /**
   * Write every open scope into its definition (innermost first) and let each
   * parent's instances take the new definition; proxy widgets edited on an
   * instance of the shown graph go into the inner node they stand for.
   */
  sync() {
    const editor = this.editor;
    const root = this.root;
    if (pushProxyValues(editor.graph)) editor.graph.refreshInstances();
    for (let k = this.stack.length - 1; k >= 0; k--) {
      const { graph } = this.stack[k];
      writeDefinition(graph);
      root.lastNodeId = Math.max(root.lastNodeId, graph.lastNodeId);
      root.lastLinkId = Math.max(root.lastLinkId, graph.lastLinkId);
      (k ? this.stack[k - 1].graph : root).refreshInstances();
    }
  }

  /** The id, in the shown graph, of the node an execution id ('5:3:1') names, or null. */
  localId(execId) {
    const parts = String(execId).split(":");
    const path = this.path().map(String);
    if (parts.length <= path.length || path.some((p, i) => parts[i] !== p)) return null;
    return parts[path.length];
  }

  isBoundary(id) { return isBoundary(this.editor.graph.nodes.get(id)); }
}

/** Proxy widgets whose value on an instance differs from the inner node's: written inside. Returns whether any was. */
function pushProxyValues(graph) {
  let pushed = false;
  for (const node of graph.nodes.values()) {
    if (!node.subgraph || !node.ownSchema) continue;
    const definition = graph.subgraphs.get(String(node.type));
    for (const { spec, value } of proxyWidgetSpecs(node.properties, definition, graph.innerLookup)) {
      const shown = node.values[spec.name];
      if (shown === undefined || shown === value) continue;
      setInnerWidget(definition, spec.proxy.nodeId, spec.proxy.widget, shown, { subgraphs: graph.subgraphs, schemaLookup: graph.innerLookup });
      pushed = true;
    }
  }
  return pushed;
}
