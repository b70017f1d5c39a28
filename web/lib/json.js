// ComfyUI's Python side writes bare NaN / Infinity into JSON; JSON.parse refuses
// them. Replace those tokens (outside strings) with markers, and turn the
// markers back into numbers with a reviver.
const MARK = "\u0000loom-num:";

export function parseJSONLenient(text) {
  try {
    return JSON.parse(text);
  } catch {
    // fall through to the tolerant reading
  }
  let out = "";
  let i = 0;
  let inString = false;
  while (i < text.length) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === "\\") { out += text[i + 1] ?? ""; i += 2; continue; }
      if (c === '"') inString = false;
      i += 1;
      continue;
    }
    if (c === '"') { inString = true; out += c; i += 1; continue; }
    const rest = text.slice(i, i + 9);
    if (rest.startsWith("NaN")) { out += JSON.stringify(MARK + "NaN"); i += 3; continue; }
    if (rest.startsWith("-Infinity")) { out += JSON.stringify(MARK + "-Infinity"); i += 9; continue; }
    if (rest.startsWith("Infinity")) { out += JSON.stringify(MARK + "Infinity"); i += 8; continue; }
    out += c;
    i += 1;
  }
  return JSON.parse(out, (_k, v) => (typeof v === "string" && v.startsWith(MARK) ? Number(v.slice(MARK.length)) : v));
}
