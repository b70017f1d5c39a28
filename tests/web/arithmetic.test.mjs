// Arithmetic in number fields: a parser, never eval.
import { test } from "node:test";
import assert from "node:assert/strict";

import { evaluateArithmetic } from "../../web/lib/arithmetic.js";

test("plain numbers read as themselves", () => {
  assert.equal(evaluateArithmetic("42"), 42);
  assert.equal(evaluateArithmetic("-0.5"), -0.5);
  assert.equal(evaluateArithmetic("1e3"), 1000);
});

test("operators follow the usual precedence", () => {
  assert.equal(evaluateArithmetic("2*3"), 6);
  assert.equal(evaluateArithmetic("512 + 64 * 2"), 640);
  assert.equal(evaluateArithmetic("(1+2)/4"), 0.75);
  assert.equal(evaluateArithmetic("2**3**2"), 512);
  assert.equal(evaluateArithmetic("7 % 4 - -1"), 4);
});

test("anything else is not a number", () => {
  for (const text of ["", "abc", "2*", "(1+2", "alert(1)", "1/0", "2 3"]) assert.equal(evaluateArithmetic(text), null, text);
});
