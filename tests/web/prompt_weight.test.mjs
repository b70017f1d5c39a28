// Ctrl+Up/Down weights in a prompt, as ComfyUI's editor writes them.
import { test } from "node:test";
import assert from "node:assert/strict";

import { adjustWeight, enclosingBrackets, WEIGHT_STEP } from "../../web/lib/prompt_weight.js";

const up = (text, s, e = s) => adjustWeight(text, s, e, WEIGHT_STEP);
const down = (text, s, e = s) => adjustWeight(text, s, e, -WEIGHT_STEP);

test("a selection gets brackets and a weight of 1.05", () => {
  assert.deepEqual(up("a red fox", 2, 5), { text: "a (red:1.05) fox", start: 2, end: 12 });
});

test("the word at the caret is weighted when nothing is selected", () => {
  assert.equal(up("a red fox", 3).text, "a (red:1.05) fox");
  assert.equal(down("a red fox", 7).text, "a red (fox:0.95)");
});

test("inside brackets the weight changes in place", () => {
  assert.equal(up("a (red fox:1.05) runs", 5).text, "a (red fox:1.1) runs");
  assert.equal(up("a (red fox) runs", 5).text, "a (red fox:1.05) runs");
});

test("a selection of a bracket's inside changes the bracket's weight", () => {
  assert.equal(up("(red fox:1.2)", 1, 12).text, "(red fox:1.25)");
});

test("words selected inside a weighted bracket get a bracket of their own", () => {
  assert.equal(up("(red fox:1.2)", 1, 8).text, "((red fox:1.05):1.2)");
});

test("a weight back at 1 drops its brackets", () => {
  assert.equal(down("a (red:1.05) fox", 5).text, "a red fox");
});

test("a trailing space is left out of the selection", () => {
  assert.equal(up("a red fox", 2, 6).text, "a (red:1.05) fox");
});

test("a time such as 12:30 is not read as a weight", () => {
  assert.equal(up("(at 12:30)", 3).text, "(at 12:30:1.05)");
});

test("the innermost bracket around the caret is found, nested ones skipped", () => {
  assert.deepEqual(enclosingBrackets("((a:1.1), b)", 10), [1, 11]);
  assert.deepEqual(enclosingBrackets("((a:1.1), b)", 2), [2, 7]);
  assert.equal(enclosingBrackets("no brackets", 3), null);
});

test("nothing to weight gives null", () => {
  assert.equal(up("a  b", 2), null);
});
