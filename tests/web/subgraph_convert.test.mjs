// Unit tests of "Convert to Subgraph" and "Unpack Subgraph" (web/lib/subgraph_convert.js)
// on the fixtures' files and schemas: the definition in ComfyUI's layout, the
// instance wired as the nodes were, the same prompt modulo ids, and the round trip.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { Graph } from "../../web/lib/graph.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { openDefinition, writeDefinition } from "../../web/lib/subgraph_edit.js";
import { convertToSubgraph, dropUnusedDefinition, unpackSubgraph } from "../../web/lib/subgraph_convert.js";
import { workflowToApi } from "../../web/lib/workflow_to_api.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const lookup = (t) => schemas.get(t) ?? null;
const fixture = (stem) => JSON.parse(readFileSync(join(FIXTURES, `${stem}.json`), "utf8")).workflow;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** A prompt with its node ids renamed by `rename` (references included). */
function renamed(prompt, rename) {
  const out = {};
  for (const [id, node] of Object.entries(prompt)) {
    const inputs = Object.fromEntries(Object.entries(node.inputs).map(([k, v]) => [k, Array.isArray(v) && v.length === 2 && typeof v[0] === "string" ? [rename(v[0]), v[1]] : v]));
    out[rename(id)] = { ...node, inputs };
  }
  return out;
}

/** The graph as types, widget values and links between them, without ids or positions. */
function shape(graph) {
  const key = (id) => { const n = graph.nodes.get(id); return `${n.type} ${JSON.stringify(n.values)}`; };
  return {
    nodes: [...graph.nodes.values()].map((n) => key(n.id)).sort(),
    links: [...graph.links.values()].map((l) => `${key(l.origin_id)}[${l.origin_slot}] -> ${key(l.target_id)}.${graph.nodes.get(l.target_id).inputs[l.target_slot].name}`).sort(),
  };
}

function converted(ids = [3, 8]) {
  const root = Graph.fromJSON(fixture("txt2img_v04"), lookup);
  const result = convertToSubgraph(root, ids, root);
  return { root, ...result };
}

test("converting a selection makes a 'New Subgraph' definition in ComfyUI's layout, its inputs and outputs from the links crossing the selection", () => {
  const { definition } = converted();
  assert.match(definition.id, UUID);
  assert.equal(definition.name, "New Subgraph");
  assert.deepEqual(definition.inputs.map((s) => [s.name, s.type, s.linkIds]), [["model", "MODEL", [1]], ["positive", "CONDITIONING", [4]], ["negative", "CONDITIONING", [6]], ["latent_image", "LATENT", [2]], ["vae", "VAE", [8]]]);
  assert.deepEqual(definition.outputs.map((s) => [s.name, s.type, s.linkIds]), [["IMAGE", "IMAGE", [9]]]);
  assert.ok([...definition.inputs, ...definition.outputs].every((s) => UUID.test(s.id)));
  assert.deepEqual(definition.nodes.map((n) => [n.id, n.type]), [[3, "KSampler"], [8, "VAEDecode"]]);
  const links = definition.links.map((l) => [l.id, l.origin_id, l.origin_slot, l.target_id, l.target_slot]);
  assert.deepEqual(links.sort((a, b) => a[0] - b[0]), [[1, -10, 0, 3, 0], [2, -10, 3, 3, 3], [4, -10, 1, 3, 1], [6, -10, 2, 3, 2], [7, 3, 0, 8, 0], [8, -10, 4, 8, 1], [9, 8, 0, -20, 0]]);
  assert.deepEqual(definition.inputNode.id, -10);
  assert.deepEqual(definition.outputNode.id, -20);
});

test("an instance takes the selection's place, wired as the nodes were", () => {
  const { root, instance } = converted();
  assert.deepEqual([...root.nodes.keys()].sort((a, b) => a - b), [4, 5, 6, 7, 9, instance.id]);
  assert.ok(instance.id > 9);
  const into = (name) => { const l = root.linkInto(instance, name); return [l.origin_id, l.origin_slot]; };
  assert.deepEqual(["model", "positive", "negative", "latent_image", "vae"].map(into), [[4, 0], [6, 0], [7, 0], [5, 0], [4, 2]]);
  const out = root.links.get(instance.outputs[0].links[0]);
  assert.deepEqual([out.target_id, root.nodes.get(9).inputs[out.target_slot].name], [9, "images"]);
});

