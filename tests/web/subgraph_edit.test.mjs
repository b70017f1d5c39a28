// Unit tests of editing inside subgraphs (web/lib/subgraph_edit.js) and of
// proxy widgets (web/lib/subgraphs.js), on the fixtures' files and schemas.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { Graph } from "../../web/lib/graph.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { EMPTY_SLOT, INPUTS_NODE_ID, OUTPUTS_NODE_ID, openDefinition, setInnerWidget, writeDefinition } from "../../web/lib/subgraph_edit.js";
import { proxyWidgetEntries, proxyWidgetSpecs } from "../../web/lib/subgraphs.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const lookup = (t) => schemas.get(t) ?? null;
const fixture = (stem) => JSON.parse(readFileSync(join(FIXTURES, `${stem}.json`), "utf8")).workflow;
const SUBGRAPH = "subgraph_proxy_widgets_and_native_reroutes_v1";

function opened(workflow = fixture(SUBGRAPH), instanceId = 10) {
  const root = Graph.fromJSON(workflow, lookup);
  const definition = root.subgraphs.get(String(root.nodes.get(instanceId).type));
  const inside = openDefinition(definition, { subgraphs: root.subgraphs, schemaLookup: root.innerLookup, ids: { lastNodeId: root.lastNodeId, lastLinkId: root.lastLinkId } });
  return { root, definition, inside };
}

const withoutNamed = (nodes) => nodes.map(({ widgets_values_named: _, ...n }) => n);

test("a subgraph's boundary opens as two nodes: its inputs as outputs, its outputs as inputs, with their links, then an empty slot", () => {
  const { inside } = opened();
  const inputs = inside.nodes.get(INPUTS_NODE_ID);
  const outputs = inside.nodes.get(OUTPUTS_NODE_ID);
  assert.deepEqual(inputs.outputs.map((o) => [o.name, o.links]), [["model", [101]], ["positive", [102]], ["negative", [103]], ["latent_image", [104]], ["vae", [107]], ["steps", [105]], ["passthrough", [109]], [EMPTY_SLOT, []]]);
  assert.deepEqual(outputs.inputs.map((i) => [i.name, i.link]), [["IMAGE", 108], ["inverted", 110], [EMPTY_SLOT, null]]);
  assert.deepEqual(inputs.pos, [0, 30]);  // inputNode.bounding [0, 0, 120, 160]: its top-left is the title's
});

test("writing an unedited subgraph back changes nothing but the widget values by name Loom adds", () => {
  const original = fixture(SUBGRAPH).definitions.subgraphs[0];
  const { definition, inside } = opened();
  writeDefinition(inside);
  assert.deepEqual(withoutNamed(definition.nodes), original.nodes);
  for (const key of ["links", "inputs", "outputs", "inputNode", "outputNode", "reroutes", "groups", "name", "id"]) assert.deepEqual(definition[key], original[key], key);
});

test("an edit inside is written into the shared definition and the instance runs it", () => {
  const { root, inside } = opened();
  inside.nodes.get(1).values.cfg = 3.5;
  writeDefinition(inside);
  root.refreshInstances();
  assert.equal(workflowToApi(root.serialize(), lookup)["10:1"].inputs.cfg, 3.5);
});

test("unlinking the output boundary empties that output's linkIds and the instance gives nothing there", () => {
  const { root, definition, inside } = opened();
  inside.removeLink(108);
  writeDefinition(inside);
  root.refreshInstances();
  assert.deepEqual(definition.outputs[0].linkIds, []);
  assert.ok(!definition.links.some((l) => l.id === 108));
  assert.deepEqual(workflowToApi(root.serialize(), lookup)["9"].inputs, { filename_prefix: "ComfyUI" });
});

test("linking the input boundary to an inner widget promotes it: the instance shows a widget for that input", () => {
  const workflow = fixture(SUBGRAPH);
  workflow.definitions.subgraphs[0].inputs.push({ id: "in7", name: "denoise", type: "FLOAT", linkIds: [] });
  const { root, definition, inside } = opened(workflow);
  inside.connect(INPUTS_NODE_ID, 7, 1, "denoise");
  writeDefinition(inside);
  root.refreshInstances();
  const instance = root.nodes.get(10);
  assert.ok(root.schemaOf(instance).inputs.find((s) => s.name === "denoise").isWidget);
  assert.equal(instance.values.denoise, 1);  // the inner widget's value until set on the instance
  assert.deepEqual(definition.inputs[7].linkIds, [definition.links.at(-1).id]);
  instance.values.denoise = 0.5;
  assert.equal(workflowToApi(root.serialize(), lookup)["10:1"].inputs.denoise, 0.5);
});

test("a node added inside gets an id above every id of the workflow and of the definition", () => {
  const { root, inside } = opened();
  const node = inside.addNode("ImageInvert", [0, 0]);
  assert.ok(node.id > root.lastNodeId && node.id > 3);
  const link = inside.connect(3, 0, node.id, "image");
  assert.ok(link.id > 110 && link.id > root.lastLinkId);
});

test("proxyWidgets is read as a list or as its JSON text; anything else is no entries", () => {
  assert.deepEqual(proxyWidgetEntries({ proxyWidgets: [["1", "cfg"], [2, "seed"]] }), [["1", "cfg"], ["2", "seed"]]);
  assert.deepEqual(proxyWidgetEntries({ proxyWidgets: '[["1","cfg"]]' }), [["1", "cfg"]]);
  assert.deepEqual(proxyWidgetEntries({ proxyWidgets: "not json" }), []);
  assert.deepEqual(proxyWidgetEntries({ proxyWidgets: [["1"], null, "x"] }), []);
  assert.deepEqual(proxyWidgetEntries({}), []);
});

test("proxy widgets are the named inner widgets; input-backed ('-1') and unknown entries are not shown twice or at all", () => {
  const definition = fixture(SUBGRAPH).definitions.subgraphs[0];
  const specs = proxyWidgetSpecs({ proxyWidgets: [["-1", "steps"], ["1", "cfg"], ["9", "cfg"], ["1", "nope"], ["1", "steps"]] }, definition, lookup);
  // "steps" on node 1 is fed by the subgraph's input: its value is not the widget's, so it is not a proxy.
  assert.deepEqual(specs.map((p) => [p.spec.name, p.spec.label, p.value]), [["proxy:1:cfg", "cfg", 6.5]]);
});

test("a proxy widget edited on the instance sets the inner node's widget in the definition", () => {
  const root = Graph.fromJSON(fixture(SUBGRAPH), lookup);
  const definition = root.subgraphs.get(String(root.nodes.get(10).type));
  setInnerWidget(definition, "1", "cfg", 9, { subgraphs: root.subgraphs, schemaLookup: root.innerLookup });
  root.refreshInstances();
  assert.equal(root.nodes.get(10).values["proxy:1:cfg"], 9);
  assert.equal(workflowToApi(root.serialize(), lookup)["10:1"].inputs.cfg, 9);
});
