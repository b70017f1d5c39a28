// Unit tests of changing a subgraph's inputs and outputs (web/lib/subgraph_io.js)
// on the fixtures' files and schemas: the definition in ComfyUI's layout, every
// instance updated, and the prompt the editor queues.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { Graph } from "../../web/lib/graph.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { INPUTS_NODE_ID, OUTPUTS_NODE_ID, openDefinition, isEmptySlot } from "../../web/lib/subgraph_edit.js";
import { addSubgraphInput, addSubgraphOutput, removeSubgraphSlot, renameSubgraphSlot, uniqueName } from "../../web/lib/subgraph_io.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const lookup = (t) => schemas.get(t) ?? null;
const fixture = (stem) => JSON.parse(readFileSync(join(FIXTURES, `${stem}.json`), "utf8")).workflow;
const SUBGRAPH = "subgraph_proxy_widgets_and_native_reroutes_v1";
const DEF = "a3f0c1d2-0000-4000-8000-00000000abcd";
const NESTED = "nested_subgraphs";
const INVERT_TWICE = "c0000000-0000-4000-8000-000000000003";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const definitionOf = (workflow, id) => workflow.definitions.subgraphs.find((d) => d.id === id);
const nodeOf = (holder, id) => holder.nodes.find((n) => n.id === id);

test("names are made unique as ComfyUI does: name, name_1, name_2", () => {
  assert.equal(uniqueName("seed", []), "seed");
  assert.equal(uniqueName("seed", ["seed"]), "seed_1");
  assert.equal(uniqueName("seed", ["seed", "seed_1"]), "seed_2");
});

test("an opened subgraph's boundary nodes end with an empty slot that is never saved", () => {
  const root = Graph.fromJSON(fixture(SUBGRAPH), lookup);
  const definition = root.subgraphs.get(DEF);
  const inside = openDefinition(definition, { subgraphs: root.subgraphs, schemaLookup: root.innerLookup });
  const inputs = inside.nodes.get(INPUTS_NODE_ID);
  const outputs = inside.nodes.get(OUTPUTS_NODE_ID);
  assert.ok(isEmptySlot(inputs, 7) && !isEmptySlot(inputs, 6));
  assert.ok(isEmptySlot(outputs, 2) && !isEmptySlot(outputs, 1));
  assert.equal(definition.inputs.length, 7);
});

test("adding an input linked to an inner widget writes ComfyUI's entry and link, and every instance gets a widget for it", () => {
  const { workflow, index, name } = addSubgraphInput(fixture(SUBGRAPH), lookup, DEF, { name: "cfg", type: "FLOAT", connectTo: { nodeId: 1, input: "cfg" } });
  const definition = definitionOf(workflow, DEF);
  const entry = definition.inputs[index];
  assert.equal(index, 7);
  assert.equal(name, "cfg");
  assert.match(entry.id, UUID);
  assert.deepEqual({ ...entry, id: "?" }, { id: "?", name: "cfg", type: "FLOAT", linkIds: [entry.linkIds[0]] });
  const link = definition.links.find((l) => l.id === entry.linkIds[0]);
  assert.deepEqual([link.origin_id, link.origin_slot, link.target_id, link.type], [INPUTS_NODE_ID, 7, 1, "FLOAT"]);
  assert.ok(link.id > fixture(SUBGRAPH).state.lastLinkId);
  const instance = nodeOf(workflow, 10);
  assert.deepEqual(instance.inputs.at(-1), { name: "cfg", type: "FLOAT", link: null, widget: { name: "cfg" } });
  assert.equal(workflowToApi(workflow, lookup)["10:1"].inputs.cfg, 6.5);  // the inner value, until set on the instance
});

test("adding an input twice with the same name numbers the second", () => {
  const first = addSubgraphInput(fixture(SUBGRAPH), lookup, DEF, { name: "model", type: "MODEL" });
  assert.equal(first.name, "model_1");
  assert.deepEqual(nodeOf(first.workflow, 10).inputs.at(-1), { name: "model_1", type: "MODEL", link: null });
});

test("adding an output from an inner node gives every instance an output that carries it", () => {
  const workflow = fixture(SUBGRAPH);
  const { workflow: out, index } = addSubgraphOutput(workflow, lookup, DEF, { name: "LATENT", type: "LATENT", connectFrom: { nodeId: 1, slot: 0 } });
  const definition = definitionOf(out, DEF);
  assert.equal(index, 2);
  const link = definition.links.find((l) => l.target_id === OUTPUTS_NODE_ID && l.target_slot === 2);
  assert.deepEqual([link.origin_id, link.origin_slot], [1, 0]);
  assert.deepEqual(definition.outputs[2].linkIds, [link.id]);
  assert.deepEqual(nodeOf(out, 10).outputs.map((o) => o.name), ["IMAGE", "inverted", "LATENT"]);
});

