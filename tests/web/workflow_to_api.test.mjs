// The JS twin of the converter runs the same fixtures as engine/workflow_format.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { workflowToApi, WorkflowConversionError } from "../../web/lib/workflow_to_api.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { parseJSONLenient } from "../../web/lib/json.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures");
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(join(FIXTURES, "object_info.json"), "utf8")));
const cases = readdirSync(FIXTURES).filter((f) => f.endsWith(".json") && f !== "object_info.json").sort();

for (const file of cases) {
  const fixture = parseJSONLenient(readFileSync(join(FIXTURES, file), "utf8"));
  if (fixture.api) {
    test(`converts ${file.replace(".json", "")} like the Python converter`, () => {
      assert.deepStrictEqual(workflowToApi(fixture.workflow, schemas), fixture.api, fixture.about);
    });
  } else {
    test(`refuses ${file.replace(".json", "")} naming the node`, () => {
      assert.throws(() => workflowToApi(fixture.workflow, schemas), (err) => {
        assert.ok(err instanceof WorkflowConversionError);
        assert.equal(err.nodeId, fixture.error.node_id);
        assert.equal(err.classType, fixture.error.class_type);
        for (const part of fixture.error.message_contains) assert.ok(err.message.includes(part), err.message);
        return true;
      });
    });
  }
}

test("lenient JSON reads bare NaN and Infinity outside strings only", () => {
  const v = parseJSONLenient('{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN stays"}');
  assert.ok(Number.isNaN(v.a));
  assert.deepStrictEqual(v.b, [Infinity, -Infinity]);
  assert.equal(v.c, "NaN stays");
});

test("a list and names that disagree are reported, and the list is used", async () => {
  const { Graph } = await import("../../web/lib/graph.js");
  const fixture = parseJSONLenient(readFileSync(join(FIXTURES, "widgets_values_list_wins_over_named.json"), "utf8"));
  const graph = new Graph((t) => schemas.get(t) ?? null);
  graph.load(fixture.workflow);
  assert.equal(graph.nodes.get(3).values.sampler_name, "euler");
  assert.equal(graph.warnings.length, 1);
  assert.match(graph.warnings[0], /node #3 \(KSampler\): widgets_values gives sampler_name = "euler" but widgets_values_named says "dpmpp_2m"/);
});
