// Editing inside a ComfyUI subgraph. A definition (definitions.subgraphs[k])
// opens as a Graph of its own nodes plus two boundary nodes standing for
// ComfyUI's input and output nodes: the inputs node (id -10) has one output
// per subgraph input, the outputs node (id -20) one input per subgraph output.
// Links to and from them are stored as ComfyUI stores them, with origin_id -10
// or target_id -20, so the usual link editing works across the boundary.
// writeDefinition puts the edited graph back into the (shared) definition:
// every instance of the subgraph runs the change, as in ComfyUI.
// Each boundary node ends with an empty slot (EMPTY_SLOT, never saved): a
// link dropped on it adds a subgraph input/output (subgraph_io.js does that).
// Pure (no DOM).
import { Graph } from "./graph.js";
import { ANY } from "./types.js";
import { TITLE_H } from "./layout.js";

export const INPUTS_NODE_ID = -10;
export const OUTPUTS_NODE_ID = -20;
export const BOUNDARY_INPUTS = "loom/subgraph-inputs";
export const BOUNDARY_OUTPUTS = "loom/subgraph-outputs";
export const EMPTY_SLOT = "loom:new-slot";
export const BOUNDARY_NOTE = "the subgraph's input and output nodes are part of it: drag a link to their empty slot to add an input or output, right-click a slot to rename or remove it";

const BOUNDARY_W = 160;
const BOUNDARY_COLORS = { color: "#2d5a74", bgcolor: "#1e2b33" };  // never saved: the boundary is not a node in the file

export const isBoundary = (node) => node?.type === BOUNDARY_INPUTS || node?.type === BOUNDARY_OUTPUTS;

/** Whether slot `index` of boundary `node` (its output on the inputs node, its input on the outputs node) is the empty one. */
export function isEmptySlot(node, index) {
  if (node?.type === BOUNDARY_INPUTS) return node.outputs[index]?.name === EMPTY_SLOT;
  if (node?.type === BOUNDARY_OUTPUTS) return node.inputs[index]?.name === EMPTY_SLOT;
  return false;
}

function boundarySchemas(definition) {
  const slotName = (slot, i, kind) => String(slot?.name ?? `${kind} ${i}`);
  const common = { category: "subgraph", outputNode: false, editorOnly: true, boundary: true };
  return {
    inputs: {
      ...common, classType: BOUNDARY_INPUTS, displayName: "Subgraph inputs",
      description: "What the subgraph's inputs carry in; drag from one to a node inside.",
      inputs: [],
      outputs: [...(definition.inputs ?? []).map((s, i) => ({ name: slotName(s, i, "input"), type: String(s?.type ?? ANY), label: s?.label, isList: false })),
        { name: EMPTY_SLOT, type: ANY, label: "+ new input", isList: false }],
    },
    outputs: {
      ...common, classType: BOUNDARY_OUTPUTS, displayName: "Subgraph outputs",
      description: "What the subgraph's outputs give out; drag a node's output to one.",
      inputs: [...(definition.outputs ?? []).map((s, i) => ({ name: slotName(s, i, "output"), label: s?.label, type: String(s?.type ?? ANY), section: "required", options: {}, isWidget: false })),
        { name: EMPTY_SLOT, label: "+ new output", type: ANY, section: "required", options: {}, isWidget: false }],
      outputs: [],
    },
  };
}

function linkList(raw) {
  const items = Array.isArray(raw) ? raw : raw && typeof raw === "object" ? Object.values(raw) : [];
  return items.map((l) => (Array.isArray(l)
    ? { id: l[0], origin_id: l[1], origin_slot: l[2], target_id: l[3], target_slot: l[4], type: l[5] ?? ANY }
    : l)).filter((l) => l && l.id != null);
}

/** Where the boundary nodes sit: the definition's inputNode/outputNode, else beside the nodes. */
function boundaryBounds(definition) {
  const nodes = (definition.nodes ?? []).filter((n) => n && Array.isArray(n.pos));
  const xs = nodes.map((n) => Number(n.pos[0]) || 0);
  const ys = nodes.map((n) => Number(n.pos[1]) || 0);
  const right = nodes.map((n) => (Number(n.pos[0]) || 0) + (Array.isArray(n.size) ? Number(n.size[0]) || 240 : 240));
  const [x0, y0, x1] = nodes.length ? [Math.min(...xs), Math.min(...ys), Math.max(...right)] : [0, 0, 400];
  const sane = (b, fallback) => (Array.isArray(b) && b.length >= 4 && b.every((v) => Number.isFinite(Number(v))) ? b.map(Number) : fallback);
  return {
    inputs: sane(definition.inputNode?.bounding, [x0 - BOUNDARY_W - 120, y0 - TITLE_H, BOUNDARY_W, 120]),
    outputs: sane(definition.outputNode?.bounding, [x1 + 120, y0 - TITLE_H, BOUNDARY_W, 120]),
  };
}

