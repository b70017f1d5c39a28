// ComfyUI files in the editor's graph model (no browser): subgraph instances,
// native reroutes, and saving in the version a file was read in.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { Graph } from "../../web/lib/graph.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { parseJSONLenient } from "../../web/lib/json.js";
import { reroutePath, rerouteAt } from "../../web/lib/reroutes.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";
import { nodeWidgets } from "../../web/lib/layout.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const lookup = (t) => schemas.get(t) ?? null;
const fixture = (stem) => parseJSONLenient(readFileSync(join(FIXTURES, `${stem}.json`), "utf8")).workflow;
const open = (stem) => Graph.fromJSON(fixture(stem), lookup);
const withoutNamed = (workflow) => ({ ...workflow, nodes: workflow.nodes.map(({ widgets_values_named, ...n }) => n) });

// ---------------------------------------------------------------- subgraphs
test("a subgraph instance is a node with its subgraph's name, inputs and outputs", () => {
  const g = open("subgraph_flattened");
  const node = g.nodes.get(10);
  const schema = g.schemaOf(node);
  assert.equal(node.missing, false);
  assert.equal(schema.displayName, "Sample and decode");
  assert.deepEqual(node.inputs.map((i) => i.name), ["model", "positive", "negative", "latent_image", "vae", "passthrough"]);
  assert.deepEqual(node.outputs.map((o) => [o.name, o.type]), [["IMAGE", "IMAGE"], ["inverted", "IMAGE"]]);
});
test("an input feeding an inner widget is a widget on the instance, with the inner widget's rules", () => {
  const g = open("subgraph_flattened");
  const node = g.nodes.get(10);
  const widgets = nodeWidgets(node, g.schemaOf(node));
  assert.deepEqual(widgets.map((w) => [w.name, w.spec.type, w.control]), [["steps", "INT", false]]);
  assert.equal(widgets[0].spec.options.max, schemas.get("KSampler").inputs.find((s) => s.name === "steps").options.max);
  assert.equal(node.values.steps, 33);
});
test("a promoted seed saved with its control value by older ComfyUI reads the right values", () => {
  const node = open("subgraph_promoted_seed_legacy_control").nodes.get(10);
  assert.deepEqual(node.values, { seed: 4242, steps: 33 });
});
test("editing a promoted widget changes the inner node in the flattened prompt", () => {
  const g = open("subgraph_flattened");
  g.nodes.get(10).values.steps = 12;
  assert.equal(workflowToApi(g.serialize(), lookup)["10:1"].inputs.steps, 12);
});
test("a saved instance lists every input of its definition in order, widget inputs marked", () => {
  const g = open("subgraph_flattened");
  const saved = g.serialize().nodes.find((n) => n.id === 10);
  assert.deepEqual(saved.inputs.map((i) => [i.name, Boolean(i.widget)]), [
    ["model", false], ["positive", false], ["negative", false], ["latent_image", false], ["vae", false], ["steps", true], ["passthrough", false]]);
  assert.deepEqual(saved.widgets_values, [33]);
});
test("linking into a promoted widget makes it a slot, and the saved link points at the definition's slot", () => {
  const g = open("subgraph_flattened");
  const primitive = g.addNode("PrimitiveInt", [0, 0]);
  const link = g.connect(primitive.id, 0, 10, "steps");
  const saved = g.serialize();
  assert.equal(saved.links.find((l) => l.id === link.id).target_slot, 5);  // 'steps' is the definition's input 5
  assert.deepEqual(workflowToApi(saved, lookup)["10:1"].inputs.steps, [String(primitive.id), 0]);
});
test("a node type missing inside a subgraph definition is reported, the instance itself is not a placeholder", () => {
  const workflow = fixture("subgraph_flattened");
  workflow.definitions.subgraphs[0].nodes[2].type = "FancyInvert";
  const g = Graph.fromJSON(workflow, lookup);
  assert.equal(g.nodes.get(10).missing, false);
  assert.deepEqual(g.missingTypes(), ["FancyInvert"]);
});
test("nested subgraphs open as one node named after the outer subgraph", () => {
  const g = open("nested_subgraphs");
  const instances = [...g.nodes.values()].filter((n) => n.subgraph);
  assert.deepEqual(instances.map((n) => g.schemaOf(n).displayName), ["wrap"]);
  assert.deepEqual(g.missingTypes(), []);
});
test("a widget promoted twice shows on the outer instance with the inner widget's type", () => {
  const g = open("nested_subgraph_promoted_widget");
  const outer = g.nodes.get(20);
  assert.deepEqual(nodeWidgets(outer, g.schemaOf(outer)).map((w) => [w.name, w.spec.type]), [["steps", "INT"]]);
  assert.equal(outer.values.steps, 21);
});

