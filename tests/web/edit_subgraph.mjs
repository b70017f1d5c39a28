// The editor's side of the edited-subgraph parity test (test_editor_parity.py):
// a workflow's subgraph is opened as the editor opens it (web/lib/subgraph_edit.js),
// edited — an inner widget changed, a node added and wired between an inner node
// and the output boundary — and written back; the saved workflow and the API
// prompt the editor would queue are printed as JSON.
//
//   node tests/web/edit_subgraph.mjs OBJECT_INFO.json FIXTURE.json INSTANCE_ID ADDED_TYPE
import { readFileSync } from "node:fs";

import { Graph } from "../../web/lib/graph.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { INPUTS_NODE_ID, OUTPUTS_NODE_ID, openDefinition, writeDefinition } from "../../web/lib/subgraph_edit.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";

const [infoPath, file, instanceId, addedType] = process.argv.slice(2);
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(infoPath, "utf8")));
const lookup = (t) => schemas.get(t) ?? null;
const data = JSON.parse(readFileSync(file, "utf8"));
const root = Graph.fromJSON("workflow" in data ? data.workflow : data, lookup);
const instance = root.nodes.get(Number(instanceId));
const inside = openDefinition(root.subgraphs.get(String(instance.type)), { subgraphs: root.subgraphs, schemaLookup: root.innerLookup });

// Change the first inner number widget, add an `addedType` node between the first output and what fed it.
const real = [...inside.nodes.values()].filter((n) => n.id !== INPUTS_NODE_ID && n.id !== OUTPUTS_NODE_ID);
const edited = real.find((n) => Object.keys(n.values).some((k) => typeof n.values[k] === "number"));
const widget = Object.keys(edited.values).find((k) => typeof edited.values[k] === "number");
edited.values[widget] += 2;
const out = inside.nodes.get(OUTPUTS_NODE_ID);
const link = inside.links.get(out.inputs[0].link);
const feeder = inside.nodes.get(link.origin_id);
const added = inside.addNode(addedType, [feeder.pos[0], feeder.pos[1] + 300]);
const input = added.inputs.find((i) => i.type === feeder.outputs[link.origin_slot].type) ?? added.inputs[0];
inside.connect(feeder.id, link.origin_slot, added.id, input.name);
inside.connect(added.id, 0, OUTPUTS_NODE_ID, out.inputs[0].name);
writeDefinition(inside);
root.refreshInstances();
const workflow = root.serialize();
process.stdout.write(JSON.stringify({ workflow, api: workflowToApi(workflow, lookup), edited: [edited.id, widget], added: added.id }));
