// Changing a subgraph's own inputs and outputs, in ComfyUI's file layout:
// the definition's `inputs`/`outputs` entries ({id (a uuid), name, type,
// linkIds, label when renamed}), its inner links from the inputs node (-10)
// and to the outputs node (-20), and the matching slot on every instance of
// it, in the workflow and inside other definitions. Renaming sets `label`
// (the name stays, as in ComfyUI, so links and saved values keep matching).
// Each function takes a UI-format workflow and returns the changed copy.
// Pure (no DOM).
import { Graph } from "./graph.js";
import { INPUTS_NODE_ID, OUTPUTS_NODE_ID, openDefinition, writeDefinition } from "./subgraph_edit.js";
import { proxyWidgetEntries } from "./subgraphs.js";

/** A random (version 4) uuid, ComfyUI's id for definitions and their slots. */
export function newUuid() {
  if (globalThis.crypto?.randomUUID) return globalThis.crypto.randomUUID();
  const hex = [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16));
  hex[12] = "4";
  hex[16] = "89ab"[Math.floor(Math.random() * 4)];
  const h = hex.join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** `name`, or `name_1`, `name_2`... : the first not in `taken` (ComfyUI's rule). */
export function uniqueName(name, taken) {
  const base = String(name || "value");
  let candidate = base;
  for (let i = 1; taken.includes(candidate); i++) candidate = `${base}_${i}`;
  return candidate;
}

/** The workflow as a root Graph, and the definition `defId` in it (its own copy). */
export function loadRoot(workflow, lookup, defId) {
  const root = Graph.fromJSON(workflow, lookup);
  const definition = defId == null ? null : root.subgraphs.get(String(defId));
  if (defId != null && !definition) throw new Error(`this workflow has no subgraph '${defId}'`);
  return { root, definition };
}

/** The inside of `definition` opened with the root's definitions and ids. */
export function openInside(root, definition) {
  return openDefinition(definition, {
    subgraphs: root.subgraphs, schemaLookup: root.innerLookup,
    ids: { lastNodeId: root.lastNodeId, lastLinkId: root.lastLinkId },
  });
}

/** Write an opened inside back and keep the root's id counters above its ids. */
export function closeInside(root, inside) {
  writeDefinition(inside);
  root.lastNodeId = Math.max(root.lastNodeId, inside.lastNodeId);
  root.lastLinkId = Math.max(root.lastLinkId, inside.lastLinkId);
}

/**
 * Call `change(graph, node)` on every instance of `defId`: in the root graph
 * and inside every other definition; then each holder takes the definition's
 * new shape (refreshInstances) and inner holders are written back.
 */
export function forEachInstance(root, defId, change) {
  const id = String(defId);
  const holders = [root];
  for (const [otherId, other] of root.subgraphs) {
    if (otherId !== id && (other.nodes ?? []).some((n) => n && String(n.type) === id)) holders.push(openInside(root, other));
  }
  for (const graph of holders) {
    for (const node of [...graph.nodes.values()]) if (node.subgraph && String(node.type) === id) change(graph, node);
    graph.refreshInstances();
    if (graph !== root) closeInside(root, graph);
  }
}

const slotsOf = (definition, kind) => (definition[kind === "input" ? "inputs" : "outputs"] ??= []);

function finish(root) {
  root.refreshInstances();
  return root.serialize();
}

/**
 * Add an input to subgraph `defId` named after `name` (made unique) with `type`;
 * `connectTo` {nodeId, input} links it to an inner node's input or widget.
 * Returns {workflow, index, name}.
 */
export function addSubgraphInput(workflow, lookup, defId, { name, type, connectTo = null }) {
  const { root, definition } = loadRoot(workflow, lookup, defId);
  const inputs = slotsOf(definition, "input");
  const unique = uniqueName(name, inputs.map((s) => s.name));
  inputs.push({ id: newUuid(), name: unique, type: String(type), linkIds: [] });
  const index = inputs.length - 1;
  if (connectTo) {
    const inside = openInside(root, definition);
    inside.connect(INPUTS_NODE_ID, index, connectTo.nodeId, connectTo.input);
    closeInside(root, inside);
  }
  forEachInstance(root, defId, () => {});  // refreshInstances gives each instance the new slot or widget
  return { workflow: finish(root), index, name: unique };
}

/**
 * Add an output to subgraph `defId`; `connectFrom` {nodeId, slot} links an
 * inner node's output to it. Returns {workflow, index, name}.
 */
export function addSubgraphOutput(workflow, lookup, defId, { name, type, connectFrom = null }) {
  const { root, definition } = loadRoot(workflow, lookup, defId);
  const outputs = slotsOf(definition, "output");
  const unique = uniqueName(name, outputs.map((s) => s.name));
  outputs.push({ id: newUuid(), name: unique, type: String(type), linkIds: [] });
  const index = outputs.length - 1;
  if (connectFrom) {
    const inside = openInside(root, definition);
    inside.connect(connectFrom.nodeId, connectFrom.slot, OUTPUTS_NODE_ID, unique);
    closeInside(root, inside);
  }
  forEachInstance(root, defId, (graph, node) => {
    while (node.outputs.length < outputs.length) {
      const slot = outputs[node.outputs.length];
      node.outputs.push({ name: slot.name, type: slot.type, links: [] });
    }
  });
  return { workflow: finish(root), index, name: unique };
}

/** Show input or output `index` of `defId` as `label` (an empty label shows its name again). */
export function renameSubgraphSlot(workflow, lookup, defId, kind, index, label) {
  const { root, definition } = loadRoot(workflow, lookup, defId);
  const entry = slotsOf(definition, kind)[index];
  if (!entry) throw new Error(`subgraph '${definition.name ?? defId}' has no ${kind} #${index}`);
  const text = String(label ?? "").trim();
  const relabel = (slot) => {
    if (!slot) return;
    if (text && text !== entry.name) slot.label = text;
    else delete slot.label;
  };
  relabel(entry);
  forEachInstance(root, defId, (graph, node) => {
    if (kind === "output") { relabel(node.outputs[index]); return; }
    relabel(node.inputs.find((s) => s.name === entry.name));
    relabel(node.hiddenSlots?.get(entry.name));
  });
  return finish(root);
}

/**
 * Remove input or output `index` of `defId`: its inner links go, later slots
 * move up one, and on every instance the slot and the links to it go too.
 */
export function removeSubgraphSlot(workflow, lookup, defId, kind, index) {
  const { root, definition } = loadRoot(workflow, lookup, defId);
  const slots = slotsOf(definition, kind);
  const entry = slots[index];
  if (!entry) throw new Error(`subgraph '${definition.name ?? defId}' has no ${kind} #${index}`);
  const inside = openInside(root, definition);
  const boundary = inside.nodes.get(kind === "input" ? INPUTS_NODE_ID : OUTPUTS_NODE_ID);
  const inner = kind === "input" ? [...(boundary.outputs[index]?.links ?? [])] : [boundary.inputs[index]?.link];
  for (const id of inner) if (id != null) inside.removeLink(id);
  closeInside(root, inside);
  for (const link of definition.links ?? []) {
    if (kind === "input" && Number(link.origin_id) === INPUTS_NODE_ID && link.origin_slot > index) link.origin_slot -= 1;
    if (kind === "output" && Number(link.target_id) === OUTPUTS_NODE_ID && link.target_slot > index) link.target_slot -= 1;
  }
  slots.splice(index, 1);
  forEachInstance(root, defId, (graph, node) => (kind === "input" ? dropInput(graph, node, entry.name) : dropOutput(graph, node, index)));
  return finish(root);
}

function dropInput(graph, node, name) {
  const slot = node.inputs.find((s) => s.name === name);
  if (slot?.link != null) graph.removeLink(slot.link, { keepWidgetSlot: true });
  const at = node.inputs.findIndex((s) => s.name === name);
  if (at !== -1) graph.removeInputSlot(node, at);
  node.hiddenSlots?.delete(name);
  delete node.values[name];
  const entries = proxyWidgetEntries(node.properties);
  if (entries.some(([id, w]) => id === "-1" && w === name)) {
    node.properties = { ...node.properties, proxyWidgets: entries.filter(([id, w]) => !(id === "-1" && w === name)) };
  }
}

function dropOutput(graph, node, index) {
  for (const id of [...(node.outputs[index]?.links ?? [])]) graph.removeLink(id);
  node.outputs.splice(index, 1);
  node.outputs.forEach((out, k) => {
    for (const id of out.links ?? []) { const l = graph.links.get(id); if (l) l.origin_slot = k; }
  });
}