// ---------------------------------------------------------------- saving in the file's version
test("a version 1 file saves as version 1 with its state, link objects, parentIds and reroutes", () => {
  const original = fixture("subgraph_proxy_widgets_and_native_reroutes_v1");
  assert.deepEqual(withoutNamed(Graph.fromJSON(structuredClone(original), lookup).serialize()), original);
});
test("a version 0.4 file keeps extra.reroutes and extra.linkExtensions", () => {
  const original = fixture("native_reroutes_v04");
  const saved = Graph.fromJSON(structuredClone(original), lookup).serialize();
  assert.equal(saved.version, 0.4);
  assert.deepEqual(saved.extra, original.extra);
});
test("an output saved with links: null is written back the same", () => {
  const workflow = fixture("txt2img_v04");
  const save = workflow.nodes.find((n) => n.outputs?.length);
  save.outputs.push({ name: "extra", type: "INT", links: null });
  const again = Graph.fromJSON(structuredClone(workflow), lookup).serialize().nodes.find((n) => n.id === save.id);
  assert.equal(again.outputs.at(-1).links, null);
});
test("a new graph is saved as version 0.4", () => {
  assert.equal(new Graph(lookup).serialize().version, 0.4);
});

// ---------------------------------------------------------------- native reroutes
test("a link's reroutes are read from parentId, origin side first", () => {
  const g = open("native_reroutes_v04");
  assert.equal(g.links.get(8).parentId, 2);
  assert.deepEqual(reroutePath(g.reroutes, g.links.get(8).parentId).map((r) => r.id), [1, 2]);
});
test("a reroute loop in a file does not hang the drawing", () => {
  const g = open("native_reroutes_v04");
  g.reroutes.get(1).parentId = 2;
  assert.deepEqual(reroutePath(g.reroutes, 2).map((r) => r.id), [1, 2]);
});
test("removing a link takes it out of the reroutes it passed through", () => {
  const g = open("version1_links_and_native_reroutes");
  g.removeLink(8);
  assert.deepEqual(g.serialize().reroutes.map((r) => r.linkIds), [[3], []]);
});
test("a reroute is found within its radius", () => {
  const g = open("native_reroutes_v04");
  assert.equal(rerouteAt(g.reroutes, 603, 298)?.id, 2);
  assert.equal(rerouteAt(g.reroutes, 650, 298), null);
});

// ---------------------------------------------------------------- other ComfyUI cases
test("legacy Reroute nodes, primitives and notes open as editor nodes, not placeholders", () => {
  for (const stem of ["legacy_reroutes", "primitive_node", "notes_dropped"]) {
    assert.deepEqual(open(stem).missingTypes(), [], stem);
  }
});
test("a primitive shows the value it feeds, with the target widget's rules", () => {
  const g = open("primitive_node");
  const primitive = [...g.nodes.values()].find((n) => n.type === "PrimitiveNode");
  assert.ok(primitive.primitiveSpec, "the primitive learnt its widget from its target");
  assert.equal(primitive.values.value, fixture("primitive_node").nodes.find((n) => n.type === "PrimitiveNode").widgets_values[0]);
});