test("the converted workflow queues the same prompt, the moved nodes named 'instance:inner'", () => {
  const original = workflowToApi(fixture("txt2img_v04"), lookup);
  const { root, instance } = converted();
  const api = workflowToApi(root.serialize(), lookup);
  assert.deepEqual(renamed(api, (id) => id.replace(`${instance.id}:`, "")), original);
  assert.ok(`${instance.id}:3` in api);
});

test("one outer output feeding two selected inputs becomes one subgraph input", () => {
  const { definition } = converted([6, 7]);  // both text encoders take CLIP from the checkpoint
  assert.deepEqual(definition.inputs.map((s) => [s.name, s.linkIds]), [["clip", [3, 5]]]);
  assert.deepEqual(definition.outputs.map((s) => s.name), ["CONDITIONING", "CONDITIONING_1"]);
});

test("converting nothing that can move is refused with the reason", () => {
  const root = Graph.fromJSON(fixture("txt2img_v04"), lookup);
  assert.throws(() => convertToSubgraph(root, [], root), /select the nodes/);
});

test("unpacking a converted instance gives back the original graph, modulo ids, and drops the unused definition", () => {
  const original = Graph.fromJSON(fixture("txt2img_v04"), lookup);
  const { root, instance, definition } = converted();
  const { idMap } = unpackSubgraph(root, instance.id, root);
  assert.ok(dropUnusedDefinition(root, definition.id));
  assert.deepEqual(shape(root), shape(original));
  assert.deepEqual([...idMap.keys()], [3, 8]);
  assert.ok([...idMap.values()].every((id) => id > instance.id));
  const saved = root.serialize();
  assert.deepEqual(saved.definitions?.subgraphs ?? [], []);
  const back = new Map([...idMap].map(([inner, outer]) => [String(outer), String(inner)]));
  assert.deepEqual(renamed(workflowToApi(saved, lookup), (id) => back.get(id) ?? id), workflowToApi(fixture("txt2img_v04"), lookup));
});

test("unpacking an instance puts its promoted widget values into the inner widgets and keeps a definition other instances use", () => {
  const workflow = fixture("subgraph_proxy_widgets_and_native_reroutes_v1");
  const original = workflowToApi(workflow, lookup);
  const copy = structuredClone(workflow.nodes.find((n) => n.id === 10));
  workflow.nodes.push({ ...copy, id: 11, inputs: copy.inputs.map((i) => ({ ...i, link: null })), outputs: copy.outputs.map((o) => ({ ...o, links: [] })) });
  const root = Graph.fromJSON(workflow, lookup);
  const { idMap } = unpackSubgraph(root, 10, root);
  assert.equal(dropUnusedDefinition(root, String(copy.type)), false);
  const api = workflowToApi(root.serialize(), lookup);
  const back = new Map([...idMap].map(([inner, outer]) => [String(outer), `10:${inner}`]));
  const unpacked = renamed(api, (id) => back.get(id) ?? id);
  for (const id of Object.keys(original)) assert.deepEqual(unpacked[id], original[id], id);
  assert.equal(unpacked["10:1"].inputs.steps, 33);
});

test("converting inside an opened subgraph nests a new definition, and the prompt only gains a level of ids", () => {
  const workflow = fixture("nested_subgraphs");
  const original = workflowToApi(workflow, lookup);
  const root = Graph.fromJSON(workflow, lookup);
  const inner = root.subgraphs.get("c0000000-0000-4000-8000-000000000003");
  const inside = openDefinition(inner, { subgraphs: root.subgraphs, schemaLookup: root.innerLookup, ids: { lastNodeId: root.lastNodeId, lastLinkId: root.lastLinkId } });
  const { instance, definition } = convertToSubgraph(inside, [2], root);
  writeDefinition(inside);
  root.refreshInstances();
  const saved = root.serialize();
  assert.ok(saved.definitions.subgraphs.some((d) => d.id === definition.id));
  assert.deepEqual(definition.inputs.map((s) => s.name), ["image"]);
  const api = workflowToApi(saved, lookup);
  assert.ok(`5:7:${instance.id}:2` in api);
  assert.deepEqual(renamed(api, (id) => id.replace(`5:7:${instance.id}:`, "5:7:")), original);
});