test("renaming sets the label on the definition's entry and on every instance's slot; the name stays", () => {
  const workflow = renameSubgraphSlot(fixture(SUBGRAPH), lookup, DEF, "input", 4, "decoder");
  assert.deepEqual(definitionOf(workflow, DEF).inputs[4], { id: "in4", name: "vae", type: "VAE", linkIds: [107], label: "decoder" });
  assert.equal(nodeOf(workflow, 10).inputs[4].label, "decoder");
  const renamed = renameSubgraphSlot(workflow, lookup, DEF, "output", 1, "negative image");
  assert.equal(definitionOf(renamed, DEF).outputs[1].label, "negative image");
  assert.equal(nodeOf(renamed, 10).outputs[1].label, "negative image");
  assert.deepEqual(workflowToApi(renamed, lookup), workflowToApi(fixture(SUBGRAPH), lookup));
});

test("renaming a promoted widget input labels its hidden slot too", () => {
  const workflow = renameSubgraphSlot(fixture(SUBGRAPH), lookup, DEF, "input", 5, "step count");
  assert.deepEqual(nodeOf(workflow, 10).inputs[5], { name: "steps", type: "INT", link: null, widget: { name: "steps" }, label: "step count" });
});

test("renaming to nothing shows the name again", () => {
  const labelled = renameSubgraphSlot(fixture(SUBGRAPH), lookup, DEF, "input", 4, "decoder");
  const back = renameSubgraphSlot(labelled, lookup, DEF, "input", 4, " ");
  assert.ok(!("label" in definitionOf(back, DEF).inputs[4]) && !("label" in nodeOf(back, 10).inputs[4]));
});

test("removing an input removes its inner links, moves later inputs up, and removes the slot and its outer link on the instance", () => {
  const before = fixture(SUBGRAPH);
  const workflow = removeSubgraphSlot(before, lookup, DEF, "input", 4);  // vae, linked outside by link 8
  const definition = definitionOf(workflow, DEF);
  assert.deepEqual(definition.inputs.map((s) => s.name), ["model", "positive", "negative", "latent_image", "steps", "passthrough"]);
  assert.ok(!definition.links.some((l) => l.id === 107));
  assert.deepEqual(definition.links.filter((l) => l.origin_id === INPUTS_NODE_ID).map((l) => [l.id, l.origin_slot]), [[101, 0], [102, 1], [103, 2], [104, 3], [105, 4], [109, 5]]);
  assert.deepEqual(definition.inputs.map((s) => s.linkIds), [[101], [102], [103], [104], [105], [109]]);
  const instance = nodeOf(workflow, 10);
  assert.deepEqual(instance.inputs.map((s) => s.name), ["model", "positive", "negative", "latent_image", "steps", "passthrough"]);
  assert.ok(!workflow.links.some((l) => l.id === 8));
  assert.deepEqual(instance.widgets_values, [33]);  // the steps value is kept
  const api = workflowToApi(workflow, lookup);
  assert.equal(api["10:2"].inputs.vae, undefined);
  assert.equal(api["10:1"].inputs.steps, 33);
});

test("removing a promoted widget input drops its value and its proxyWidgets entry", () => {
  const workflow = removeSubgraphSlot(fixture(SUBGRAPH), lookup, DEF, "input", 5);  // steps
  const instance = nodeOf(workflow, 10);
  assert.ok(!instance.inputs.some((s) => s.name === "steps"));
  assert.equal(instance.widgets_values, undefined);
  assert.deepEqual(instance.properties.proxyWidgets, [["1", "cfg"]]);
  assert.equal(workflowToApi(workflow, lookup)["10:1"].inputs.steps, 20);  // the inner widget's own value
});

test("removing an output removes its inner link and the instance's links from it; later outputs move up", () => {
  const workflow = removeSubgraphSlot(fixture(SUBGRAPH), lookup, DEF, "output", 0);
  const definition = definitionOf(workflow, DEF);
  assert.deepEqual(definition.outputs.map((s) => [s.name, s.linkIds]), [["inverted", [110]]]);
  assert.equal(definition.links.find((l) => l.id === 110).target_slot, 0);
  assert.ok(!definition.links.some((l) => l.id === 108));
  const instance = nodeOf(workflow, 10);
  assert.deepEqual(instance.outputs.map((o) => o.name), ["inverted"]);
  assert.ok(!workflow.links.some((l) => l.id === 9));
  assert.deepEqual(workflowToApi(workflow, lookup)["9"].inputs, { filename_prefix: "ComfyUI" });  // what the removed output fed
});

test("instances inside other definitions change too", () => {
  const { workflow } = addSubgraphInput(fixture(NESTED), lookup, INVERT_TWICE, { name: "mask", type: "IMAGE" });
  const wrap = workflow.definitions.subgraphs.find((d) => d.name === "wrap");
  assert.deepEqual(nodeOf(wrap, 7).inputs.map((s) => s.name), ["image", "mask"]);
  const removed = removeSubgraphSlot(workflow, lookup, INVERT_TWICE, "input", 0);
  const wrapAfter = removed.definitions.subgraphs.find((d) => d.name === "wrap");
  assert.deepEqual(nodeOf(wrapAfter, 7).inputs, [{ name: "mask", type: "IMAGE", link: null }]);
  assert.ok(!wrapAfter.links.some((l) => l.target_id === 7));
});

test("an unknown subgraph id is refused with its name", () => {
  assert.throws(() => addSubgraphInput(fixture(SUBGRAPH), lookup, "nope", { name: "x", type: "INT" }), /no subgraph 'nope'/);
});
