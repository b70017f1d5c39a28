// The JS twin of a1111_to_api runs the same fixtures as engine/workflow_format.py.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

import { a1111ToApi } from "../../web/lib/a1111.js";
import { WorkflowConversionError } from "../../web/lib/workflow_to_api.js";

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), "..", "workflow_format", "fixtures", "a1111");
const cases = readdirSync(FIXTURES).filter((f) => f.endsWith(".json")).sort();

test("the A1111 fixture set is not empty", () => assert.ok(cases.length >= 5));

for (const file of cases) {
  const fixture = JSON.parse(readFileSync(join(FIXTURES, file), "utf8"));
  const name = file.replace(".json", "");
  if (fixture.api) {
    test(`A1111 ${name} converts like the Python twin`, () => {
      assert.deepStrictEqual(a1111ToApi(fixture.parameters, fixture.checkpoints), fixture.api, fixture.about);
    });
  } else {
    test(`A1111 ${name} is refused with a clear error`, () => {
      assert.throws(() => a1111ToApi(fixture.parameters, fixture.checkpoints), (err) => {
        assert.ok(err instanceof WorkflowConversionError);
        for (const part of fixture.error.message_contains) assert.ok(err.message.includes(part), err.message);
        return true;
      });
    });
  }
}
