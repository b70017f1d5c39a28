// Link type compatibility, the twin of engine.schema.types_compatible: both follow
// tests/fixtures/type_compatibility.json.
export const ANY = "*";

const parts = (t) => new Set(String(t ?? ANY).split(",").map((s) => s.trim()));

/** Whether an output of `outputType` may feed an input of `inputType`. */
export function typesCompatible(outputType, inputType) {
  if (outputType === ANY || inputType === ANY || outputType === "" || inputType === "") return true;
  const outs = parts(outputType);
  const ins = parts(inputType);
  if (outs.has(ANY) || ins.has(ANY)) return true;
  if (ins.has("COMBO") && (outs.has("COMBO") || outs.has("STRING"))) return true;
  for (const t of outs) if (ins.has(t)) return true;
  return false;
}

/** Why a link is refused, or null when it is allowed (shown to the user). */
export function linkRefusal(outputType, inputType) {
  if (typesCompatible(outputType, inputType)) return null;
  return `a ${outputType} output cannot feed a ${inputType} input`;
}
