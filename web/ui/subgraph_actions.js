// The canvas side of changing subgraphs: a link dropped on a boundary node's
// empty slot adds a subgraph input or output, the boundary slots' context menu
// renames and removes them. Each is one undoable edit of the whole workflow:
// the open scopes are written into their definitions, the pure function in
// web/lib changes the saved workflow, and the editor loads the result and
// opens the same subgraph again (as an undo does). "Convert to Subgraph" and
// "Unpack Subgraph" change the shown graph in place and commit.
import { INPUTS_NODE_ID, OUTPUTS_NODE_ID, isBoundary, isEmptySlot } from "../lib/subgraph_edit.js";
import { convertToSubgraph, dropUnusedDefinition, unpackSubgraph } from "../lib/subgraph_convert.js";
import { addSubgraphInput, addSubgraphOutput, removeSubgraphSlot, renameSubgraphSlot } from "../lib/subgraph_io.js";
import { inlineEntry, toast } from "./popups.js";

const lookupOf = (editor) => (t) => editor.schemas.get(t) ?? null;

/** Replace the workflow by `change(workflow, lookup)`'s result (a workflow, or {workflow, ...}) as one undoable edit. */
export function applyWorkflowChange(editor, what, change) {
  editor.scopes.sync();
  let result;
  try {
    result = change(editor.serialize(), lookupOf(editor));
  } catch (err) {
    toast(`${what} failed: ${err.message}`, "error", 6000);
    return null;
  }
  const view = { scale: editor.view.scale, offset: [...editor.view.offset] };
  const path = editor.scopes.path();
  editor.loadWorkflow(result.workflow ?? result, { resetHistory: false });
  editor.view = view;
  editor.scopes.reopen(path, view);
  editor.commit();
  return result;
}

const currentDefinitionId = (editor) => editor.scopes.stack.at(-1)?.definition?.id;
const inputIndex = (node, name) => node?.inputs.findIndex((i) => i.name === name) ?? -1;

/**
 * A finished link drag that starts or ends on a boundary's empty slot adds an
 * input (the inner input's name and type) or an output (the inner output's).
 * `t` is where it was dropped (editor.linkTarget). Returns whether it was such a drag.
 */
export function dropOnEmptySlot(editor, d, t) {
  const g = editor.graph;
  const fromEmpty = d.kind === "link" ? isEmptySlot(g.nodes.get(d.origin), d.slot) : isEmptySlot(g.nodes.get(d.target), inputIndex(g.nodes.get(d.target), d.input));
  const toEmpty = Boolean(t && !t.refusal) && (d.kind === "link" ? isEmptySlot(g.nodes.get(t.target), inputIndex(g.nodes.get(t.target), t.input)) : isEmptySlot(g.nodes.get(t.origin), t.slot));
  if (!fromEmpty && !toEmpty) return false;
  if (!t || (fromEmpty && toEmpty)) { editor.commit(); return true; }
  if (t.refusal) { toast(`Link refused: ${t.refusal}`, "error"); editor.commit(); return true; }
  // Which end is the new boundary slot, and which is the inner socket it takes its name and type from.
  const [origin, slot] = d.kind === "link" ? [d.origin, d.slot] : [t.origin, t.slot];
  const [target, input] = d.kind === "link" ? [t.target, t.input] : [d.target, d.input];
  const defId = currentDefinitionId(editor);
  if (origin === INPUTS_NODE_ID) {
    const node = g.nodes.get(target);
    const type = g.inputType(node, input);
    applyWorkflowChange(editor, "Adding the input", (w, lookup) => addSubgraphInput(w, lookup, defId, { name: input, type, connectTo: { nodeId: target, input } }));
  } else if (target === OUTPUTS_NODE_ID) {
    const out = g.nodes.get(origin).outputs[slot];
    applyWorkflowChange(editor, "Adding the output", (w, lookup) => addSubgraphOutput(w, lookup, defId, { name: out.name, type: out.type, connectFrom: { nodeId: origin, slot } }));
  } else {
    editor.commit();
  }
  return true;
}

/** Context-menu entries for a slot of a boundary node (hit: an output of the inputs node or an input of the outputs node). */
export function boundarySlotEntries(editor, hit) {
  const node = hit?.node;
  if (!isBoundary(node)) return [];
  const kind = node.id === INPUTS_NODE_ID && hit.kind === "output" ? "input" : node.id === OUTPUTS_NODE_ID && hit.kind === "input" ? "output" : null;
  if (!kind || isEmptySlot(node, hit.index)) return [];
  const slot = kind === "input" ? node.outputs[hit.index] : node.inputs[hit.index];
  const shown = slot.label || slot.name;
  const defId = currentDefinitionId(editor);
  return [
    { label: `Rename ${kind} '${shown}'…`, action: () => renameSlot(editor, node, kind, hit.index, shown, defId) },
    { label: `Remove ${kind} '${shown}'`, action: () => applyWorkflowChange(editor, `Removing the ${kind}`, (w, lookup) => removeSubgraphSlot(w, lookup, defId, kind, hit.index)) },
  ];
}

async function renameSlot(editor, node, kind, index, shown, defId) {
  const [x, y] = kind === "input" ? editor.locate(node.id, "output", index) : editor.locate(node.id, "input", node.inputs[index].name);
  const text = await inlineEntry({ x: x - 100, y: y - 14, w: 200, h: 28, value: shown });
  if (text === null || text.trim() === shown) return;
  applyWorkflowChange(editor, `Renaming the ${kind}`, (w, lookup) => renameSubgraphSlot(w, lookup, defId, kind, index, text));
}

/** Put the selected nodes into a new subgraph; its instance is selected. */
export function convertSelection(editor) {
  let result;
  try {
    result = convertToSubgraph(editor.graph, editor.selection, editor.rootGraph);
  } catch (err) {
    toast(`Convert to Subgraph: ${err.message}`, "warn", 6000);
    return;
  }
  editor.announceLoaded(result.instance);
  editor.selection = new Set([result.instance.id]);
  editor.commit();
}

/** Replace a subgraph instance by its inner nodes (selected); the definition goes once nothing uses it. */
export function unpackInstance(editor, node) {
  const defId = String(node.type);
  editor.scopes.sync();
  let result;
  try {
    result = unpackSubgraph(editor.graph, node.id, editor.rootGraph);
  } catch (err) {
    toast(`Unpack Subgraph: ${err.message}`, "error", 6000);
    return;
  }
  editor.scopes.sync();  // the shown subgraph's definition no longer holds the instance
  dropUnusedDefinition(editor.rootGraph, defId);
  for (const n of result.nodes) editor.announceLoaded(n);
  editor.selection = new Set(result.nodes.map((n) => n.id));
  editor.commit();
}
