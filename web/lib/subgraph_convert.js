// "Convert to Subgraph" and "Unpack Subgraph", as ComfyUI does them, on a
// live Graph (the workflow, or the opened inside of a subgraph) whose root
// Graph keeps the definitions.
//
// Converting moves the selected nodes (their ids kept, so the prompt only
// gains the 'instance:' prefix) into a new definition named "New Subgraph"
// with a uuid id. Links entering the selection become the subgraph's inputs,
// one per outer output they come from (named after the first inner input
// they feed); links leaving it become its outputs, one per inner output
// (named after it). An instance takes the selection's place, wired as before.
// Unpacking is the inverse: the inner nodes come back with fresh ids, wired
// as before, and an instance's promoted widget values go into the widgets
// they stood for. Pure (no DOM).
import { INPUTS_NODE_ID, OUTPUTS_NODE_ID, isBoundary, openDefinition } from "./subgraph_edit.js";
import { newUuid, uniqueName } from "./subgraph_io.js";
import { nodeBounds, TITLE_H } from "./layout.js";

const BOUNDARY_GAP = 200;

function boundsOf(graph, nodes) {
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const n of nodes) {
    const [x, y, w, h] = nodeBounds(n, graph.schemaOf(n));
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x + w); y1 = Math.max(y1, y + h);
  }
  return [x0, y0, x1 - x0, y1 - y0];
}

const inputName = (graph, link) => graph.nodes.get(link.target_id)?.inputs[link.target_slot]?.name;

/** Add `definition` to the workflow `root` keeps (its top-level definitions list). */
function register(root, definition) {
  root.rest.definitions ??= {};
  (root.rest.definitions.subgraphs ??= []).push(definition);
  root.subgraphs.set(String(definition.id), definition);
}

/**
 * Move the nodes `ids` of `graph` into a new subgraph and put an instance in
 * their place. Returns {definition, instance}; throws, naming why, when the
 * selection has no node that can move.
 */
