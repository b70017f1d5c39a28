// Link type compatibility in the editor follows the table the engine also runs over.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import { typesCompatible } from "../../web/lib/types.js";

const table = JSON.parse(readFileSync(new URL("../fixtures/type_compatibility.json", import.meta.url), "utf8"));

for (const [output, input, expected] of table.cases) {
  test(`${output || "empty"} -> ${input || "empty"} is ${expected ? "allowed" : "refused"}`, () => {
    assert.equal(typesCompatible(output, input), expected);
  });
}