/**
 * The inside of `definition` as an editable Graph. `subgraphs` and `schemaLookup`
 * are the root's (nested instances resolve there); `ids` = {lastNodeId, lastLinkId}
 * of the root, so new inner ids are unique in the whole file whichever way a
 * reader counts them (per definition, or across the workflow).
 */
export function openDefinition(definition, { subgraphs, schemaLookup, ids = {} }) {
  const schemas = boundarySchemas(definition);
  const links = linkList(definition.links);
  const bounds = boundaryBounds(definition);
  const inputsNode = {
    id: INPUTS_NODE_ID, type: BOUNDARY_INPUTS, pos: [bounds.inputs[0], bounds.inputs[1] + TITLE_H], size: null, mode: 0, ...BOUNDARY_COLORS,
    inputs: [],
    outputs: schemas.inputs.outputs.map((o, i) => ({
      name: o.name, type: o.type, ...(o.label ? { label: o.label } : {}),
      links: o.name === EMPTY_SLOT ? [] : links.filter((l) => Number(l.origin_id) === INPUTS_NODE_ID && Number(l.origin_slot) === i).map((l) => l.id),
    })),
  };
  const outputsNode = {
    id: OUTPUTS_NODE_ID, type: BOUNDARY_OUTPUTS, pos: [bounds.outputs[0], bounds.outputs[1] + TITLE_H], size: null, mode: 0, ...BOUNDARY_COLORS,
    inputs: schemas.outputs.inputs.map((s, j) => ({
      name: s.name, type: s.type, ...(s.label ? { label: s.label } : {}),
      link: s.name === EMPTY_SLOT ? null : links.find((l) => Number(l.target_id) === OUTPUTS_NODE_ID && Number(l.target_slot) === j)?.id ?? null,
    })),
    outputs: [],
  };
  const graph = new Graph(schemaLookup);
  graph.localSchemas = new Map([[BOUNDARY_INPUTS, schemas.inputs], [BOUNDARY_OUTPUTS, schemas.outputs]]);
  graph.load({
    version: 1,
    state: definition.state ?? {},
    nodes: [inputsNode, ...(definition.nodes ?? []).filter(Boolean), outputsNode],
    links,
    groups: definition.groups ?? [],
    ...(Array.isArray(definition.reroutes) ? { reroutes: definition.reroutes } : {}),
    config: definition.config ?? {},
    extra: definition.extra ?? {},
  }, { subgraphs });
  graph.lastNodeId = Math.max(graph.lastNodeId, Number(ids.lastNodeId) || 0);
  graph.lastLinkId = Math.max(graph.lastLinkId, Number(ids.lastLinkId) || 0);
  graph.boundaryBounds = bounds;
  graph.definition = definition;
  return graph;
}

/** Write an opened subgraph's graph back into its definition, in ComfyUI's layout. */
export function writeDefinition(graph, definition = graph.definition) {
  const saved = graph.serialize();
  const inputsNode = graph.nodes.get(INPUTS_NODE_ID);
  const outputsNode = graph.nodes.get(OUTPUTS_NODE_ID);
  definition.nodes = saved.nodes.filter((n) => n.id !== INPUTS_NODE_ID && n.id !== OUTPUTS_NODE_ID);
  definition.links = saved.links;
  if ("groups" in definition || saved.groups.length) definition.groups = saved.groups;
  if ("reroutes" in saved) definition.reroutes = saved.reroutes;
  definition.state = { ...(definition.state ?? {}), lastNodeId: graph.lastNodeId, lastLinkId: graph.lastLinkId,
    ...(saved.state.lastRerouteId ? { lastRerouteId: saved.state.lastRerouteId } : {}) };
  (definition.inputs ?? []).forEach((input, i) => {
    if (input && typeof input === "object") input.linkIds = [...(inputsNode?.outputs[i]?.links ?? [])];
  });
  (definition.outputs ?? []).forEach((output, j) => {
    const link = outputsNode?.inputs[j]?.link;
    if (output && typeof output === "object") output.linkIds = link == null ? [] : [link];
  });
  const bounding = (node, old) => [node.pos[0], node.pos[1] - TITLE_H, old[2], old[3]];
  if (inputsNode) definition.inputNode = { ...(definition.inputNode ?? {}), id: INPUTS_NODE_ID, bounding: bounding(inputsNode, graph.boundaryBounds.inputs) };
  if (outputsNode) definition.outputNode = { ...(definition.outputNode ?? {}), id: OUTPUTS_NODE_ID, bounding: bounding(outputsNode, graph.boundaryBounds.outputs) };
  return definition;
}

/** Set one widget of a node inside `definition` (what a proxy widget on an instance edits). */
export function setInnerWidget(definition, nodeId, widget, value, { subgraphs, schemaLookup }) {
  const graph = openDefinition(definition, { subgraphs, schemaLookup });
  const node = [...graph.nodes.values()].find((n) => String(n.id) === String(nodeId));
  if (!node) throw new Error(`subgraph '${definition.name ?? definition.id}' has no node #${nodeId}`);
  node.values[widget] = value;
  writeDefinition(graph, definition);
}
