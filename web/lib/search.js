// Fuzzy node search: by display name, class name, category and slot types.

/** Score how well `query` matches `text` (higher is better; 0 = no match). */
export function fuzzyScore(query, text) {
  const q = query.toLowerCase().trim();
  const t = text.toLowerCase();
  if (!q) return 1;
  if (t === q) return 1000;
  if (t.startsWith(q)) return 500 - t.length;
  const at = t.indexOf(q);
  if (at !== -1) return 300 - at - t.length / 10;
  // every query character in order, rewarding runs and word starts
  let score = 0;
  let ti = 0;
  let run = 0;
  for (const ch of q) {
    if (ch === " ") continue;
    const found = t.indexOf(ch, ti);
    if (found === -1) return 0;
    run = found === ti ? run + 1 : 0;
    score += 1 + run * 2 + (found === 0 || /[\s_/(-]/.test(t[found - 1]) ? 3 : 0);
    ti = found + 1;
  }
  return score;
}

/** Schemas matching `query`, best first. `filter` = {inputType} or {outputType} for link drops. */
export function searchNodes(schemas, query, filter = {}, typesCompatible = null, limit = 60) {
  const results = [];
  for (const schema of schemas) {
    if (filter.outputType && !schema.inputs.some((s) => s.section !== "hidden" && typesCompatible(filter.outputType, s.type))) continue;
    if (filter.inputType && !schema.outputs.some((o) => typesCompatible(o.type, filter.inputType))) continue;
    const name = fuzzyScore(query, schema.displayName);
    const cls = fuzzyScore(query, schema.classType) * 0.9;
    const cat = fuzzyScore(query, schema.category) * 0.3;
    const types = Math.max(0, ...schema.outputs.map((o) => fuzzyScore(query, o.type) * 0.4));
    const score = Math.max(name, cls, cat, types) - (schema.deprecated ? 50 : 0);
    if (score > 0) results.push([score, schema]);
  }
  results.sort((a, b) => b[0] - a[0] || a[1].displayName.localeCompare(b[1].displayName));
  return results.slice(0, limit).map(([, s]) => s);
}