export function convertToSubgraph(graph, ids, root = graph) {
  const chosen = new Set([...ids].filter((id) => graph.nodes.has(id) && !isBoundary(graph.nodes.get(id))));
  if (!chosen.size) throw new Error("select the nodes to put into a subgraph (a subgraph's input and output nodes stay where they are)");
  const nodes = [...graph.nodes.values()].filter((n) => chosen.has(n.id));
  const links = [...graph.links.values()];
  const internal = links.filter((l) => chosen.has(l.origin_id) && chosen.has(l.target_id));
  // Entering links in the order of the nodes and their input slots, as ComfyUI numbers them.
  const entering = nodes.flatMap((n) => n.inputs.map((slot) => graph.links.get(slot.link)))
    .filter((l) => l && !chosen.has(l.origin_id));
  const leaving = nodes.flatMap((n) => n.outputs.flatMap((out) => (out.links ?? []).map((id) => graph.links.get(id))))
    .filter((l) => l && !chosen.has(l.target_id));

  const innerLinks = internal.map((l) => ({ id: l.id, origin_id: l.origin_id, origin_slot: l.origin_slot, target_id: l.target_id, target_slot: l.target_slot, type: l.type }));
  const inputs = [];
  const inputGroups = new Map();  // "origin:slot" → input index
  for (const l of entering) {
    const key = `${l.origin_id}:${l.origin_slot}`;
    if (!inputGroups.has(key)) {
      const slot = graph.nodes.get(l.target_id).inputs[l.target_slot];
      inputGroups.set(key, inputs.length);
      inputs.push({ id: newUuid(), name: uniqueName(slot.name, inputs.map((s) => s.name)), type: String(slot.type), linkIds: [], ...(slot.label ? { label: slot.label } : {}) });
    }
    const k = inputGroups.get(key);
    inputs[k].linkIds.push(l.id);
    innerLinks.push({ id: l.id, origin_id: INPUTS_NODE_ID, origin_slot: k, target_id: l.target_id, target_slot: l.target_slot, type: l.type });
  }
  const outputs = [];
  const outputGroups = new Map();
  for (const l of leaving) {
    const key = `${l.origin_id}:${l.origin_slot}`;
    if (outputGroups.has(key)) continue;
    const out = graph.nodes.get(l.origin_id).outputs[l.origin_slot];
    outputGroups.set(key, outputs.length);
    outputs.push({ id: newUuid(), name: uniqueName(out.name, outputs.map((s) => s.name)), type: String(out.type), linkIds: [l.id], ...(out.label ? { label: out.label } : {}) });
    innerLinks.push({ id: l.id, origin_id: l.origin_id, origin_slot: l.origin_slot, target_id: OUTPUTS_NODE_ID, target_slot: outputs.length - 1, type: out.type });
  }
  const kept = new Set(innerLinks.map((l) => l.id));
  const saved = nodes.map((n) => {
    const raw = structuredClone(graph.serializeNode(n));
    for (const out of raw.outputs ?? []) if (Array.isArray(out.links)) out.links = out.links.filter((id) => kept.has(id));
    return raw;
  });

  const [bx, by, bw, bh] = boundsOf(graph, nodes);
  const definition = {
    id: newUuid(), version: 1, name: "New Subgraph", revision: 0, config: {},
    state: { lastNodeId: Math.max(root.lastNodeId, graph.lastNodeId), lastLinkId: Math.max(root.lastLinkId, graph.lastLinkId), lastGroupId: 0, lastRerouteId: 0 },
    inputNode: { id: INPUTS_NODE_ID, bounding: [bx - BOUNDARY_GAP, by, 140, 40 + 22 * inputs.length] },
    outputNode: { id: OUTPUTS_NODE_ID, bounding: [bx + bw + BOUNDARY_GAP - 140, by, 140, 40 + 22 * outputs.length] },
    inputs, outputs, widgets: [], nodes: saved, groups: [], links: innerLinks, extra: {},
  };

  // Where the outer ends were, by input name (a widget turned input is one again once its link goes).
  const outerIn = entering.map((l) => ({ key: `${l.origin_id}:${l.origin_slot}`, origin: l.origin_id, slot: l.origin_slot }));
  const outerOut = leaving.map((l) => ({ key: `${l.origin_id}:${l.origin_slot}`, target: l.target_id, input: inputName(graph, l) }));
  for (const id of chosen) graph.removeNode(id);

  register(root, definition);
  if (graph !== root) root.subgraphSchemas = root.buildSubgraphSchemas();
  graph.subgraphSchemas = graph.buildSubgraphSchemas();
  const instance = graph.loadNode({
    id: ++graph.lastNodeId, type: definition.id, pos: [bx, by + TITLE_H], flags: {}, order: 0, mode: 0,
    inputs: inputs.map((s) => ({ name: s.name, type: s.type, link: null, ...(s.label ? { label: s.label } : {}) })),
    outputs: outputs.map((s) => ({ name: s.name, type: s.type, links: [], ...(s.label ? { label: s.label } : {}) })),
    properties: { "Node name for S&R": definition.id },
  });
  const [, , w, h] = nodeBounds(instance, graph.schemaOf(instance));
  instance.pos = [bx + bw / 2 - w / 2, by + bh / 2 - h / 2 + TITLE_H];
  const wired = new Set();
  for (const { key, origin, slot } of outerIn) {
    if (wired.has(key)) continue;
    wired.add(key);
    graph.connect(origin, slot, instance.id, inputs[inputGroups.get(key)].name);
  }
  for (const { key, target, input } of outerOut) graph.connect(instance.id, outputGroups.get(key), target, input);
  graph.touch();
  return { definition, instance };
}

/**
 * Replace subgraph instance `instanceId` of `graph` by the nodes inside it,
 * with fresh ids, wired as the instance was. Returns {nodes, idMap (inner id → new id)}.
 */
