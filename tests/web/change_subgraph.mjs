// The editor's side of the subgraph-change parity tests (test_editor_parity.py):
// a fixture is changed the way the editor changes it and the saved workflow and
// the API prompt the editor would queue are printed as JSON.
//
//   node tests/web/change_subgraph.mjs OBJECT_INFO.json FIXTURE.json convert ID,ID...
//     → {converted: {workflow, api, instance}, unpacked: {workflow, api, idMap}}
//       (the ids converted to a subgraph, then that instance unpacked again)
//   node tests/web/change_subgraph.mjs OBJECT_INFO.json FIXTURE.json io DEF_ID
//     → {workflow, api}: an input added and linked to the first inner widget, the
//       first input renamed, the second input and the first output removed
import { readFileSync } from "node:fs";

import { Graph } from "../../web/lib/graph.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { convertToSubgraph, dropUnusedDefinition, unpackSubgraph } from "../../web/lib/subgraph_convert.js";
import { addSubgraphInput, removeSubgraphSlot, renameSubgraphSlot } from "../../web/lib/subgraph_io.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";

const [infoPath, file, mode, arg] = process.argv.slice(2);
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(infoPath, "utf8")));
const lookup = (t) => schemas.get(t) ?? null;
const data = JSON.parse(readFileSync(file, "utf8"));
const original = "workflow" in data ? data.workflow : data;
const saved = (graph) => { const workflow = graph.serialize(); return { workflow, api: workflowToApi(workflow, lookup) }; };

if (mode === "convert") {
  const root = Graph.fromJSON(original, lookup);
  const { instance, definition } = convertToSubgraph(root, arg.split(",").map(Number), root);
  const converted = { ...saved(root), instance: instance.id };
  const again = Graph.fromJSON(converted.workflow, lookup);
  const { idMap } = unpackSubgraph(again, instance.id, again);
  dropUnusedDefinition(again, definition.id);
  process.stdout.write(JSON.stringify({ converted, unpacked: { ...saved(again), idMap: Object.fromEntries(idMap) } }));
} else {
  const root = Graph.fromJSON(original, lookup);
  const definition = root.subgraphs.get(arg);
  const node = definition.nodes.find((n) => lookup(n.type)?.inputs.some((s) => s.isWidget));
  const widget = lookup(node.type).inputs.find((s) => s.isWidget && !(node.inputs ?? []).some((i) => i.name === s.name && i.link != null));
  let workflow = addSubgraphInput(original, lookup, arg, { name: widget.name, type: widget.type, connectTo: { nodeId: node.id, input: widget.name } }).workflow;
  workflow = renameSubgraphSlot(workflow, lookup, arg, "input", 0, "renamed");
  workflow = removeSubgraphSlot(workflow, lookup, arg, "input", 1);
  workflow = removeSubgraphSlot(workflow, lookup, arg, "output", 0);
  process.stdout.write(JSON.stringify({ workflow, api: workflowToApi(workflow, lookup) }));
}
