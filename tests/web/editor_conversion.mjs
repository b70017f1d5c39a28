// The editor's side of the parity test (test_editor_parity.py): each UI
// workflow goes the way the editor takes it — loaded into the editor's graph,
// saved, converted to the API prompt that a queue would send — and the result
// (or the error) is printed as JSON for pytest to compare with
// engine.workflow_format.ui_to_api.
//
//   node tests/web/editor_conversion.mjs OBJECT_INFO.json FILE.json...
// A file may be a fixture ({"workflow": ...}) or a bare workflow.
import { readFileSync } from "node:fs";
import { basename } from "node:path";

import { Graph } from "../../web/lib/graph.js";
import { parseJSONLenient } from "../../web/lib/json.js";
import { schemasFromObjectInfo } from "../../web/lib/schema.js";
import { WorkflowConversionError, workflowToApi } from "../../web/lib/workflow_to_api.js";

const [infoPath, ...files] = process.argv.slice(2);
const schemas = schemasFromObjectInfo(JSON.parse(readFileSync(infoPath, "utf8")));
const lookup = (t) => schemas.get(t) ?? null;

function editorConversion(workflow) {
  let graph;
  try {
    graph = Graph.fromJSON(workflow, lookup);
  } catch (err) {
    return { error: { message: err.message, node_id: null, class_type: null, stage: "load" } };
  }
  const saved = graph.serialize();
  const missing = graph.missingTypes();
  try {
    return { api: workflowToApi(saved, lookup), missing };
  } catch (err) {
    if (!(err instanceof WorkflowConversionError)) throw err;
    return { error: { message: err.message, node_id: err.nodeId, class_type: err.classType, stage: "convert" }, missing };
  }
}

const results = {};
for (const file of files) {
  const data = parseJSONLenient(readFileSync(file, "utf8"));
  results[basename(file)] = editorConversion("workflow" in data ? data.workflow : data);
}
process.stdout.write(JSON.stringify(results));