export function unpackSubgraph(graph, instanceId, root = graph) {
  const instance = graph.nodes.get(instanceId);
  const definition = instance?.subgraph ? graph.subgraphs.get(String(instance.type)) : null;
  if (!definition) throw new Error(`node #${instanceId} is not a subgraph instance`);
  const inside = openDefinition(definition, { subgraphs: root.subgraphs, schemaLookup: root.innerLookup });
  const inner = [...inside.nodes.values()].filter((n) => !isBoundary(n));
  const slotNames = (definition.inputs ?? []).map((s, i) => String(s?.name ?? `input ${i}`));
  // What fed each of the instance's inputs: an outer link, or a promoted widget's value.
  const fed = slotNames.map((name) => {
    const link = graph.linkInto(instance, name);
    if (link) return { origin: link.origin_id, slot: link.origin_slot };
    return name in instance.values ? { value: instance.values[name] } : null;
  });
  const gave = instance.outputs.map((out) => (out.links ?? []).map((id) => graph.links.get(id)).filter(Boolean)
    .map((l) => ({ target: l.target_id, input: inputName(graph, l) })));

  const [ix, iy, iw, ih] = nodeBounds(instance, graph.schemaOf(instance));
  const [bx, by, bw, bh] = inner.length ? boundsOf(inside, inner) : [0, 0, 0, 0];
  const [dx, dy] = [ix + iw / 2 - (bx + bw / 2), iy + ih / 2 - (by + bh / 2)];
  graph.lastNodeId = Math.max(graph.lastNodeId, root.lastNodeId);
  const idMap = new Map();
  const added = inner.map((n) => {
    const raw = structuredClone(inside.serializeNode(n));
    raw.id = ++graph.lastNodeId;
    idMap.set(n.id, raw.id);
    raw.pos = [raw.pos[0] + dx, raw.pos[1] + dy];
    for (const slot of raw.inputs ?? []) slot.link = null;
    for (const out of raw.outputs ?? []) out.links = [];
    return graph.loadNode(raw);
  });
  graph.removeNode(instanceId);
  graph.resolvePrimitives();

  const inName = (link) => inside.nodes.get(link.target_id)?.inputs[link.target_slot]?.name;
  for (const link of inside.links.values()) {
    const fromInput = link.origin_id === INPUTS_NODE_ID;
    const toOutput = link.target_id === OUTPUTS_NODE_ID;
    const sources = fromInput ? [fed[link.origin_slot]] : [{ origin: idMap.get(link.origin_id), slot: link.origin_slot }];
    const targets = toOutput ? gave[link.target_slot] ?? [] : [{ target: idMap.get(link.target_id), input: inName(link) }];
    for (const source of sources) {
      for (const { target, input } of targets) {
        if (!source || target == null || input == null) continue;
        if ("value" in source) {
          const node = graph.nodes.get(target);
          if (node && input in node.values) node.values[input] = source.value;
          continue;
        }
        graph.connect(source.origin, source.slot, target, input);
      }
    }
  }
  graph.touch();
  return { nodes: added, idMap };
}

/** Remove definition `defId` from the workflow when no node (outside or in any definition) uses it. Returns whether it went. */
export function dropUnusedDefinition(root, defId) {
  const id = String(defId);
  const used = [...root.nodes.values()].some((n) => String(n.type) === id)
    || [...root.subgraphs.values()].some((d) => (d.nodes ?? []).some((n) => n && String(n.type) === id));
  if (used) return false;
  const holders = [root.rest, ...root.subgraphs.values()];
  for (const holder of holders) {
    const list = holder?.definitions?.subgraphs;
    if (Array.isArray(list)) holder.definitions.subgraphs = list.filter((d) => String(d?.id) !== id);
  }
  root.subgraphs.delete(id);
  root.subgraphSchemas = root.buildSubgraphSchemas();
  return true;
}
