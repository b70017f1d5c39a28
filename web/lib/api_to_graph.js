// An API prompt (from a PNG's "prompt" chunk, or an API JSON file) laid out as
// an editable graph: one column per depth, links from [node_id, slot] inputs.
import { Graph } from "./graph.js";

export function isApiPrompt(data) {
  if (!data || typeof data !== "object" || Array.isArray(data) || Array.isArray(data.nodes)) return false;
  const entries = Object.values(data);
  return entries.length > 0 && entries.every((e) => e && typeof e === "object" && typeof e.class_type === "string");
}

export function apiToGraph(prompt, schemaLookup) {
  const g = new Graph(schemaLookup);
  const ids = Object.keys(prompt);
  const depth = new Map();
  const depthOf = (id, seen = new Set()) => {
    if (depth.has(id)) return depth.get(id);
    if (seen.has(id)) return 0;
    seen.add(id);
    let d = 0;
    for (const v of Object.values(prompt[id]?.inputs ?? {})) {
      if (Array.isArray(v) && v.length === 2 && String(v[0]) in prompt) d = Math.max(d, depthOf(String(v[0]), seen) + 1);
    }
    depth.set(id, d);
    return d;
  };
  const rows = new Map();
  const idMap = new Map();
  for (const id of ids) {
    const d = depthOf(id);
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    const numeric = /^\d+$/.test(id) ? Number(id) : undefined;
    const node = g.addNode(prompt[id].class_type, [d * 380, row * 300], numeric !== undefined ? { id: numeric } : {});
    if (prompt[id]._meta?.title) node.title = prompt[id]._meta.title;
    idMap.set(id, node);
    for (const [name, v] of Object.entries(prompt[id].inputs ?? {})) {
      if (Array.isArray(v) && v.length === 2) continue;
      if (name in node.values) node.values[name] = v && typeof v === "object" && "__value__" in v ? v.__value__ : v;
      if (name in node.controls) node.controls[name] = "fixed";
    }
  }
  for (const id of ids) {
    for (const [name, v] of Object.entries(prompt[id].inputs ?? {})) {
      if (!(Array.isArray(v) && v.length === 2 && idMap.has(String(v[0])))) continue;
      try { g.connect(idMap.get(String(v[0])).id, Number(v[1]), idMap.get(id).id, name); } catch { /* a type mismatch stays unlinked */ }
    }
  }
  return g;
}
